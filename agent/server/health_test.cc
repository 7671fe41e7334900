#include "agent/server/health.h"

#include <atomic>

#include "agent/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace fna::server {
namespace {

TEST(HealthTest, ReadyOnlyWhileServingAndEveryCheckPasses) {
  FakeClock clock;
  Health health(&clock);
  std::atomic<bool> synced{false};
  health.AddReadinessCheck("executor", [&synced] { return synced.load(); });
  EXPECT_FALSE(health.Readiness().ok);
  EXPECT_EQ(health.Readiness().reason, "starting");
  health.SetServing();
  EXPECT_EQ(health.Readiness().reason, "executor not ready");
  synced = true;
  EXPECT_TRUE(health.Readiness().ok);
  EXPECT_EQ(health.Readiness().reason, "");
  health.SetDraining();
  EXPECT_FALSE(health.Readiness().ok);
  EXPECT_EQ(health.Readiness().reason, "draining");
  health.SetServing();  // draining is final
  EXPECT_EQ(health.phase(), Health::Phase::kDraining);
}

TEST(HealthTest, AliveWhileTheServingLoopAnswersWithinTheTimeout) {
  FakeClock clock;
  Health health(&clock, absl::Seconds(30));
  clock.Advance(absl::Hours(1));
  EXPECT_TRUE(health.Liveness().ok);  // starting: never killed for a slow start
  health.SetServing();
  clock.Advance(absl::Seconds(30));
  EXPECT_TRUE(health.Liveness().ok);
  clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(health.Liveness().ok);
  EXPECT_EQ(health.Liveness().reason, "the gRPC server has not answered a probe for 31s");
  health.Heartbeat();
  EXPECT_TRUE(health.Liveness().ok);
  clock.Advance(absl::Minutes(5));
  health.SetDraining();
  EXPECT_TRUE(health.Liveness().ok);  // a draining agent is not killed
}

}  // namespace
}  // namespace fna::server
