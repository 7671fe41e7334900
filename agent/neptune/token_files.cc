#include "agent/neptune/token_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fna::neptune {

absl::StatusOr<Secret> TokenFiles::Read(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    const int error = errno;
    const std::string message = absl::StrCat("Neptune API token file ", path, ": ", std::strerror(error));
    return error == ENOENT   ? absl::NotFoundError(message)
           : error == EACCES ? absl::PermissionDeniedError(message)
                             : absl::UnavailableError(message);
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(path);
  if (it != entries_.end() && it->second.mtime.tv_sec == info.st_mtim.tv_sec &&
      it->second.mtime.tv_nsec == info.st_mtim.tv_nsec && it->second.size == info.st_size &&
      it->second.inode == info.st_ino) {
    return it->second.token;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(absl::StrCat("Neptune API token file ", path, ": cannot be read"));
  }
  std::stringstream content;
  content << in.rdbuf();
  const std::string token(absl::StripAsciiWhitespace(content.str()));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat("Neptune API token file ", path, " is empty"));
  Entry& entry = entries_[path];
  entry.mtime = info.st_mtim;
  entry.size = info.st_size;
  entry.inode = info.st_ino;
  entry.token = Secret(token);
  return entry.token;
}

}  // namespace fna::neptune
