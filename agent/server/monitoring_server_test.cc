#include "agent/server/monitoring_server.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace fna::server {
namespace {

TEST(MonitoringServerTest, ServesMetricsReadinessAndLiveness) {
  FakeClock clock;
  metrics::Registry registry;
  registry.AddCounter("test_things_total", "Things.")->Get()->Increment(3);
  Health health(&clock, absl::Seconds(30));
  auto server = MonitoringServer::Start("127.0.0.1:0", &registry, &health);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());

  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(metrics->body, ::testing::HasSubstr("\ntest_things_total 3\n"));

  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->body, "starting\n");
  health.SetServing();
  ready = client.Get("/readyz");
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->body, "ok\n");

  auto alive = client.Get("/healthz");
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->status, 200);
  clock.Advance(absl::Minutes(1));
  alive = client.Get("/healthz");
  EXPECT_EQ(alive->status, 503);
  EXPECT_EQ(alive->body, "the gRPC server has not answered a probe for 1m\n");

  EXPECT_EQ(client.Get("/other")->status, 404);
  (*server)->Stop();
  (*server)->Stop();
}

TEST(MonitoringServerTest, AnAddressInUseIsAnError) {
  FakeClock clock;
  metrics::Registry registry;
  Health health(&clock);
  auto first = MonitoringServer::Start("127.0.0.1:0", &registry, &health);
  ASSERT_TRUE(first.ok());
  const std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = MonitoringServer::Start(address, &registry, &health);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            absl::StrCat("cannot listen on ", address, " (address in use or not available here)"));
}

}  // namespace
}  // namespace fna::server
