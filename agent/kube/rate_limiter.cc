#include "agent/kube/rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace fna::kube {

RateLimiter::RateLimiter(double qps, int burst, const Clock* clock)
    : qps_(qps), burst_(std::max(burst, 1)), clock_(clock), tokens_(burst_) {}

absl::Status RateLimiter::Wait(absl::Time deadline) {
  if (qps_ <= 0) return absl::OkStatus();
  absl::Duration wait;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_->Now();
    if (last_ != absl::InfinitePast() && now > last_) {
      tokens_ = std::min(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * qps_);
    }
    last_ = std::max(last_, now);
    wait = tokens_ >= 1 ? absl::ZeroDuration() : absl::Seconds((1 - tokens_) / qps_);
    if (now + wait > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("the client-side rate limit (", qps_,
                                                      " requests/s) would ",
                                                      "delay the request past its deadline"));
    }
    tokens_ -= 1;
  }
  if (wait > absl::ZeroDuration()) clock_->SleepFor(wait);
  return absl::OkStatus();
}

}  // namespace fna::kube
