#ifndef FNA_AGENT_NEPTUNE_OFFLINE_LAYOUT_H_
#define FNA_AGENT_NEPTUNE_OFFLINE_LAYOUT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fna::neptune {

// The names of an offline run directory, shared by the writer (offline_tracker.h) and the uploader
// (agent/sync/): <directory>/offline/run__<uuid>__<pid>__<rand>/ as the neptune 1.14 client lays it out, plus
// the agent's sidecar.
inline constexpr absl::string_view kOfflineSubdirectory = "offline";
inline constexpr absl::string_view kLastPutVersionFile = "last_put_version";
inline constexpr absl::string_view kLastAckVersionFile = "last_ack_version";
inline constexpr absl::string_view kLockFile = ".lock";  // flock(2)ed around every change to a run
inline constexpr absl::string_view kSidecarFile = "flyte-neptune-agent.json";
inline constexpr absl::string_view kSidecarProjectKey = "project";
inline constexpr absl::string_view kSidecarCustomRunIdKey = "customRunId";

// "data-<first_version>.log".
std::string LogFileName(int64_t first_version);

// The data-<N>.log files of `run_dir` as (N, path), by N. Errors name the directory.
absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ListLogFiles(const std::string& run_dir);

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_OFFLINE_LAYOUT_H_
