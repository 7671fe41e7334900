#include "agent/sync/offline_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/common/status_macros.h"
#include "agent/neptune/offline_layout.h"
#include "nlohmann/json.hpp"

namespace fna::sync {
namespace {

using Json = nlohmann::json;
using neptune::kLastAckVersionFile;
using neptune::kLastPutVersionFile;
using neptune::kLockFile;
using neptune::kOfflineSubdirectory;
using neptune::kSidecarFile;
using neptune::ListLogFiles;

// At most this many fields per CreateRun/Write call.
constexpr size_t kMaxBatch = 1000;

std::string JoinPath(absl::string_view dir, absl::string_view name) { return absl::StrCat(dir, "/", name); }

absl::Status ErrnoError(int err, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The whole file; NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return ErrnoError(err != 0 ? err : ENOENT, "open", path);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("read ", path));
  return contents.str();
}

// A version file (last_put_version, last_ack_version): a decimal integer; empty or missing is 0.
absl::StatusOr<int64_t> ReadVersion(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return 0;
  FNA_RETURN_IF_ERROR(text.status());
  const absl::string_view trimmed = absl::StripAsciiWhitespace(*text);
  if (trimmed.empty()) return 0;
  int64_t version = 0;
  if (!absl::SimpleAtoi(trimmed, &version) || version < 0) {
    return absl::DataLossError(absl::StrCat(path, " does not hold a version: \"", trimmed, "\""));
  }
  return version;
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

absl::StatusOr<Fd> Open(const std::string& path, int flags) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return Fd(fd);
}

// Replaces `path` with `contents` atomically (a sibling temporary file, then rename(2)).
absl::Status ReplaceFile(const std::string& path, absl::string_view contents) {
  const std::string tmp = absl::StrCat(path, ".sync-tmp");
  {
    FNA_ASSIGN_OR_RETURN(Fd fd, Open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    FNA_RETURN_IF_ERROR(WriteAll(fd.get(), contents, tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const absl::Status status = ErrnoError(errno, "rename to", path);
    unlink(tmp.c_str());
    return status;
  }
  return absl::OkStatus();
}

// Holds an exclusive flock on the run's lock file (the one OfflineTracker takes around every change).
absl::StatusOr<Fd> LockRun(const std::string& run_dir) {
  const std::string path = JoinPath(run_dir, kLockFile);
  FNA_ASSIGN_OR_RETURN(Fd fd, Open(path, O_RDWR | O_CREAT));
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError(errno, "lock", path);
  }
  return fd;  // unlocked when closed
}

absl::StatusOr<std::string> PathOf(const Json& op) {
  const auto it = op.find("path");
  if (it == op.end() || !it->is_array() || it->empty()) {
    return absl::DataLossError("the operation has no path");
  }
  std::string path;
  for (const Json& segment : *it) {
    if (!segment.is_string()) return absl::DataLossError("a path segment is not a string");
    if (!path.empty()) path.push_back('/');
    path += segment.get<std::string>();
  }
  return path;
}

// The Field an operation (a record's "obj") stands for.
absl::StatusOr<neptune::Field> ToField(const Json& op) {
  if (!op.is_object()) return absl::DataLossError("the operation is not an object");
  const auto type_it = op.find("type");
  if (type_it == op.end() || !type_it->is_string()) return absl::DataLossError("the operation has no type");
  const std::string type = type_it->get<std::string>();
  FNA_ASSIGN_OR_RETURN(std::string path, PathOf(op));
  const auto malformed = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(type, " of ", path, ": ", what));
  };
  if (type == "AddStrings") {
    const auto values = op.find("values");
    if (values == op.end() || !values->is_array()) return malformed("\"values\" is not an array");
    neptune::StringSet set;
    for (const Json& value : *values) {
      if (!value.is_string()) return malformed("a value is not a string");
      set.values.push_back(value.get<std::string>());
    }
    return neptune::Field{std::move(path), std::move(set)};
  }
  const auto value = op.find("value");
  if (value == op.end()) return malformed("no \"value\"");
  if (type == "AssignString") {
    if (!value->is_string()) return malformed("the value is not a string");
    return neptune::Field{std::move(path), value->get<std::string>()};
  }
  if (type == "AssignInt") {
    if (!value->is_number_integer()) return malformed("the value is not an integer");
    return neptune::Field{std::move(path), value->get<int64_t>()};
  }
  if (type == "AssignFloat") {
    if (!value->is_number()) return malformed("the value is not a number");
    return neptune::Field{std::move(path), value->get<double>()};
  }
  if (type == "AssignBool") {
    if (!value->is_boolean()) return malformed("the value is not a boolean");
    return neptune::Field{std::move(path), value->get<bool>()};
  }
  if (type == "AssignDatetime") {
    if (!value->is_number_integer()) return malformed("the value is not integer milliseconds");
    return neptune::Field{std::move(path), absl::FromUnixMillis(value->get<int64_t>())};
  }
  return absl::UnimplementedError(absl::StrCat("unsupported operation type ", type, " (", path, ")"));
}

// The fields of the records with versions in (after, up_to], in version order. A record with a version in
// that range on an incomplete last line, a malformed record, or a missing version is an error.
absl::StatusOr<std::vector<neptune::Field>> ReadFields(const std::string& run_dir, int64_t after,
                                                       int64_t up_to) {
  FNA_ASSIGN_OR_RETURN(const auto files, ListLogFiles(run_dir));
  std::vector<neptune::Field> fields;
  int64_t expected = after + 1;
  for (size_t i = 0; i < files.size() && expected <= up_to; ++i) {
    // Skip a file whose records all precede `expected` (the next file starts at or before it).
    if (i + 1 < files.size() && files[i + 1].first <= expected) continue;
    FNA_ASSIGN_OR_RETURN(const std::string contents, ReadFile(files[i].second));
    absl::string_view rest = contents;
    int64_t line_number = 0;
    while (!rest.empty() && expected <= up_to) {
      ++line_number;
      const size_t newline = rest.find('\n');
      const bool complete = newline != absl::string_view::npos;
      const absl::string_view line = complete ? rest.substr(0, newline) : rest;
      rest = complete ? rest.substr(newline + 1) : absl::string_view();
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      const std::string where = absl::StrCat(files[i].second, ":", line_number);
      Json record;
      try {
        record = Json::parse(line);
      } catch (const Json::exception& e) {
        if (!complete) break;  // a record being appended; versions it may hold are checked below
        return absl::DataLossError(absl::StrCat(where, ": not a JSON record: ", e.what()));
      }
      const auto version_it = record.is_object() ? record.find("version") : record.end();
      if (!record.is_object() || version_it == record.end() || !version_it->is_number_integer()) {
        return absl::DataLossError(absl::StrCat(where, ": the record has no version"));
      }
      const int64_t version = version_it->get<int64_t>();
      if (version < expected) continue;  // acknowledged earlier
      if (version > expected) {
        return absl::DataLossError(
            absl::StrCat(where, ": version ", version, " found where ", expected, " was expected"));
      }
      const auto obj = record.find("obj");
      if (obj == record.end()) return absl::DataLossError(absl::StrCat(where, ": the record has no obj"));
      absl::StatusOr<neptune::Field> field = ToField(*obj);
      if (!field.ok()) {
        return absl::Status(field.status().code(), absl::StrCat(where, ": ", field.status().message()));
      }
      fields.push_back(*std::move(field));
      ++expected;
    }
  }
  if (expected <= up_to) {
    return absl::DataLossError(absl::StrCat("records ", expected, " to ", up_to, " of ", run_dir,
                                            " are missing (last_put_version is ", up_to, ")"));
  }
  return fields;
}

// `fields` cut, in order, into batches of at most kMaxBatch that never hold the same path twice.
std::vector<std::vector<neptune::Field>> Batches(std::vector<neptune::Field> fields) {
  std::vector<std::vector<neptune::Field>> batches;
  std::set<std::string> paths;
  for (neptune::Field& field : fields) {
    if (batches.empty() || batches.back().size() >= kMaxBatch || paths.count(field.path) > 0) {
      batches.emplace_back();
      paths.clear();
    }
    paths.insert(field.path);
    batches.back().push_back(std::move(field));
  }
  return batches;
}

enum class Outcome { kSynced, kSkipped, kFailed };

// Syncs one run directory, filling `result`.
Outcome SyncRun(const std::string& run_dir, neptune::Tracker* tracker, const Clock* clock,
                absl::Duration budget, RunSyncResult* result) {
  const auto fail = [result](const absl::Status& status) {
    result->reason = std::string(status.message());
    return Outcome::kFailed;
  };
  struct stat st;
  if (stat(run_dir.c_str(), &st) != 0) return fail(ErrnoError(errno, "stat", run_dir));
  if (!S_ISDIR(st.st_mode)) {
    result->reason = "not a run directory";
    return Outcome::kSkipped;
  }

  // A consistent snapshot of the versions: OfflineTracker changes a run only under its lock.
  int64_t last_put = 0;
  int64_t last_ack = 0;
  {
    absl::StatusOr<Fd> lock = LockRun(run_dir);
    if (!lock.ok()) return fail(lock.status());
    absl::StatusOr<int64_t> put = ReadVersion(JoinPath(run_dir, kLastPutVersionFile));
    if (!put.ok()) return fail(put.status());
    absl::StatusOr<int64_t> ack = ReadVersion(JoinPath(run_dir, kLastAckVersionFile));
    if (!ack.ok()) return fail(ack.status());
    last_put = *put;
    last_ack = *ack;
  }
  if (last_ack >= last_put) {
    result->reason = "up to date";
    return Outcome::kSkipped;
  }

  const std::string sidecar_path = JoinPath(run_dir, kSidecarFile);
  absl::StatusOr<std::string> sidecar_text = ReadFile(sidecar_path);
  if (absl::IsNotFound(sidecar_text.status())) {
    result->reason = absl::StrCat("no ", kSidecarFile, ": not written by flyte-neptune-agent");
    return Outcome::kSkipped;
  }
  if (!sidecar_text.ok()) return fail(sidecar_text.status());
  try {
    const Json sidecar = Json::parse(*sidecar_text);
    result->project = sidecar.at(std::string(neptune::kSidecarProjectKey)).get<std::string>();
    result->custom_run_id = sidecar.at(std::string(neptune::kSidecarCustomRunIdKey)).get<std::string>();
  } catch (const Json::exception& e) {
    return fail(absl::DataLossError(absl::StrCat(sidecar_path, ": ", e.what())));
  }
  if (result->project.empty() || result->custom_run_id.empty()) {
    return fail(absl::DataLossError(absl::StrCat(sidecar_path, ": empty project or customRunId")));
  }

  absl::StatusOr<std::vector<neptune::Field>> fields = ReadFields(run_dir, last_ack, last_put);
  if (!fields.ok()) return fail(fields.status());
  const int64_t operations = static_cast<int64_t>(fields->size());
  std::vector<std::vector<neptune::Field>> batches = Batches(*std::move(fields));

  const neptune::RunRef ref{result->project, result->custom_run_id, -1};
  const absl::Time deadline = clock->Now() + budget;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (i == 0 && last_ack == 0) {
      absl::StatusOr<neptune::RunInfo> created = tracker->CreateRun(ref, batches[i], deadline);
      if (!created.ok()) return fail(created.status());
    } else {
      const absl::Status written = tracker->Write(ref, batches[i], deadline);
      if (!written.ok()) return fail(written);
    }
  }

  {
    absl::StatusOr<Fd> lock = LockRun(run_dir);
    if (!lock.ok()) return fail(lock.status());
    // Never lower it (another sync may have got further meanwhile).
    const std::string ack_path = JoinPath(run_dir, kLastAckVersionFile);
    absl::StatusOr<int64_t> current = ReadVersion(ack_path);
    if (!current.ok()) return fail(current.status());
    if (*current < last_put) {
      if (absl::Status replaced = ReplaceFile(ack_path, absl::StrCat(last_put)); !replaced.ok()) {
        return fail(replaced);
      }
    }
  }
  result->first_version = last_ack + 1;
  result->last_version = last_put;
  result->operations = operations;
  return Outcome::kSynced;
}

}  // namespace

absl::StatusOr<SyncReport> SyncOfflineRuns(const std::string& neptune_directory, neptune::Tracker* tracker,
                                           const Clock* clock, absl::Duration per_run_budget) {
  const std::string offline = JoinPath(neptune_directory, kOfflineSubdirectory);
  DIR* dir = opendir(offline.c_str());
  if (dir == nullptr) return ErrnoError(errno, "open directory", offline);
  std::vector<std::string> names;
  errno = 0;
  while (const struct dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int err = errno;
  closedir(dir);
  if (err != 0) return ErrnoError(err, "read directory", offline);
  std::sort(names.begin(), names.end());

  SyncReport report;
  for (const std::string& name : names) {
    RunSyncResult result;
    result.directory = name;
    switch (SyncRun(JoinPath(offline, name), tracker, clock, per_run_budget, &result)) {
      case Outcome::kSynced:
        report.synced.push_back(std::move(result));
        break;
      case Outcome::kSkipped:
        report.skipped.push_back(std::move(result));
        break;
      case Outcome::kFailed:
        report.failed.push_back(std::move(result));
        break;
    }
  }
  return report;
}

}  // namespace fna::sync
