#ifndef FNA_AGENT_COMMON_CLOCK_H_
#define FNA_AGENT_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fna {

// The source of "now" for every time-dependent decision (backoff, grace periods, deadlines, schedules), so
// that tests drive time explicitly (testing/fake_clock.h). Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Waits `duration` of this clock's time: really for the real clock, by moving time for a fake one, so that
  // backoffs in tests take no time.
  virtual void SleepFor(absl::Duration duration) const = 0;

  // The process-wide wall clock. Never null; not owned by the caller.
  static const Clock* Real();
};

}  // namespace fna

#endif  // FNA_AGENT_COMMON_CLOCK_H_
