#ifndef FNA_TESTS_NEPTUNE_EMULATOR_MANUAL_CLOCK_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_MANUAL_CLOCK_H_

#include <mutex>

#include "absl/time/time.h"
#include "agent/common/clock.h"

namespace fna::neptune_emulator {

// A Clock that moves only when told to (Advance, Set) or slept on (SleepFor moves it at once), for driving
// the emulator's token expiry and sys/state from a test while the emulator's server threads read it.
//
// Like testing/fake_clock.h, but synchronized with a std::mutex: Debian's Abseil is not built with
// ThreadSanitizer, so TSan does not see absl::Mutex's synchronization and reports a clock advanced by the
// test thread and read by a server thread as a data race. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1767225600))  // 2026-01-01T00:00:00Z
      : now_(start) {}

  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) const override {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
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
  mutable absl::Time now_;  // guarded by mu_
};

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_MANUAL_CLOCK_H_
