#include "agent/neptune/token_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace fna::neptune {

TokenFiles::TokenFiles(metrics::Registry* metrics)
    : registry_(metrics),
      read_errors_(
          registry_
              ->AddCounter("flyte_neptune_agent_token_file_read_errors_total",
                           "Reads of a Neptune API token file that failed (tracking with it is degraded).")
              ->Get()),
      unreadable_(registry_
                      ->AddGauge("flyte_neptune_agent_token_files_unreadable",
                                 "Neptune API token files whose last read failed.")
                      ->Get()) {}

absl::StatusOr<Secret> TokenFiles::Read(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    const int error = errno;
    const std::string message = absl::StrCat("Neptune API token file ", path, ": ", std::strerror(error));
    const absl::Status status = error == ENOENT   ? absl::NotFoundError(message)
                                : error == EACCES ? absl::PermissionDeniedError(message)
                                                  : absl::UnavailableError(message);
    std::lock_guard<std::mutex> lock(mu_);
    Note(path, status);
    return status;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(path);
  if (it != entries_.end() && it->second.mtime.tv_sec == info.st_mtim.tv_sec &&
      it->second.mtime.tv_nsec == info.st_mtim.tv_nsec && it->second.size == info.st_size &&
      it->second.inode == info.st_ino) {
    Note(path, absl::OkStatus());
    return it->second.token;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const absl::Status status =
        absl::PermissionDeniedError(absl::StrCat("Neptune API token file ", path, ": cannot be read"));
    Note(path, status);
    return status;
  }
  std::stringstream content;
  content << in.rdbuf();
  const std::string token(absl::StripAsciiWhitespace(content.str()));
  if (token.empty()) {
    const absl::Status status =
        absl::InvalidArgumentError(absl::StrCat("Neptune API token file ", path, " is empty"));
    Note(path, status);
    return status;
  }
  Entry& entry = entries_[path];
  entry.mtime = info.st_mtim;
  entry.size = info.st_size;
  entry.inode = info.st_ino;
  entry.token = Secret(token);
  Note(path, absl::OkStatus());
  return entry.token;
}

void TokenFiles::Note(const std::string& path, const absl::Status& status) {
  if (!status.ok()) read_errors_->Increment();
  const bool was_failing = failing_.count(path) != 0;
  if (status.ok() == !was_failing) return;
  if (status.ok()) {
    failing_.erase(path);
    Log(LogLevel::kInfo, "neptune", "Neptune API token file readable again", {{"path", path}});
  } else {
    failing_.insert(path);
    if (entries_.count(path) != 0) {  // a file never read is the caller's to report (a start-up error)
      Log(LogLevel::kWarning, "neptune",
          "Neptune API token file unreadable: tracking with it is degraded until it is readable again",
          {{"path", path}, {"error", std::string(status.message())}});
    }
  }
  unreadable_->Set(static_cast<double>(failing_.size()));
}

}  // namespace fna::neptune
