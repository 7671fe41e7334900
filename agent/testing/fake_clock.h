#ifndef FNA_AGENT_TESTING_FAKE_CLOCK_H_
#define FNA_AGENT_TESTING_FAKE_CLOCK_H_

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"

namespace fna {

// A Clock that moves only when told to (Advance, Set) or when someone sleeps on it (SleepFor moves it forward
// at once). Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1767225600))  // 2026-01-01T00:00:00Z
      : now_(start) {}

  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) const override {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
    slept_ += d;
  }
  // Total time callers spent in SleepFor.
  absl::Duration slept() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slept_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = t;
  }

 private:
  mutable std::mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_);
  mutable absl::Duration slept_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fna

#endif  // FNA_AGENT_TESTING_FAKE_CLOCK_H_
