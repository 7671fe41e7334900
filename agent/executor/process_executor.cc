#include "agent/executor/process_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "agent/executor/task_dir.h"

extern char** environ;

namespace fna::executor {
namespace {

namespace fs = std::filesystem;

constexpr char kComponent[] = "process-executor";
constexpr size_t kMaxNameLength = 50;
constexpr int kRunnerLockFd = 3;  // where the runner receives the task's lock
constexpr int kMaxLockAttempts = 1000;
constexpr size_t kChunkSize = 64 * 1024;
constexpr char kLostMessage[] = "runner exited without recording a result; the task's process was lost";

std::string JoinPath(absl::string_view dir, absl::string_view file) { return absl::StrCat(dir, "/", file); }

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (const char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return name.front() != '-' && name.back() != '-';
}

absl::Status ValidateName(absl::string_view name) {
  if (IsValidName(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "task name \"", name, "\" is not a DNS-1123 label of at most ", kMaxNameLength, " characters"));
}

bool HasNul(absl::string_view s) { return s.find('\0') != absl::string_view::npos; }

absl::Status ValidateEnvName(absl::string_view name) {
  if (name.empty() || name.find('=') != absl::string_view::npos || HasNul(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid environment variable name \"", name, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const TaskSpec& spec) {
  FNA_RETURN_IF_ERROR(ValidateName(spec.name));
  if (spec.argv.empty() || spec.argv[0].empty()) return absl::InvalidArgumentError("the task has no command");
  for (const std::string& arg : spec.argv) {
    if (HasNul(arg)) return absl::InvalidArgumentError("an argument of the task's command holds a NUL byte");
  }
  for (const auto& [name, value] : spec.env) {
    FNA_RETURN_IF_ERROR(ValidateEnvName(name));
    if (HasNul(value)) {
      return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " holds a NUL byte"));
    }
  }
  return absl::OkStatus();
}

// `base` then `overrides`; a later entry replaces the value of an earlier one with its name, in place.
std::vector<std::pair<std::string, std::string>> MergeEnv(
    const std::vector<std::pair<std::string, std::string>>& base,
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::pair<std::string, std::string>> env;
  std::map<std::string, size_t> index;
  for (const auto* list : {&base, &overrides}) {
    for (const auto& [name, value] : *list) {
      const auto [it, inserted] = index.try_emplace(name, env.size());
      if (inserted) {
        env.emplace_back(name, value);
      } else {
        env[it->second].second = value;
      }
    }
  }
  return env;
}

absl::StatusOr<bool> Exists(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return absl::ErrnoToStatus(errno, absl::StrCat("stat ", path));
}

absl::StatusOr<UniqueFd> OpenLock(const std::string& dir) {
  const std::string path = JoinPath(dir, kLockFile);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  return fd;
}

// Whether the task's lock is held exclusively: by its runner, or by a Start or Abort acting on a task that no
// runner holds. Probes with a shared lock, so that concurrent probes do not see each other.
absl::StatusOr<bool> LockHeld(const std::string& dir) {
  FNA_ASSIGN_OR_RETURN(UniqueFd fd, OpenLock(dir));
  if (flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;
  if (errno == EWOULDBLOCK) return true;
  return absl::ErrnoToStatus(errno, absl::StrCat("flock ", dir, "/", kLockFile));
}

// Takes the task's lock exclusively, waiting out mere probes (shared holders). An invalid fd when an
// exclusive holder (see LockHeld) has it.
absl::StatusOr<UniqueFd> LockExclusive(const std::string& dir) {
  FNA_ASSIGN_OR_RETURN(UniqueFd fd, OpenLock(dir));
  const auto error = [&dir] {
    return absl::ErrnoToStatus(errno, absl::StrCat("flock ", dir, "/", kLockFile));
  };
  for (int attempt = 0; attempt < kMaxLockAttempts; ++attempt) {
    if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK) return error();
    if (flock(fd.get(), LOCK_SH | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return UniqueFd();
      return error();
    }
    flock(fd.get(), LOCK_UN);
    std::this_thread::yield();
  }
  return absl::UnavailableError(absl::StrCat("the lock of ", dir, " stays busy; retry"));
}

// Serializes the updates of a task's tracking records: an exclusive flock on the task directory itself.
absl::StatusOr<UniqueFd> LockTrackingRecords(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", dir));
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, absl::StrCat("flock ", dir));
  }
  return fd;
}

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev == nullptr ? "unknown signal" : absl::StrCat("SIG", abbrev);
}

std::string DescribeWaitStatus(int wstatus) {
  if (WIFEXITED(wstatus)) return absl::StrCat("exit code ", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return absl::StrCat("killed by ", SignalName(WTERMSIG(wstatus)));
  return absl::StrCat("wait status ", wstatus);
}

absl::Status ApplyResult(absl::string_view name, const ResultFile& result, TaskStatus* status) {
  status->started_at = result.started_at;
  status->finished_at = result.finished_at;
  if (result.exit_code) {
    status->exit_code = *result.exit_code;
  } else if (result.signal) {
    status->exit_code = 128 + *result.signal;
  }
  if (!result.start_error.empty()) {
    status->state = TaskState::kFailed;
    status->message = result.start_error;
  } else if (result.aborted) {
    status->state = TaskState::kAborted;
    status->message = "aborted";
  } else if (result.exit_code == 0) {
    status->state = TaskState::kSucceeded;
  } else if (result.exit_code) {
    status->state = TaskState::kRetryableFailed;
    status->message = absl::StrCat("[", name, "] terminated with exit code (", *result.exit_code, ")");
  } else if (result.signal) {
    status->state = TaskState::kRetryableFailed;
    status->message =
        absl::StrCat("[", name, "] killed by signal ", *result.signal, " (", SignalName(*result.signal), ")");
  } else {
    return absl::DataLossError(absl::StrCat("the result of task ", name, " records no outcome"));
  }
  return absl::OkStatus();
}

// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
absl::StatusOr<size_t> ReadAt(int fd, char* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("read ", kOutputLog));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// The offset where the last `n` (> 0) whole lines of the first `size` bytes start. When the task has finished
// a final line without a line break counts; otherwise the last line break ends the lines, and is one more to
// count.
absl::StatusOr<uint64_t> TailStart(int fd, uint64_t size, uint64_t n, bool finished) {
  const uint64_t extra = finished ? 0 : 1;
  uint64_t count = 0;
  uint64_t end = finished && size > 0 ? size - 1 : size;  // a finished task's last byte ends its last line
  std::vector<char> buf(kChunkSize);
  while (end > 0) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunkSize, end));
    const uint64_t start = end - len;
    FNA_ASSIGN_OR_RETURN(const size_t got, ReadAt(fd, buf.data(), len, start));
    if (got != len) return absl::DataLossError(absl::StrCat(kOutputLog, " shrank"));
    for (size_t i = len; i-- > 0;) {
      if (buf[i] == '\n' && ++count - extra == n) return start + i + 1;
    }
    end = start;
  }
  return 0;
}

void AddLine(LogBatch* batch, std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  batch->lines.push_back(LogLine{std::nullopt, std::move(line)});
}

// The whole lines in [offset, size) that, joined by line breaks, fit in `max_bytes`.
absl::StatusOr<LogBatch> ReadLines(int fd, uint64_t offset, uint64_t size, uint64_t max_bytes,
                                   bool finished) {
  LogBatch batch;
  uint64_t next = offset;  // the first byte not returned
  uint64_t used = 0;
  std::string line;  // the bytes of the line starting at `next` read so far
  bool full = false;
  std::vector<char> buf(kChunkSize);
  uint64_t pos = offset;
  while (pos < size && !full) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkSize, size - pos));
    FNA_ASSIGN_OR_RETURN(const size_t got, ReadAt(fd, buf.data(), want, pos));
    if (got != want) return absl::DataLossError(absl::StrCat(kOutputLog, " shrank"));
    for (size_t i = 0; i < got;) {
      const char* newline = static_cast<const char*>(memchr(buf.data() + i, '\n', got - i));
      const size_t end = newline == nullptr ? got : static_cast<size_t>(newline - buf.data());
      line.append(buf.data() + i, end - i);
      if (used + line.size() > max_bytes) {
        if (batch.lines.empty()) {  // a line longer than max_bytes comes in pieces
          line.resize(max_bytes);
          next += max_bytes;
          AddLine(&batch, std::move(line));
        }
        full = true;
        break;
      }
      if (newline == nullptr) break;
      next += line.size() + 1;
      used += line.size() + 1;
      AddLine(&batch, std::move(line));
      line.clear();
      i = end + 1;
    }
    pos += got;
  }
  if (!full && finished && !line.empty()) {  // a finished task's last line, without a line break
    next = size;
    AddLine(&batch, std::move(line));
  }
  batch.next_token = absl::StrCat(next);
  batch.complete = finished && next == size;
  return batch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProcessExecutor>> ProcessExecutor::Create(Options options) {
  if (options.state_directory.empty()) return absl::InvalidArgumentError("state_directory is empty");
  if (options.abort_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("abort_grace is negative");
  }
  if (options.runner_path.empty() || access(options.runner_path.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("runner \"", options.runner_path, "\" is not executable"));
  }
  std::vector<std::pair<std::string, std::string>> inherited_env;
  for (const std::string& name : options.inherited_env) {
    FNA_RETURN_IF_ERROR(ValidateEnvName(name));
    if (const char* value = getenv(name.c_str()); value != nullptr) inherited_env.emplace_back(name, value);
  }
  std::error_code ec;
  const fs::path runner_path = fs::canonical(options.runner_path, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("resolve ", options.runner_path));
  fs::create_directories(options.state_directory, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("create ", options.state_directory));
  const fs::path state_directory = fs::canonical(options.state_directory, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("resolve ", options.state_directory));
  return std::unique_ptr<ProcessExecutor>(new ProcessExecutor(state_directory.string(), runner_path.string(),
                                                              std::move(inherited_env), options.abort_grace));
}

ProcessExecutor::ProcessExecutor(std::string state_directory, std::string runner_path,
                                 std::vector<std::pair<std::string, std::string>> inherited_env,
                                 absl::Duration abort_grace)
    : state_directory_(std::move(state_directory)),
      runner_path_(std::move(runner_path)),
      inherited_env_(std::move(inherited_env)),
      abort_grace_(abort_grace) {}

std::string ProcessExecutor::TaskDir(absl::string_view name) const {
  return JoinPath(state_directory_, name);
}

absl::StatusOr<std::string> ProcessExecutor::ExistingTaskDir(absl::string_view name) const {
  FNA_RETURN_IF_ERROR(ValidateName(name));
  std::string dir = TaskDir(name);
  FNA_ASSIGN_OR_RETURN(const bool exists, Exists(dir));
  if (!exists) return absl::NotFoundError(absl::StrCat("no task ", name));
  return dir;
}

absl::Status ProcessExecutor::Start(const TaskSpec& spec) {
  FNA_RETURN_IF_ERROR(ValidateSpec(spec));
  const std::string dir = TaskDir(spec.name);
  FNA_ASSIGN_OR_RETURN(const bool exists, Exists(dir));
  if (!exists) {
    FNA_ASSIGN_OR_RETURN(UniqueFd lock, CreateTaskDir(spec, dir));
    if (lock.valid()) return LaunchRunner(spec.name, dir, std::move(lock));
  }
  return Adopt(spec.name, dir);
}

absl::StatusOr<UniqueFd> ProcessExecutor::CreateTaskDir(const TaskSpec& spec, const std::string& dir) {
  TaskSpecFile file;
  file.argv = spec.argv;
  file.env = MergeEnv(inherited_env_, spec.env);
  file.working_directory = JoinPath(dir, kWorkDir);
  file.abort_grace = abort_grace_;
  FNA_ASSIGN_OR_RETURN(const std::string spec_json, SerializeTaskSpecFile(file));

  std::string tmp = JoinPath(state_directory_, absl::StrCat(".tmp-", spec.name, "-XXXXXX"));
  if (mkdtemp(tmp.data()) == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  bool renamed = false;
  absl::Cleanup remove_tmp = [&tmp, &renamed] {
    if (renamed) return;
    std::error_code ec;
    fs::remove_all(tmp, ec);
  };
  const std::string lock_path = JoinPath(tmp, kLockFile);
  UniqueFd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!lock.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("create ", lock_path));
  if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("flock ", lock_path));
  }
  FNA_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, kSpecFile), spec_json));
  const std::string work = JoinPath(tmp, kWorkDir);
  if (mkdir(work.c_str(), 0755) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("create ", work));
  const std::string log = JoinPath(tmp, kOutputLog);
  if (!UniqueFd(open(log.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)).valid()) {
    return absl::ErrnoToStatus(errno, absl::StrCat("create ", log));
  }
  // The task appears whole, with its lock held. A task directory is never empty, so rename(2) cannot replace
  // the one of a concurrent Start.
  if (rename(tmp.c_str(), dir.c_str()) == 0) {
    renamed = true;
    return lock;
  }
  if (errno == EEXIST || errno == ENOTEMPTY) return UniqueFd();
  return absl::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", dir));
}

absl::Status ProcessExecutor::Adopt(absl::string_view name, const std::string& dir) {
  const std::string result_path = JoinPath(dir, kResultFile);
  FNA_ASSIGN_OR_RETURN(bool finished, Exists(result_path));
  if (finished) return absl::OkStatus();
  FNA_ASSIGN_OR_RETURN(UniqueFd lock, LockExclusive(dir));
  if (!lock.valid()) return absl::OkStatus();  // its runner, or a Start launching one, has it
  // Only a task never launched is launched: one whose runner died may have run.
  FNA_ASSIGN_OR_RETURN(finished, Exists(result_path));
  FNA_ASSIGN_OR_RETURN(const bool launched, Exists(JoinPath(dir, kRunnerFile)));
  if (finished || launched) return absl::OkStatus();
  Log(LogLevel::kWarning, kComponent, "launching a task that was never launched",
      {{"task", std::string(name)}});
  return LaunchRunner(name, dir, std::move(lock));
}

absl::Status ProcessExecutor::LaunchRunner(absl::string_view name, const std::string& dir, UniqueFd lock) {
  const std::string runner_log = JoinPath(dir, kRunnerLog);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup destroy_actions = [&actions] { posix_spawn_file_actions_destroy(&actions); };
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup destroy_attr = [&attr] { posix_spawnattr_destroy(&attr); };
  // The runner gets the lock at kRunnerLockFd (dup2 clears FD_CLOEXEC, even onto itself), /dev/null for
  // input, its log for output, no other descriptor, no blocked signals and default signal dispositions.
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t all_signals;
  sigfillset(&all_signals);
  const int errors[] = {
      posix_spawn_file_actions_adddup2(&actions, lock.get(), kRunnerLockFd),
      posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0),
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, runner_log.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644),
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO),
      posix_spawn_file_actions_addclosefrom_np(&actions, kRunnerLockFd + 1),
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
      posix_spawnattr_setsigmask(&attr, &no_signals),
      posix_spawnattr_setsigdefault(&attr, &all_signals),
  };
  for (const int error : errors) {
    if (error != 0) return absl::ErrnoToStatus(error, "prepare the runner's spawn");
  }
  const std::string lock_fd = absl::StrCat(kRunnerLockFd);
  char* const argv[] = {const_cast<char*>(runner_path_.c_str()), const_cast<char*>(dir.c_str()),
                        const_cast<char*>(lock_fd.c_str()), nullptr};
  pid_t pid;
  const int error = posix_spawn(&pid, runner_path_.c_str(), &actions, &attr, argv, environ);
  lock = UniqueFd();  // the runner holds the lock now
  if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat("spawn ", runner_path_));
  // The runner exits as soon as its daemon has recorded the task's start.
  int wstatus;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "wait for the runner");
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(absl::StrCat("the runner of task ", name, " failed (",
                                            DescribeWaitStatus(wstatus), "); see ", runner_log));
  }
  Log(LogLevel::kInfo, kComponent, "started task", {{"task", std::string(name)}});
  return absl::OkStatus();
}

absl::StatusOr<TaskStatus> ProcessExecutor::RunStatus(absl::string_view name, const std::string& dir) {
  TaskStatus status;
  status.working_directory = JoinPath(dir, kWorkDir);
  const std::string result_path = JoinPath(dir, kResultFile);
  const std::string runner_path = JoinPath(dir, kRunnerFile);
  FNA_ASSIGN_OR_RETURN(std::optional<std::string> result, ReadFileIfExists(result_path));
  if (!result) {
    FNA_ASSIGN_OR_RETURN(const bool held, LockHeld(dir));
    if (!held) {
      // The runner, if any, has exited; it writes its result before that.
      FNA_ASSIGN_OR_RETURN(result, ReadFileIfExists(result_path));
    }
    if (!result) {
      FNA_ASSIGN_OR_RETURN(const std::optional<std::string> runner_json, ReadFileIfExists(runner_path));
      if (!runner_json) {
        status.state = TaskState::kPending;
        if (!held) status.message = "not launched yet; a repeated Start launches it";
        return status;
      }
      FNA_ASSIGN_OR_RETURN(const RunnerFile runner, ParseRunnerFile(*runner_json));
      status.started_at = runner.started_at;
      if (held) {
        status.state = TaskState::kRunning;
      } else {
        status.state = TaskState::kRetryableFailed;
        status.message = kLostMessage;
      }
      return status;
    }
  }
  FNA_ASSIGN_OR_RETURN(const ResultFile parsed, ParseResultFile(*result));
  FNA_RETURN_IF_ERROR(ApplyResult(name, parsed, &status));
  return status;
}

absl::StatusOr<TaskStatus> ProcessExecutor::GetStatus(const TaskRef& task) {
  const absl::string_view name = task.name;
  FNA_ASSIGN_OR_RETURN(const std::string dir, ExistingTaskDir(name));
  FNA_ASSIGN_OR_RETURN(TaskStatus status, RunStatus(name, dir));
  FNA_ASSIGN_OR_RETURN(status.run_finalized, Exists(JoinPath(dir, kRunFinalizedFile)));
  if (!status.run_finalized) {
    FNA_ASSIGN_OR_RETURN(status.pending_final_write, ReadFileIfExists(JoinPath(dir, kPendingFinalWriteFile)));
  }
  return status;
}

absl::Status ProcessExecutor::Abort(const TaskRef& task) {
  const absl::string_view name = task.name;
  absl::StatusOr<std::string> existing = ExistingTaskDir(name);
  if (absl::IsNotFound(existing.status())) return absl::OkStatus();
  FNA_RETURN_IF_ERROR(existing.status());
  const std::string& dir = *existing;
  const std::string result_path = JoinPath(dir, kResultFile);
  const std::string runner_path = JoinPath(dir, kRunnerFile);
  FNA_ASSIGN_OR_RETURN(bool finished, Exists(result_path));
  if (finished) return absl::OkStatus();
  Log(LogLevel::kInfo, kComponent, "aborting task", {{"task", std::string(name)}});
  // Request first, then look for the runner; a runner records itself, then looks for the request: at least
  // one of the two sees the other.
  FNA_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, kAbortRequestedFile), ""));
  FNA_ASSIGN_OR_RETURN(UniqueFd lock, LockExclusive(dir));
  if (lock.valid()) {
    // No runner: unless one ran (and finished or died), the task never starts.
    FNA_ASSIGN_OR_RETURN(finished, Exists(result_path));
    FNA_ASSIGN_OR_RETURN(const bool launched, Exists(runner_path));
    if (finished || launched) return absl::OkStatus();
    ResultFile result;
    result.aborted = true;
    result.finished_at = absl::Now();
    return WriteFileAtomically(result_path, SerializeResultFile(result));
  }
  FNA_ASSIGN_OR_RETURN(const std::optional<std::string> runner_json, ReadFileIfExists(runner_path));
  if (!runner_json) return absl::OkStatus();  // the runner-to-be finds the request
  FNA_ASSIGN_OR_RETURN(const RunnerFile runner, ParseRunnerFile(*runner_json));
  // Pin the process, then check that it still holds the lock, so that a recycled pid is never signalled.
  const UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, runner.runner_pid, 0)));
  if (!pidfd.valid()) {
    if (errno == ESRCH) return absl::OkStatus();
    return absl::ErrnoToStatus(errno, absl::StrCat("pidfd_open ", runner.runner_pid));
  }
  FNA_ASSIGN_OR_RETURN(const bool held, LockHeld(dir));
  if (held && syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0) != 0 && errno != ESRCH) {
    return absl::ErrnoToStatus(errno, absl::StrCat("signal the runner ", runner.runner_pid));
  }
  return absl::OkStatus();
}

absl::Status ProcessExecutor::MarkRunFinalized(const TaskRef& task) {
  const absl::string_view name = task.name;
  FNA_ASSIGN_OR_RETURN(const std::string dir, ExistingTaskDir(name));
  FNA_ASSIGN_OR_RETURN(const UniqueFd lock, LockTrackingRecords(dir));
  FNA_RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, kRunFinalizedFile), ""));
  const std::string pending = JoinPath(dir, kPendingFinalWriteFile);
  if (unlink(pending.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("remove ", pending));
  }
  return absl::OkStatus();
}

absl::Status ProcessExecutor::RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) {
  const absl::string_view name = task.name;
  FNA_ASSIGN_OR_RETURN(const std::string dir, ExistingTaskDir(name));
  FNA_ASSIGN_OR_RETURN(const UniqueFd lock, LockTrackingRecords(dir));
  FNA_ASSIGN_OR_RETURN(const bool finalized, Exists(JoinPath(dir, kRunFinalizedFile)));
  if (finalized) return absl::OkStatus();
  return WriteFileAtomically(JoinPath(dir, kPendingFinalWriteFile), record);
}

absl::StatusOr<std::vector<std::string>> ProcessExecutor::ListPendingFinalWrites() {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(state_directory_, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (IsValidName(name)) names.push_back(std::move(name));  // skips the temporary directories of Start
  }
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("list ", state_directory_));
  std::sort(names.begin(), names.end());
  std::vector<std::string> records;
  for (const std::string& name : names) {
    const std::string dir = TaskDir(name);
    FNA_ASSIGN_OR_RETURN(const bool finalized, Exists(JoinPath(dir, kRunFinalizedFile)));
    if (finalized) continue;
    FNA_ASSIGN_OR_RETURN(std::optional<std::string> record,
                         ReadFileIfExists(JoinPath(dir, kPendingFinalWriteFile)));
    if (record) records.push_back(std::move(*record));
  }
  return records;
}

absl::StatusOr<LogBatch> ProcessExecutor::ReadLogs(const TaskRef& task, const LogQuery& query) {
  const absl::string_view name = task.name;
  FNA_ASSIGN_OR_RETURN(const std::string dir, ExistingTaskDir(name));
  if (query.max_bytes == 0) return absl::InvalidArgumentError("max_bytes must be positive");
  // Decided before the log is measured: a finished task's output is all there.
  FNA_ASSIGN_OR_RETURN(const TaskStatus status, RunStatus(name, dir));
  const bool finished = IsTerminal(status.state);
  const std::string path = JoinPath(dir, kOutputLog);
  const UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("stat ", path));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t offset = 0;
  if (!query.token.empty()) {
    if (!absl::SimpleAtoi(query.token, &offset) || offset > size) {
      return absl::InvalidArgumentError(absl::StrCat("invalid log token \"", query.token, "\""));
    }
  } else if (query.tail_lines > 0) {
    FNA_ASSIGN_OR_RETURN(offset, TailStart(fd.get(), size, query.tail_lines, finished));
  }
  return ReadLines(fd.get(), offset, size, query.max_bytes, finished);
}

}  // namespace fna::executor
