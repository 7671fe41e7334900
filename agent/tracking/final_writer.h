#ifndef FNA_AGENT_TRACKING_FINAL_WRITER_H_
#define FNA_AGENT_TRACKING_FINAL_WRITER_H_

#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/executor/executor.h"
#include "agent/metrics/metrics.h"
#include "agent/neptune/tracker.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// Finishes the final writes that did not succeed within the finalize grace (design.md §3.4): retried in the
// background with capped exponential backoff until they land, so nothing is lost. Each pending write is also
// recorded on the executor's object by the lifecycle, so a restarted agent resumes it (Resume()). A write
// Neptune refuses for good (NotFound: the project or run was deleted; InvalidArgument) is abandoned instead:
// logged, counted, and its record on the executor cleared.
//
// Thread-safe. Time comes from the injected clock: RunDue() attempts the writes whose time has come, and a
// caller's loop decides how often to call it.
class FinalWriter {
 public:
  struct Options {
    absl::Duration initial_backoff = absl::Seconds(2);
    absl::Duration max_backoff = absl::Minutes(5);
    absl::Duration call_budget = absl::Seconds(10);  // deadline of each tracker call
    std::string console_url;                         // for the run's initial fields, if it must be created
    // flyte_neptune_agent_runs_finalized_late_total, _final_writes_pending and _final_writes_abandoned_total.
    // Not owned; null: not exported.
    metrics::Registry* metrics = nullptr;
  };

  // `tracker`, `executor` and `clock` are not owned and must outlive this.
  FinalWriter(Options options, neptune::Tracker* tracker, executor::Executor* executor, const Clock* clock);

  // Schedules `write` for an immediate attempt, replacing a pending write for the same attempt. Idempotent.
  void Enqueue(FinalWrite write);

  // Loads the pending writes recorded on the executor's objects (after a restart).
  absl::Status Resume();

  // Attempts every write that is due; returns how many remain pending.
  size_t RunDue();

  // The last chance before the agent stops: attempts every pending write once more, now, each within the call
  // budget and `deadline`. Returns (and logs) how many are still pending: a restarted agent resumes them from
  // the executor's records.
  size_t Drain(absl::Time deadline);

  size_t pending() const;

 private:
  struct Entry {
    FinalWrite write;
    absl::Time next_attempt;
    absl::Duration backoff;
    int attempts = 0;
  };

  absl::Status Attempt(const FinalWrite& write, absl::Time deadline);
  // Records the outcome of an attempt at `write`.
  void Done(const FinalWrite& write, const absl::Status& status);

  const Options options_;
  neptune::Tracker* const tracker_;
  executor::Executor* const executor_;
  const Clock* const clock_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by execution id

  metrics::RegistryOrPrivate registry_;
  metrics::Counter* const finalized_late_;
  metrics::Counter* const abandoned_;
  metrics::GaugeCallback pending_;  // last: reads the members above
};

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_FINAL_WRITER_H_
