#include "agent/metrics/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, ExpositionOfEveryKind) {
  Registry registry;
  Family<Counter>* requests = registry.AddCounter("app_requests_total", "Requests.", {"method", "code"});
  requests->Get({"get", "OK"})->Increment();
  requests->Get({"get", "OK"})->Increment(2);
  requests->Get({"create", "NOT_FOUND"})->Increment();
  registry.AddGauge("app_open", "Open things.")->Get()->Set(3.5);
  Family<Histogram>* latency = registry.AddHistogram("app_latency_seconds", "Latency.", {"method"}, {0.1, 1});
  latency->Get({"get"})->Observe(0.1);  // bounds are inclusive
  latency->Get({"get"})->Observe(0.5);
  latency->Get({"get"})->Observe(7);
  EXPECT_EQ(registry.TextExposition(),
            "# HELP app_requests_total Requests.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{method=\"create\",code=\"NOT_FOUND\"} 1\n"
            "app_requests_total{method=\"get\",code=\"OK\"} 3\n"
            "# HELP app_open Open things.\n"
            "# TYPE app_open gauge\n"
            "app_open 3.5\n"
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{method=\"get\",le=\"0.1\"} 1\n"
            "app_latency_seconds_bucket{method=\"get\",le=\"1\"} 2\n"
            "app_latency_seconds_bucket{method=\"get\",le=\"+Inf\"} 3\n"
            "app_latency_seconds_sum{method=\"get\"} 7.6\n"
            "app_latency_seconds_count{method=\"get\"} 3\n");
}

TEST(MetricsTest, LabelLessSeriesStartAtZeroAndLabelledOnesOnFirstUse) {
  Registry registry;
  registry.AddCounter("a_total", "A.");
  registry.AddCounter("b_total", "B.", {"x"});
  registry.AddHistogram("c_seconds", "C.", {}, {1});
  EXPECT_EQ(
      registry.TextExposition(),
      "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
      "# HELP b_total B.\n# TYPE b_total counter\n"
      "# HELP c_seconds C.\n# TYPE c_seconds histogram\n"
      "c_seconds_bucket{le=\"1\"} 0\nc_seconds_bucket{le=\"+Inf\"} 0\nc_seconds_sum 0\nc_seconds_count 0\n");
}

TEST(MetricsTest, EscapesHelpAndLabelValues) {
  Registry registry;
  registry.AddCounter("x_total", "Line one\nback\\slash \"quoted\".", {"v"})
      ->Get({"a\"b\\c\nd"})
      ->Increment();
  EXPECT_EQ(registry.TextExposition(),
            "# HELP x_total Line one\\nback\\\\slash \"quoted\".\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, CountersNeverGoDownGaugesDo) {
  Registry registry;
  Counter* counter = registry.AddCounter("c_total", "C.")->Get();
  counter->Increment(5);
  counter->Increment(-3);
  EXPECT_EQ(counter->value(), 5);
  Gauge* gauge = registry.AddGauge("g", "G.")->Get();
  gauge->Add(2);
  gauge->Add(-5);
  EXPECT_EQ(gauge->value(), -3);
}

TEST(MetricsTest, RegisteringTheSameFamilyAgainSharesIt) {
  Registry registry;
  Family<Counter>* first = registry.AddCounter("shared_total", "S.", {"k"});
  Family<Counter>* second = registry.AddCounter("shared_total", "S.", {"k"});
  EXPECT_EQ(first, second);
  first->Get({"v"})->Increment();
  EXPECT_EQ(second->Get({"v"})->value(), 1);
}

TEST(MetricsDeathTest, ConflictingRegistrationAndBadNamesAbort) {
  Registry registry;
  registry.AddCounter("dup_total", "D.", {"k"});
  EXPECT_DEATH(registry.AddCounter("dup_total", "D.", {"other"}), "registered twice");
  EXPECT_DEATH(registry.AddGauge("dup_total", "D."), "registered twice");
  EXPECT_DEATH(registry.AddCounter("bad-name", "B."), "invalid metric name");
  EXPECT_DEATH(registry.AddHistogram("h", "H.", {"le"}, {1}), "invalid label name");
  EXPECT_DEATH(registry.AddHistogram("h2", "H.", {}, {2, 1}), "not strictly ascending");
  EXPECT_DEATH(registry.AddCounter("n_total", "N.", {"a"})->Get({"x", "y"}), "2 label values for 1");
}

TEST(MetricsTest, FamiliesStopGrowingAtTheCap) {
  Registry registry;
  Family<Counter>* family = registry.AddCounter("wide_total", "W.", {"id"});
  for (size_t i = 0; i < kMaxSeriesPerFamily + 10; ++i) family->Get({absl::StrCat(i)})->Increment();
  const auto series = family->Series();
  EXPECT_EQ(series.size(), kMaxSeriesPerFamily + 1);
  EXPECT_EQ(family->Get({"another"})->value(), 10);  // the overflow series
  EXPECT_THAT(registry.TextExposition(), HasSubstr("wide_total{id=\"_overflow\"} 10\n"));
}

TEST(MetricsTest, GaugeCallbacksAreReadAtScrapeUntilDestroyed) {
  Registry registry;
  double value = 4;
  {
    GaugeCallback callback = registry.AddGaugeCallback("live", "Live.", [&value] { return value; });
    value = 6;
    EXPECT_THAT(registry.TextExposition(), HasSubstr("# TYPE live gauge\nlive 6\n"));
    GaugeCallback moved = std::move(callback);
    EXPECT_THAT(registry.TextExposition(), HasSubstr("live 6\n"));
  }
  EXPECT_THAT(registry.TextExposition(), Not(HasSubstr("live")));
  GaugeCallback again = registry.AddGaugeCallback("live", "Live.", [] { return 1.0; });
  EXPECT_THAT(registry.TextExposition(), HasSubstr("live 1\n"));
}

TEST(MetricsTest, FormatValue) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901), "12345678901");
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0025), "0.0025");
  EXPECT_EQ(FormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, ConcurrentUpdatesAndScrapesLoseNothing) {
  Registry registry;
  Family<Counter>* counters = registry.AddCounter("n_total", "N.", {"t"});
  Family<Histogram>* histograms = registry.AddHistogram("h_seconds", "H.", {"t"}, LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        counters->Get({absl::StrCat(t % 2)})->Increment();
        histograms->Get({"x"})->Observe(0.5);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) registry.TextExposition();
  });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counters->Get({"0"})->value() + counters->Get({"1"})->value(), 40000);
  const Histogram::Snapshot snapshot = histograms->Get({"x"})->snapshot();
  EXPECT_EQ(snapshot.cumulative.back(), 40000u);
  EXPECT_EQ(snapshot.sum, 20000);
}

TEST(MetricsTest, RegistryOrPrivate) {
  Registry shared;
  EXPECT_EQ(RegistryOrPrivate(&shared).get(), &shared);
  RegistryOrPrivate own(nullptr);
  ASSERT_NE(own.get(), nullptr);
  own->AddCounter("private_total", "P.")->Get()->Increment();
  EXPECT_EQ(shared.TextExposition(), "");
}

}  // namespace
}  // namespace fna::metrics
