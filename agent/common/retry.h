#ifndef FNA_AGENT_COMMON_RETRY_H_
#define FNA_AGENT_COMMON_RETRY_H_

#include <functional>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna {

// Capped exponential backoff with jitter for outbound calls (Neptune: neptune-protocol.md §3.12, without the
// Python client's 60 s budget; S3 and STS). Every call is bounded by its caller's deadline instead of a
// budget.
struct RetryOptions {
  // The wait before retry n (0-based) is min(initial_backoff * multiplier^n, max_backoff), scaled by a
  // uniform factor in [1 - jitter, 1 + jitter].
  absl::Duration initial_backoff = absl::Milliseconds(250);
  double multiplier = 2.0;
  absl::Duration max_backoff = absl::Seconds(30);
  double jitter = 0.2;
  // Each attempt gives up after this long (or at the call's deadline, if sooner), so that one hung
  // connection does not use up a long deadline.
  absl::Duration attempt_timeout = absl::Seconds(30);
};

// The wait before retry `retry` (0-based) under `options`; `random` is a uniform sample of [0, 1).
absl::Duration Backoff(const RetryOptions& options, int retry, double random);

// The delay a Retry-After header value asks for at `now`: delay-seconds ("120") or an HTTP-date
// ("Sun, 06 Nov 1994 08:49:37 GMT", also the obsolete RFC 850 and asctime forms); a date in the past is
// zero. std::nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace fna

#endif  // FNA_AGENT_COMMON_RETRY_H_
