#include "agent/neptune/pinger.h"

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace fna::neptune {
namespace {

RunRef Ref(int i, int rule = -1) { return RunRef{"ws/proj", absl::StrCat("run-", i), rule}; }

// Records each ping's time per experiment id; answers with `answer`.
struct Recorder {
  std::mutex mu;
  std::map<std::string, std::vector<absl::Time>> pings;
  absl::Status answer;
  const FakeClock* clock = nullptr;

  PingFunction Function() {
    return [this](const PingTarget& target, absl::Time deadline) {
      std::lock_guard<std::mutex> lock(mu);
      pings[target.experiment_id].push_back(clock->Now());
      EXPECT_EQ(deadline, clock->Now() + absl::Seconds(10));
      return answer;
    };
  }
  int Total() {
    std::lock_guard<std::mutex> lock(mu);
    int total = 0;
    for (const auto& [id, times] : pings) total += static_cast<int>(times.size());
    return total;
  }
};

TEST(PingerTest, ThousandRunsWithinBudgetAndInterval) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  PingerOptions options;
  options.max_pings_per_second = 40;  // 1000 runs every 10 s would need 100/s: each run waits its turn
  Pinger pinger(options, &clock, recorder.Function());
  for (int i = 0; i < 1000; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  pinger.Touch(Ref(7), "exp-7");  // deduplicated
  EXPECT_EQ(pinger.active_runs(), 1000u);

  const absl::Time start = clock.Now();
  int sent = 0;
  for (int second = 0; second < 120; ++second) {
    sent += pinger.RunDue();
    clock.Advance(absl::Seconds(1));
    for (int i = 0; i < 1000; ++i) {
      if (second % 30 == 29) pinger.Touch(Ref(i), absl::StrCat("exp-", i));  // GetTask polls
    }
  }
  EXPECT_EQ(sent, recorder.Total());
  // Budget: one second's burst plus 40 per second over the 119 s between the first and the last round.
  EXPECT_LE(sent, 40 + 40 * 119);
  EXPECT_GE(sent, 40 * 119);
  std::lock_guard<std::mutex> lock(recorder.mu);
  ASSERT_EQ(recorder.pings.size(), 1000u);  // every run got pinged
  for (const auto& [id, times] : recorder.pings) {
    EXPECT_GE(times.size(), 4u) << id;
    for (size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i] - times[i - 1], absl::Seconds(10)) << id;
    EXPECT_LT(times.front() - start, absl::Seconds(26)) << id;
  }
}

TEST(PingerTest, EachRunOncePerIntervalWhenTheBudgetAllows) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  PingerOptions options;
  options.max_pings_per_second = 1000;
  Pinger pinger(options, &clock, recorder.Function());
  for (int i = 0; i < 1000; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  EXPECT_EQ(pinger.RunDue(), 1000);  // all due at once, burst allows it
  for (int second = 1; second < 10; ++second) {
    clock.Advance(absl::Seconds(1));
    EXPECT_EQ(pinger.RunDue(), 0);
  }
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(pinger.RunDue(), 1000);
  EXPECT_EQ(pinger.pings_sent(), 2000);
}

TEST(PingerTest, IdleRunsExpireAndFinalRunsStop) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  PingerOptions options;
  options.max_pings_per_second = 10000;
  Pinger pinger(options, &clock, recorder.Function());
  for (int i = 0; i < 1000; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  pinger.MarkFinal(Ref(0));
  pinger.Touch(Ref(0), "exp-0");  // a late CreateRun of a finished run does not bring it back
  EXPECT_EQ(pinger.active_runs(), 999u);
  // Half of the tasks keep being polled; the other half's polls stop.
  for (int minute = 0; minute < 16; ++minute) {
    for (int second = 0; second < 60; second += 10) {
      pinger.RunDue();
      clock.Advance(absl::Seconds(10));
    }
    for (int i = 1; i < 1000; i += 2) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  }
  pinger.RunDue();
  EXPECT_EQ(pinger.active_runs(), 500u);
  std::lock_guard<std::mutex> lock(recorder.mu);
  EXPECT_EQ(recorder.pings.count("exp-0"), 0u);
  // An idle run was pinged until 15 minutes after it was last touched, never after.
  EXPECT_EQ(recorder.pings["exp-2"].size(), 90u);
  EXPECT_GT(recorder.pings["exp-3"].size(), 95u);
}

TEST(PingerTest, FinalMarkExpiresWithIdleExpiry) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  Pinger pinger(PingerOptions{}, &clock, recorder.Function());
  pinger.MarkFinal(Ref(1));
  clock.Advance(absl::Minutes(15));
  pinger.Touch(Ref(1), "exp-1");
  EXPECT_EQ(pinger.active_runs(), 1u);
}

TEST(PingerTest, DeduplicatesByRuleProjectAndCustomId) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  Pinger pinger(PingerOptions{}, &clock, recorder.Function());
  pinger.Touch(Ref(1), "exp-1");
  pinger.Touch(Ref(1), "exp-1");
  pinger.Touch(Ref(1, 0), "exp-1-rule0");
  pinger.Touch(RunRef{"ws/other", "run-1", -1}, "exp-1-other");
  EXPECT_EQ(pinger.active_runs(), 3u);
  EXPECT_EQ(pinger.RunDue(), 3);
}

TEST(PingerTest, GoneRunsAreDroppedAndAnOutageEndsTheRound) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  PingerOptions options;
  options.max_pings_per_second = 100;
  Pinger pinger(options, &clock, recorder.Function());
  for (int i = 0; i < 10; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));

  {
    std::lock_guard<std::mutex> lock(recorder.mu);
    recorder.answer = absl::NotFoundError("gone");
  }
  pinger.Touch(Ref(99), "exp-99");
  EXPECT_EQ(pinger.RunDue(), 11);
  EXPECT_EQ(pinger.active_runs(), 0u);
  EXPECT_EQ(pinger.pings_failed(), 11);

  for (int i = 0; i < 10; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  {
    std::lock_guard<std::mutex> lock(recorder.mu);
    recorder.answer = absl::UnavailableError("connection refused");
  }
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(pinger.RunDue(), 1);  // the first failure ends the round
  {
    std::lock_guard<std::mutex> lock(recorder.mu);
    recorder.answer = absl::OkStatus();
  }
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(pinger.RunDue(), 9);  // the postponed ones, at once; the failed one waits its interval
  EXPECT_EQ(pinger.active_runs(), 10u);
}

TEST(PingerTest, MetricsCountSentFailedSkippedAndPostponedPings) {
  FakeClock clock;
  Recorder recorder;
  recorder.clock = &clock;
  metrics::Registry registry;
  PingerOptions options;
  options.max_pings_per_second = 3;
  options.metrics = &registry;
  Pinger pinger(options, &clock, recorder.Function());
  for (int i = 0; i < 5; ++i) pinger.Touch(Ref(i), absl::StrCat("exp-", i));
  EXPECT_EQ(pinger.RunDue(), 3);  // two left for later by the budget
  {
    std::lock_guard<std::mutex> lock(recorder.mu);
    recorder.answer = absl::UnavailableError("connection refused");
  }
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(pinger.RunDue(), 1);  // the failure ends the round: the other one is postponed
  const std::string text = registry.TextExposition();
  for (const char* line : {"flyte_neptune_agent_neptune_pings_total{result=\"failed\"} 1\n",
                           "flyte_neptune_agent_neptune_pings_total{result=\"ok\"} 3\n",
                           "flyte_neptune_agent_neptune_pings_skipped_total 2\n",
                           "flyte_neptune_agent_neptune_pings_postponed_total 1\n",
                           "flyte_neptune_agent_neptune_pinged_runs 5\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
}

}  // namespace
}  // namespace fna::neptune
