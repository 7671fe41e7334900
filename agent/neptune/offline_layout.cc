#include "agent/neptune/offline_layout.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fna::neptune {

std::string LogFileName(int64_t first_version) { return absl::StrCat("data-", first_version, ".log"); }

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ListLogFiles(const std::string& run_dir) {
  DIR* dir = opendir(run_dir.c_str());
  if (dir == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("open directory ", run_dir));
  std::vector<std::pair<int64_t, std::string>> files;
  errno = 0;
  while (const struct dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    int64_t version = 0;
    if (absl::ConsumePrefix(&name, "data-") && absl::ConsumeSuffix(&name, ".log") &&
        absl::SimpleAtoi(name, &version)) {
      files.emplace_back(version, absl::StrCat(run_dir, "/", entry->d_name));
    }
  }
  const int err = errno;
  closedir(dir);
  if (err != 0) return absl::ErrnoToStatus(err, absl::StrCat("read directory ", run_dir));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace fna::neptune
