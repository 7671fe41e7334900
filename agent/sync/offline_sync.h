#ifndef FNA_AGENT_SYNC_OFFLINE_SYNC_H_
#define FNA_AGENT_SYNC_OFFLINE_SYNC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/neptune/tracker.h"

namespace fna::sync {

// The outcome for one run directory under <neptune_directory>/offline/.
struct RunSyncResult {
  std::string directory;      // the run directory's name, "run__<uuid>__<pid>__<rand>"
  std::string project;        // from the sidecar; "" when it could not be read
  std::string custom_run_id;  // from the sidecar; "" when it could not be read
  int64_t first_version = 0;  // synced: the versions sent, first_version..last_version
  int64_t last_version = 0;   //   (last_version is the new last_ack_version)
  int64_t operations = 0;     // synced: how many records were sent
  std::string reason;         // skipped / failed: why, e.g. a status message (never a token)
};

struct SyncReport {
  std::vector<RunSyncResult> synced;   // uploaded and acknowledged
  std::vector<RunSyncResult> skipped;  // nothing to send, or not a run this agent wrote (no sidecar)
  std::vector<RunSyncResult> failed;   // not (or not completely) uploaded; nothing acknowledged
};

// Uploads the runs an OfflineTracker (agent/neptune/offline_tracker.h) wrote under
// <neptune_directory>/offline/ through `tracker` (normally a NeptuneClient), in directory-name order.
//
// For each entry of offline/:
//   - not a directory, or last_ack_version >= last_put_version (empty files count as 0): skipped, nothing
//     is sent;
//   - no sidecar flyte-neptune-agent.json: skipped ("no flyte-neptune-agent.json"), nothing is sent;
//   - otherwise the records of data-<N>.log (files in N order) with last_ack_version < version <=
//     last_put_version are read, as last_put_version was when the run was examined (records appended
//     later are left for the next sync). Each operation becomes a neptune::Field: AssignString →
//     std::string, AssignInt → int64_t, AssignFloat → double, AssignBool → bool, AssignDatetime (epoch
//     milliseconds) → absl::Time, AddStrings → StringSet; the path segments are joined with '/'. A record
//     that is not valid JSON, an unsupported operation type, a malformed operation or a gap in the versions
//     fails the run before anything is sent.
//   - the fields are sent in version order, in batches that never hold the same path twice (so a later
//     assign always wins whatever the tracker does within a batch): CreateRun(RunRef{project,
//     customRunId, -1}, first batch) when nothing was acknowledged before, then Write for the other batches
//     (every batch is a Write when an earlier sync acknowledged part of the run: the run exists already).
//     All calls for one run share the deadline clock->Now() + per_run_budget.
//   - once every call succeeded, last_ack_version is replaced (temporary file + rename(2), under the run's
//     .lock flock, never lowered) by the last version sent, so a repeated sync sends nothing. If any call
//     failed the run is reported failed and last_ack_version is left as it was: the next sync sends the
//     same records again (assigns and unions are safe to repeat).
// Runs are independent: one failing does not stop the others.
//
// Errors: only when offline/ itself cannot be listed (NotFound when it does not exist). Per-run problems
// are in the report. `tracker` and `clock` are not owned and must outlive the call. Not safe to run
// concurrently with another sync of the same directory (both would upload the same records, which is
// harmless but wasteful); safe alongside an agent appending to the runs.
absl::StatusOr<SyncReport> SyncOfflineRuns(const std::string& neptune_directory, neptune::Tracker* tracker,
                                           const Clock* clock, absl::Duration per_run_budget);

}  // namespace fna::sync

#endif  // FNA_AGENT_SYNC_OFFLINE_SYNC_H_
