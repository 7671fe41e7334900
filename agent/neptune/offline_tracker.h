#ifndef FNA_AGENT_NEPTUNE_OFFLINE_TRACKER_H_
#define FNA_AGENT_NEPTUNE_OFFLINE_TRACKER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/neptune/tracker.h"

namespace fna::neptune {

struct OfflineTrackerOptions {
  // The Neptune data directory (NEPTUNE_DATA_DIRECTORY; `neptune sync --path`). Runs go to
  // <directory>/offline/.
  std::string directory = ".neptune";
  // A new data-<N>.log is started when appending a record would take the current one past this size.
  int64_t max_log_file_bytes = int64_t{64} << 20;
};

// Writes each run to a directory laid out as the neptune 1.14 Python client does in offline mode, so that
// `neptune sync --path <directory>` uploads it:
//
//   <directory>/offline/run__<uuid>__<pid>__<rand>/
//     metadata.json      mode, containerId, containerType, structureVersion 3, os, pythonVersion,
//                        neptuneClientVersion, createdAt; 2-space indent, no trailing newline
//     data-<N>.log       one {"obj": <operation>, "version": v, "at": <unix seconds>} per line; N is the
//                        file's first version; versions run 1, 2, 3, ... across the files
//     last_put_version   the highest version written
//     last_ack_version   empty: nothing was uploaded
//     upload_path/       empty
//     flyte-neptune-agent.json  {"project", "customRunId"}, which `neptune sync` does not read
//     .lock              flock(2)ed around every change to the run
//
// The directory name is a pure function of (project, custom_run_id) (SHA-256): a version-4-formatted uuid,
// a "pid" in [1, 4194303] that is no process id, and 8 characters of [a-z0-9]. A restarted agent, or another
// replica sharing the directory, finds the same run. RunInfo.run_id is the uuid (the container id the
// offline client would use); RunInfo.url is "file://" + the run directory's absolute path (not
// percent-encoded).
//
// Values are limited as the Python client limits them before storing: strings are cut to 16384
// characters; ints outside int32, non-finite floats and infinite times are dropped (each with a warning
// log). A field path is split on '/', empty segments removed; a path without segments is InvalidArgument
// and nothing of that call is written.
//
// Thread safety: safe for concurrent use, also by other processes on the same directory: every change to a
// run happens under an exclusive flock on its lock file and reads the run's state from disk first.
// Crash safety (against process crashes; like the Python client, nothing is fsync'ed): a run appears with
// its initial records by rename(2) of a staging directory built in <directory>/.flyte-neptune-agent-staging/
// (outside offline/, every entry of which `neptune sync` takes for a run; one left by a crash stays there,
// harmless). Before each append a torn last line is cut off and the last version is recomputed from the log.
//
// `deadline` is not consulted: all work is local file I/O.
class OfflineTracker final : public Tracker {
 public:
  // Creates <directory>/offline/ if needed and resolves `directory` to an absolute path. `clock` (not owned)
  // must outlive the tracker; it stamps createdAt and each record's "at".
  static absl::StatusOr<std::unique_ptr<OfflineTracker>> Create(OfflineTrackerOptions options,
                                                                const Clock* clock);

  // Creates the run's directory with `fields` as its first records. If the directory exists (an earlier call,
  // possibly by another process, created it) returns the same RunInfo and writes nothing.
  absl::StatusOr<RunInfo> CreateRun(const RunRef& ref, const std::vector<Field>& fields,
                                    absl::Time deadline) override;

  // Appends `fields` as records with the next versions. NotFound if the run's directory does not exist.
  absl::Status Write(const RunRef& ref, const std::vector<Field>& fields, absl::Time deadline) override;

  // The same file:// URL as CreateRun's RunInfo.url. No I/O.
  std::string FallbackLink(const RunRef& ref) const override;

  // "run__<uuid>__<pid>__<rand>", the name of the run's directory. Pure.
  static std::string RunDirectoryName(const RunRef& ref);

  // The absolute path of the run's directory. No I/O.
  std::string RunDirectory(const RunRef& ref) const;

 private:
  OfflineTracker(std::string absolute_directory, int64_t max_log_file_bytes, const Clock* clock);

  const std::string directory_;  // absolute
  const int64_t max_log_file_bytes_;
  const Clock* const clock_;
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_OFFLINE_TRACKER_H_
