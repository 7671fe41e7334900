#include "agent/kube/rate_limiter.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace fna::kube {
namespace {

TEST(RateLimiterTest, BurstThenQps) {
  FakeClock clock;
  RateLimiter limiter(10, 3, &clock);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter.Wait(absl::InfiniteFuture()).ok());
  EXPECT_EQ(clock.slept(), absl::ZeroDuration());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(limiter.Wait(absl::InfiniteFuture()).ok());
  EXPECT_EQ(clock.slept(), absl::Milliseconds(500));
  clock.Advance(absl::Seconds(10));  // refills up to the burst, not beyond
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.Wait(absl::InfiniteFuture()).ok());
  EXPECT_EQ(clock.slept(), absl::Milliseconds(600));
}

TEST(RateLimiterTest, RefusesAWaitPastTheDeadlineWithoutTakingAToken) {
  FakeClock clock;
  RateLimiter limiter(1, 1, &clock);
  ASSERT_TRUE(limiter.Wait(clock.Now()).ok());
  absl::Status status = limiter.Wait(clock.Now() + absl::Milliseconds(500));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(clock.slept(), absl::ZeroDuration());
  ASSERT_TRUE(limiter.Wait(clock.Now() + absl::Seconds(1)).ok());  // the refused wait took nothing
  EXPECT_EQ(clock.slept(), absl::Seconds(1));
}

TEST(RateLimiterTest, ZeroQpsIsUnlimited) {
  FakeClock clock;
  RateLimiter limiter(0, 1, &clock);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Wait(clock.Now()).ok());
  EXPECT_EQ(clock.slept(), absl::ZeroDuration());
}

}  // namespace
}  // namespace fna::kube
