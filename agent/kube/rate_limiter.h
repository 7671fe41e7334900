#ifndef FNA_AGENT_KUBE_RATE_LIMITER_H_
#define FNA_AGENT_KUBE_RATE_LIMITER_H_

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"

namespace fna::kube {

// A client-side token bucket (client-go's flowcontrol rate limiter): `burst` requests at once, refilled at
// `qps` per second of the injected clock. Each Wait() takes one token, waiting (Clock::SleepFor) until it is
// there; waiters are served in the order they reserved, so a burst of callers spreads out evenly.
//
// Thread safety: safe for concurrent use. `clock` (not owned) must outlive the limiter.
class RateLimiter {
 public:
  // qps <= 0 means no limit; burst < 1 is taken as 1.
  RateLimiter(double qps, int burst, const Clock* clock);

  // Takes a token, after waiting for it if needed. DeadlineExceeded, taking nothing and without waiting,
  // when the token would come after `deadline`.
  absl::Status Wait(absl::Time deadline);

 private:
  const double qps_;
  const double burst_;
  const Clock* const clock_;

  std::mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);  // may go negative: tokens promised to waiters
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace fna::kube

#endif  // FNA_AGENT_KUBE_RATE_LIMITER_H_
