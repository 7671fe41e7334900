#include "agent/storage/local_output_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace fna::storage {
namespace {

// The local path `uri` names.
absl::StatusOr<std::string> LocalPath(absl::string_view uri) {
  absl::string_view rest = uri;
  if (absl::ConsumePrefix(&rest, "file://")) {
    // "file:///p" has an empty host; "file://localhost/p" names this host too.
    const absl::string_view host = rest.substr(0, rest.find('/'));
    if (!host.empty() && host != "localhost") {
      return absl::InvalidArgumentError(absl::StrCat("file URI ", uri, " names another host: ", host));
    }
    rest.remove_prefix(host.size());
    if (rest.empty()) return absl::InvalidArgumentError(absl::StrCat("file URI ", uri, " has no path"));
    return std::string(rest);
  }
  const size_t scheme_end = uri.find("://");
  if (scheme_end != absl::string_view::npos) {
    return absl::UnimplementedError(
        absl::StrCat("the local output store cannot read \"", uri.substr(0, scheme_end), "\" URIs: ", uri));
  }
  if (!absl::StartsWith(uri, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("not an absolute path or a file:// URI: ", uri));
  }
  return std::string(uri);
}

}  // namespace

absl::StatusOr<std::optional<std::string>> LocalOutputStore::Read(absl::string_view uri,
                                                                  absl::Time /*deadline*/) {
  absl::StatusOr<std::string> path = LocalPath(uri);
  if (!path.ok()) return path.status();

  int fd;
  do {
    fd = open(path->c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    return absl::ErrnoToStatus(errno, absl::StrCat("open ", *path));
  }

  std::string contents;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("read ", *path));
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return contents;
}

}  // namespace fna::storage
