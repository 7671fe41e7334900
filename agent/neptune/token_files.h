#ifndef FNA_AGENT_NEPTUNE_TOKEN_FILES_H_
#define FNA_AGENT_NEPTUNE_TOKEN_FILES_H_

#include <sys/types.h>

#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "agent/common/secret.h"
#include "agent/metrics/metrics.h"

namespace fna::neptune {

// Neptune API tokens kept in files (mounted Secrets), re-read when a file changes (modification time, size or
// inode: Kubernetes swaps a symlink on rotation), so a rotated token is used without a restart.
//
// A file that cannot be read degrades tracking only (the agent stays ready): the failed reads are counted
// (flyte_neptune_agent_token_file_read_errors_total), the files whose last read failed are a gauge
// (flyte_neptune_agent_token_files_unreadable), and each change between readable and unreadable is logged
// once (a file that was never readable is left to the caller to report).
//
// Thread-safe. Errors name the path, never the content. `metrics` (not owned; null: not exported) must
// outlive this.
class TokenFiles {
 public:
  explicit TokenFiles(metrics::Registry* metrics = nullptr);

  // The token in `path`, whitespace trimmed. NotFound / PermissionDenied / InvalidArgument (empty file)
  // naming the path.
  absl::StatusOr<Secret> Read(const std::string& path);

 private:
  // Records the outcome of reading `path`.
  void Note(const std::string& path, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Entry {
    struct timespec mtime = {};
    off_t size = -1;
    ino_t inode = 0;
    Secret token;
  };
  metrics::RegistryOrPrivate registry_;
  metrics::Counter* const read_errors_;
  metrics::Gauge* const unreadable_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> failing_ ABSL_GUARDED_BY(mu_);  // paths whose last read failed
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_TOKEN_FILES_H_
