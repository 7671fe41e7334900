#ifndef FNA_AGENT_NEPTUNE_PINGER_H_
#define FNA_AGENT_NEPTUNE_PINGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/metrics/metrics.h"
#include "agent/neptune/tracker.h"

namespace fna::neptune {

struct PingerOptions {
  // A run is pinged at most once per interval (the Python client pings every 10 s).
  absl::Duration interval = absl::Seconds(10);
  // A run nobody touched (Touch) for this long is dropped: its task is no longer polled. A run marked final
  // is not re-added by Touch for this long either.
  absl::Duration idle_expiry = absl::Minutes(15);
  // Budget over all runs: a token bucket refilled at this rate, holding at most one second's worth (and at
  // least one ping). With more runs than interval * rate, every run is still pinged, less often.
  double max_pings_per_second = 50;
  // Deadline of each ping (the Python client uses 10 s). No retries: the next interval is the retry.
  absl::Duration ping_timeout = absl::Seconds(10);
  // Where the pings are counted (flyte_neptune_agent_neptune_pings_total{result}, _pings_skipped_total for
  // the budget, _pings_postponed_total while Neptune is unreachable, _pinged_runs). Not owned; null: not
  // exported.
  metrics::Registry* metrics = nullptr;
};

// What to ping: the run and the Neptune experiment uuid it was created as.
struct PingTarget {
  RunRef ref;
  std::string experiment_id;
};

// Sends one ping. NotFound means the run is gone (the pinger forgets it); Unavailable/DeadlineExceeded mean
// Neptune is unreachable (the pinger ends the round, leaving the other due runs for the next one).
using PingFunction = std::function<absl::Status(const PingTarget& target, absl::Time deadline)>;

// Keeps the runs of live tasks Active in Neptune (a run turns Inactive some time after pings stop; there is
// no "close" request, neptune-protocol.md §3.10). The set of runs is a cache rebuilt from the lifecycle's
// calls (design.md §3.1): CreateRun and Write of a live run Touch it, the final write marks it final, and a
// run no call touched for `idle_expiry` is dropped.
//
// Driven by RunDue(), which the agent's periodic thread calls (every second or so); all decisions read the
// injected clock, so the schedule is exact under FakeClock. One entry per run (deduplicated by routing
// rule, project and custom run id); due runs are pinged in order of due time, so under a tight budget every
// run still gets its turn.
//
// Thread safety: all methods are safe for concurrent use. RunDue calls the ping function without holding
// the pinger's lock, one ping at a time; a RunDue that starts while another is running returns 0 at once.
// `clock` (not owned) must outlive the pinger.
class Pinger {
 public:
  Pinger(PingerOptions options, const Clock* clock, PingFunction ping);
  Pinger(const Pinger&) = delete;
  Pinger& operator=(const Pinger&) = delete;

  // Adds the run (first ping due at once) or records that it is still live. Ignored for a run marked final
  // less than `idle_expiry` ago.
  void Touch(const RunRef& ref, const std::string& experiment_id);
  // Stops pinging the run (it is finished).
  void MarkFinal(const RunRef& ref);

  // Drops expired runs, then pings the due ones within the budget. Returns the number of pings sent.
  int RunDue();

  // The runs being pinged.
  size_t active_runs() const;
  // Pings sent (successful or not) and failed, since construction.
  int64_t pings_sent() const;
  int64_t pings_failed() const;

 private:
  struct Entry {
    PingTarget target;
    absl::Time last_touched;
    absl::Time next_due;
  };

  static std::string Key(const RunRef& ref);
  void Refill(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PingerOptions options_;
  const Clock* const clock_;
  const PingFunction ping_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> finalized_ ABSL_GUARDED_BY(mu_);  // key -> when marked final
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_refill_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pings_sent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pings_failed_ ABSL_GUARDED_BY(mu_) = 0;

  metrics::RegistryOrPrivate registry_;
  metrics::Counter* const pings_ok_;
  metrics::Counter* const pings_failed_metric_;
  metrics::Counter* const skipped_;
  metrics::Counter* const postponed_;
  metrics::GaugeCallback pinged_runs_;  // last: reads the members above
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_PINGER_H_
