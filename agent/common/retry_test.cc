#include "agent/common/retry.h"

#include <optional>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fna {
namespace {

TEST(BackoffTest, DoublesUpToTheCapWithoutJitterAtMidpoint) {
  RetryOptions options;  // 250 ms, x2, 30 s cap, jitter 0.2
  EXPECT_EQ(Backoff(options, 0, 0.5), absl::Milliseconds(250));
  EXPECT_EQ(Backoff(options, 1, 0.5), absl::Milliseconds(500));
  EXPECT_EQ(Backoff(options, 2, 0.5), absl::Seconds(1));
  EXPECT_EQ(Backoff(options, 6, 0.5), absl::Seconds(16));
  EXPECT_EQ(Backoff(options, 7, 0.5), absl::Seconds(30));
  EXPECT_EQ(Backoff(options, 1000, 0.5), absl::Seconds(30));
}

TEST(BackoffTest, JitterStaysWithinItsBand) {
  RetryOptions options;
  EXPECT_EQ(Backoff(options, 2, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(Backoff(options, 2, 1.0), absl::Milliseconds(1200));
  options.jitter = 0;
  EXPECT_EQ(Backoff(options, 2, 0.0), absl::Seconds(1));
}

TEST(RetryAfterTest, DelaySeconds) {
  const absl::Time now = absl::FromUnixSeconds(1767225600);
  EXPECT_EQ(ParseRetryAfter("3", now), absl::Seconds(3));
  EXPECT_EQ(ParseRetryAfter(" 120 ", now), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter("0", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("-1", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("1.5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), std::nullopt);
}

TEST(RetryAfterTest, HttpDates) {
  const absl::Time now = absl::FromUnixSeconds(1767225600);  // Thu, 01 Jan 2026 00:00:00 GMT
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 2026 00:00:07 GMT", now), absl::Seconds(7));
  EXPECT_EQ(ParseRetryAfter("Thursday, 01-Jan-26 00:01:00 GMT", now), absl::Minutes(1));
  EXPECT_EQ(ParseRetryAfter("Thu Jan  1 00:00:09 2026", now), absl::Seconds(9));
  EXPECT_EQ(ParseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), absl::ZeroDuration());
}

}  // namespace
}  // namespace fna
