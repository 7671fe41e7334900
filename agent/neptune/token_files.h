#ifndef FNA_AGENT_NEPTUNE_TOKEN_FILES_H_
#define FNA_AGENT_NEPTUNE_TOKEN_FILES_H_

#include <sys/types.h>

#include <ctime>
#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "agent/common/secret.h"

namespace fna::neptune {

// Neptune API tokens kept in files (mounted Secrets), re-read when a file changes (modification time, size or
// inode: Kubernetes swaps a symlink on rotation), so a rotated token is used without a restart.
// Thread-safe. Errors name the path, never the content.
class TokenFiles {
 public:
  // The token in `path`, whitespace trimmed. NotFound / PermissionDenied / InvalidArgument (empty file)
  // naming the path.
  absl::StatusOr<Secret> Read(const std::string& path);

 private:
  struct Entry {
    struct timespec mtime = {};
    off_t size = -1;
    ino_t inode = 0;
    Secret token;
  };
  std::mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_TOKEN_FILES_H_
