#include "agent/neptune/offline_tracker.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "agent/neptune/client_limits.h"
#include "agent/neptune/offline_layout.h"
#include "agent/version.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

using Json = nlohmann::ordered_json;

constexpr absl::string_view kComponent = "neptune";
constexpr absl::string_view kStagingSubdirectory = ".flyte-neptune-agent-staging";
constexpr int64_t kReadChunk = 64 * 1024;

std::string JoinPath(absl::string_view dir, absl::string_view name) { return absl::StrCat(dir, "/", name); }

// "<what> <path>: <strerror>", with the code errno maps to (ENOENT: NotFound, ...).
absl::Status ErrnoError(int err, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }

  int get() const { return fd_; }

 private:
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd_;
};

absl::StatusOr<Fd> Open(const std::string& path, int flags) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return Fd(fd);
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status ReadAt(int fd, int64_t offset, int64_t size, absl::string_view path, std::string* out) {
  out->resize(static_cast<size_t>(size));
  int64_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, out->data() + done, static_cast<size_t>(size - done), offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read", path);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat("read ", path, ": unexpected end of file"));
    done += n;
  }
  return absl::OkStatus();
}

absl::Status CreateFile(const std::string& path, absl::string_view contents) {
  FNA_ASSIGN_OR_RETURN(Fd fd, Open(path, O_WRONLY | O_CREAT | O_EXCL));
  return WriteAll(fd.get(), contents, path);
}

// Replaces `path` with `contents` atomically (a sibling temporary file, then rename(2)).
absl::Status ReplaceFile(const std::string& path, absl::string_view contents) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    FNA_ASSIGN_OR_RETURN(Fd fd, Open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    FNA_RETURN_IF_ERROR(WriteAll(fd.get(), contents, tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError(errno, "rename to", path);
  return absl::OkStatus();
}

// The whole file, or "" when it does not exist.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  absl::StatusOr<Fd> fd = Open(path, O_RDONLY);
  if (absl::IsNotFound(fd.status())) return std::string();
  FNA_RETURN_IF_ERROR(fd.status());
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return ErrnoError(errno, "stat", path);
  std::string contents;
  FNA_RETURN_IF_ERROR(ReadAt(fd->get(), 0, st.st_size, path, &contents));
  return contents;
}

absl::Status MakeDirectory(const std::string& path, bool exist_ok) {
  if (mkdir(path.c_str(), 0755) == 0 || (exist_ok && errno == EEXIST)) return absl::OkStatus();
  return ErrnoError(errno, "mkdir", path);
}

void RemoveTree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

// The sha256 of (project, custom_run_id), unambiguously framed.
std::string RunDigest(const RunRef& ref) {
  const std::string input = absl::StrCat(ref.project.size(), ":", ref.project, ref.custom_run_id);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

struct RunName {
  std::string uuid;
  std::string directory_name;
};

// Digest bytes 0-15: the uuid, with the version-4 and RFC 4122 variant bits set; 16-19: the "pid" (big
// endian, into [1, 4194303], Linux's largest pid range); 20-27: the 8 random-key characters.
RunName NameOf(const RunRef& ref) {
  std::string digest = RunDigest(ref);
  digest[6] = static_cast<char>((digest[6] & 0x0f) | 0x40);
  digest[8] = static_cast<char>((digest[8] & 0x3f) | 0x80);
  const std::string hex = absl::BytesToHexString(absl::string_view(digest).substr(0, 16));
  RunName name;
  name.uuid = absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                           hex.substr(16, 4), "-", hex.substr(20, 12));
  const auto byte = [&digest](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(digest[i])); };
  const uint32_t pid_bits = byte(16) << 24 | byte(17) << 16 | byte(18) << 8 | byte(19);
  const uint32_t pid = 1 + pid_bits % 4194303;
  constexpr absl::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string key;
  for (int i = 20; i < 28; ++i) key.push_back(kAlphabet[byte(i) % kAlphabet.size()]);
  name.directory_name = absl::StrCat("run__", name.uuid, "__", pid, "__", key);
  return name;
}

void WarnDropped(const Field& field, absl::string_view why) {
  Log(LogLevel::kWarning, kComponent,
      absl::StrCat("dropped a value the Neptune client would not store: ", why), {{"field", field.path}});
}

// The operation the Python client would store for `field`, or nullopt when its limits drop the value.
std::optional<Json> ToOperation(const Field& field, Json path) {
  Json op;
  const auto assign = [&](absl::string_view type, Json value) {
    op["type"] = std::string(type);
    op["path"] = std::move(path);
    op["value"] = std::move(value);
  };
  return std::visit(
      [&](const auto& value) -> std::optional<Json> {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          bool truncated = false;
          const absl::string_view kept = TruncateCharacters(value, kMaxStringCharacters, &truncated);
          if (truncated) {
            Log(LogLevel::kWarning, kComponent,
                absl::StrCat("string value truncated to ", kMaxStringCharacters, " characters"),
                {{"field", field.path}});
          }
          assign("AssignString", std::string(kept));
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!FitsInt32(value)) {
            WarnDropped(field, absl::StrCat("integer ", value, " is outside the 32-bit range"));
            return std::nullopt;
          }
          assign("AssignInt", value);
        } else if constexpr (std::is_same_v<T, double>) {
          if (!std::isfinite(value)) {
            WarnDropped(field, "float is NaN or infinite");
            return std::nullopt;
          }
          assign("AssignFloat", value);
        } else if constexpr (std::is_same_v<T, bool>) {
          assign("AssignBool", value);
        } else if constexpr (std::is_same_v<T, absl::Time>) {
          if (value == absl::InfiniteFuture() || value == absl::InfinitePast()) {
            WarnDropped(field, "datetime is infinite");
            return std::nullopt;
          }
          assign("AssignDatetime", absl::ToInt64Milliseconds(value - absl::UnixEpoch()));
        } else {
          static_assert(std::is_same_v<T, StringSet>);
          op["type"] = "AddStrings";
          op["path"] = std::move(path);
          op["values"] = value.values;
        }
        return op;
      },
      field.value);
}

// The operations for `fields`, in order. InvalidArgument for a path without segments.
absl::StatusOr<std::vector<Json>> ToOperations(const std::vector<Field>& fields) {
  std::vector<Json> ops;
  ops.reserve(fields.size());
  for (const Field& field : fields) {
    Json path = Json::array();
    for (absl::string_view segment : absl::StrSplit(field.path, '/', absl::SkipEmpty())) {
      path.push_back(std::string(segment));
    }
    if (path.empty())
      return absl::InvalidArgumentError(absl::StrCat("field path \"", field.path, "\" is empty"));
    std::optional<Json> op = ToOperation(field, std::move(path));
    if (op.has_value()) ops.push_back(*std::move(op));
  }
  return ops;
}

std::string Dump(const Json& json, int indent) {
  // ensure_ascii, as Python's json.dumps: the files stay readable whatever the reader's locale.
  return json.dump(indent, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
}

double UnixSeconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

std::string OsDescription() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return absl::StrCat(u.sysname, "-", u.release, "-", u.machine);
}

// The first version of the newest data-<N>.log in `run_dir`, or 0 when there is none.
absl::StatusOr<int64_t> NewestLogFirstVersion(const std::string& run_dir) {
  FNA_ASSIGN_OR_RETURN(const auto files, ListLogFiles(run_dir));
  return files.empty() ? 0 : files.back().first;
}

// The offset of the last '\n' in [0, end) of the file, or -1.
absl::StatusOr<int64_t> FindLastNewline(int fd, int64_t end, absl::string_view path) {
  std::string chunk;
  while (end > 0) {
    const int64_t start = end > kReadChunk ? end - kReadChunk : 0;
    FNA_RETURN_IF_ERROR(ReadAt(fd, start, end - start, path, &chunk));
    const size_t pos = chunk.rfind('\n');
    if (pos != std::string::npos) return start + static_cast<int64_t>(pos);
    end = start;
  }
  return -1;
}

// The last complete record of the log `fd` (whose first version is `first_version`), after cutting off an
// incomplete last line. Returns its version (first_version - 1 for an empty log) and sets `size`.
absl::StatusOr<int64_t> RecoverLog(int fd, int64_t first_version, const std::string& path, int64_t* size) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, "stat", path);
  *size = st.st_size;
  if (*size == 0) return first_version - 1;
  FNA_ASSIGN_OR_RETURN(const int64_t last_newline, FindLastNewline(fd, *size, path));
  if (last_newline != *size - 1) {
    Log(LogLevel::kWarning, kComponent, "cutting off the torn last line of a run's log",
        {{"path", path}, {"bytes", absl::StrCat(*size - last_newline - 1)}});
    if (ftruncate(fd, last_newline + 1) != 0) return ErrnoError(errno, "truncate", path);
    *size = last_newline + 1;
    if (*size == 0) return first_version - 1;
  }
  FNA_ASSIGN_OR_RETURN(const int64_t previous_newline, FindLastNewline(fd, *size - 1, path));
  std::string line;
  FNA_RETURN_IF_ERROR(ReadAt(fd, previous_newline + 1, *size - 2 - previous_newline, path, &line));
  try {
    const Json record = Json::parse(line);
    return record.at("version").get<int64_t>();
  } catch (const Json::exception& e) {
    return absl::DataLossError(
        absl::StrCat("cannot read the version of the last record of ", path, ": ", e.what()));
  }
}

// Appends `ops` to the run at `run_dir` (locked by the caller, or private to it) and brings
// last_put_version up to date. First cuts off a torn last line; numbers from the log's last record.
absl::Status AppendRecords(const std::string& run_dir, const std::vector<Json>& ops, double at,
                           int64_t max_log_file_bytes) {
  FNA_ASSIGN_OR_RETURN(int64_t first_version, NewestLogFirstVersion(run_dir));
  if (first_version == 0) first_version = 1;
  std::string path = JoinPath(run_dir, LogFileName(first_version));
  FNA_ASSIGN_OR_RETURN(Fd fd, Open(path, O_RDWR | O_CREAT | O_APPEND));
  int64_t size = 0;
  FNA_ASSIGN_OR_RETURN(int64_t version, RecoverLog(fd.get(), first_version, path, &size));

  std::string pending;  // whole lines for `fd`, written with one write(2) per file
  for (const Json& op : ops) {
    ++version;
    Json record;
    record["obj"] = op;
    record["version"] = version;
    record["at"] = at;
    const std::string line = Dump(record, -1);
    if (size > 0 && size + static_cast<int64_t>(line.size()) > max_log_file_bytes) {
      FNA_RETURN_IF_ERROR(WriteAll(fd.get(), pending, path));
      pending.clear();
      path = JoinPath(run_dir, LogFileName(version));
      FNA_ASSIGN_OR_RETURN(fd, Open(path, O_WRONLY | O_CREAT | O_APPEND));
      size = 0;
    }
    absl::StrAppend(&pending, line, "\n");
    size += static_cast<int64_t>(line.size()) + 1;
  }
  FNA_RETURN_IF_ERROR(WriteAll(fd.get(), pending, path));

  const std::string last_put_path = JoinPath(run_dir, kLastPutVersionFile);
  FNA_ASSIGN_OR_RETURN(const std::string last_put, ReadSmallFile(last_put_path));
  const std::string wanted = absl::StrCat(version);
  if (last_put != wanted) FNA_RETURN_IF_ERROR(ReplaceFile(last_put_path, wanted));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<OfflineTracker>> OfflineTracker::Create(OfflineTrackerOptions options,
                                                                       const Clock* clock) {
  if (options.max_log_file_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_log_file_bytes must be positive, not ", options.max_log_file_bytes));
  }
  std::error_code error;
  std::filesystem::path directory = std::filesystem::absolute(options.directory, error);
  if (error) return absl::InternalError(absl::StrCat("resolve ", options.directory, ": ", error.message()));
  std::filesystem::create_directories(directory / std::string(kOfflineSubdirectory), error);
  if (error) {
    return absl::ErrnoToStatus(error.value(),
                               absl::StrCat("create ", directory.string(), "/", kOfflineSubdirectory));
  }
  directory = directory.lexically_normal();
  std::string absolute = directory.string();
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  return std::unique_ptr<OfflineTracker>(
      new OfflineTracker(std::move(absolute), options.max_log_file_bytes, clock));
}

OfflineTracker::OfflineTracker(std::string absolute_directory, int64_t max_log_file_bytes, const Clock* clock)
    : directory_(std::move(absolute_directory)), max_log_file_bytes_(max_log_file_bytes), clock_(clock) {}

std::string OfflineTracker::RunDirectoryName(const RunRef& ref) { return NameOf(ref).directory_name; }

std::string OfflineTracker::RunDirectory(const RunRef& ref) const {
  return absl::StrCat(directory_, "/", kOfflineSubdirectory, "/", RunDirectoryName(ref));
}

std::string OfflineTracker::FallbackLink(const RunRef& ref) const {
  return absl::StrCat("file://", RunDirectory(ref));
}

absl::StatusOr<RunInfo> OfflineTracker::CreateRun(const RunRef& ref, const std::vector<Field>& fields,
                                                  absl::Time /*deadline*/) {
  const RunName name = NameOf(ref);
  const std::string run_dir = RunDirectory(ref);
  const RunInfo info{name.uuid, absl::StrCat("file://", run_dir)};

  struct stat st;
  if (stat(run_dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return absl::FailedPreconditionError(absl::StrCat(run_dir, " is not a directory"));
    return info;
  }
  if (errno != ENOENT) return ErrnoError(errno, "stat", run_dir);

  FNA_ASSIGN_OR_RETURN(const std::vector<Json> ops, ToOperations(fields));
  const absl::Time now = clock_->Now();

  const std::string staging_root = JoinPath(directory_, kStagingSubdirectory);
  FNA_RETURN_IF_ERROR(MakeDirectory(staging_root, /*exist_ok=*/true));
  std::string staging = JoinPath(staging_root, "run-XXXXXX");
  if (mkdtemp(staging.data()) == nullptr) return ErrnoError(errno, "mkdtemp", staging);
  if (chmod(staging.c_str(), 0755) != 0) {
    const absl::Status status = ErrnoError(errno, "chmod", staging);
    RemoveTree(staging);
    return status;
  }

  const absl::Status built = [&]() -> absl::Status {
    Json metadata;
    metadata["mode"] = "offline";
    metadata["containerId"] = name.uuid;
    metadata["containerType"] = "run";
    metadata["structureVersion"] = 3;
    metadata["os"] = OsDescription();
    metadata["pythonVersion"] = "n/a";
    metadata["neptuneClientVersion"] = absl::StrCat("n/a (flyte-neptune-agent ", kVersion, ")");
    metadata["createdAt"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00", now, absl::UTCTimeZone());
    FNA_RETURN_IF_ERROR(CreateFile(JoinPath(staging, "metadata.json"), Dump(metadata, 2)));
    Json sidecar;
    sidecar[std::string(kSidecarProjectKey)] = ref.project;
    sidecar[std::string(kSidecarCustomRunIdKey)] = ref.custom_run_id;
    FNA_RETURN_IF_ERROR(CreateFile(JoinPath(staging, kSidecarFile), Dump(sidecar, 2) + "\n"));
    FNA_RETURN_IF_ERROR(CreateFile(JoinPath(staging, "last_ack_version"), ""));
    FNA_RETURN_IF_ERROR(CreateFile(JoinPath(staging, kLockFile), ""));
    FNA_RETURN_IF_ERROR(MakeDirectory(JoinPath(staging, "upload_path"), /*exist_ok=*/false));
    return AppendRecords(staging, ops, UnixSeconds(now), max_log_file_bytes_);
  }();
  if (!built.ok()) {
    RemoveTree(staging);
    return built;
  }

  if (rename(staging.c_str(), run_dir.c_str()) != 0) {
    const int err = errno;
    RemoveTree(staging);
    // Another call (here or in another process) created the run first.
    if (err == EEXIST || err == ENOTEMPTY) return info;
    return ErrnoError(err, absl::StrCat("rename ", staging, " to"), run_dir);
  }
  return info;
}

absl::Status OfflineTracker::Write(const RunRef& ref, const std::vector<Field>& fields,
                                   absl::Time /*deadline*/) {
  FNA_ASSIGN_OR_RETURN(const std::vector<Json> ops, ToOperations(fields));
  const std::string run_dir = RunDirectory(ref);
  const std::string lock_path = JoinPath(run_dir, kLockFile);
  absl::StatusOr<Fd> lock = Open(lock_path, O_RDWR | O_CREAT);
  if (absl::IsNotFound(lock.status())) {
    return absl::NotFoundError(
        absl::StrCat("run ", ref.custom_run_id, " of ", ref.project, " not found: no directory ", run_dir));
  }
  FNA_RETURN_IF_ERROR(lock.status());
  while (flock(lock->get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError(errno, "lock", lock_path);
  }
  // Released when `lock` is closed.
  return AppendRecords(run_dir, ops, UnixSeconds(clock_->Now()), max_log_file_bytes_);
}

}  // namespace fna::neptune
