// flyte-neptune-runner <task-state-dir> <lock-fd>: supervises one task of the process executor (the
// directory's layout: agent/executor/task_dir.h).
//
// ProcessExecutor starts it with the task's lock held exclusively on <lock-fd>. It daemonizes (so that the
// task outlives the agent), forks the task's command in a process group of its own, records runner.json, and
// waits. SIGTERM, or abort.requested, aborts the task: SIGTERM to the group, SIGKILL after the spec's grace.
// When the command has exited it kills what is left of the group, reaps it, writes status.json and exits,
// which releases the lock. The process the executor started exits once the daemon has recorded the task's
// start (or why it could not start): 0; 2 for a usage or setup error; 1 when the daemon died before
// recording.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "agent/executor/task_dir.h"

extern char** environ;

namespace fna::executor {
namespace {

constexpr char kComponent[] = "runner";
constexpr int kExitDaemonLost = 1;
constexpr int kExitSetupFailed = 2;
constexpr int kExitNotStarted = 127;  // the task's process, when it cannot exec

// What the task's process sends through the start pipe when it cannot exec; nothing (end of file) on exec.
enum class StartStage : int32_t { kRedirectOutput, kWorkingDirectory, kExec };
struct StartFailure {
  StartStage stage;
  int32_t error;
};

struct Task {
  std::string dir;
  int lock_fd = -1;
  TaskSpecFile spec;
  UniqueFd output;                       // output.log, for the command's stdout and stderr
  std::vector<char*> argv;               // into spec.argv, null-terminated
  std::vector<std::string> env_entries;  // NAME=value
  std::vector<char*> envp;               // into env_entries, null-terminated
};

std::string TaskPath(const Task& task, absl::string_view file) { return absl::StrCat(task.dir, "/", file); }

absl::Status Prepare(absl::string_view lock_arg, Task* task) {
  if (task->dir.empty() || task->dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("the task directory \"", task->dir, "\" is not absolute"));
  }
  if (!absl::SimpleAtoi(lock_arg, &task->lock_fd) || task->lock_fd <= STDERR_FILENO) {
    return absl::InvalidArgumentError(absl::StrCat("bad lock descriptor \"", lock_arg, "\""));
  }
  // The lock must be the task's, held by this process; the task's processes must not inherit it.
  const std::string lock_path = TaskPath(*task, kLockFile);
  struct stat held;
  struct stat expected;
  if (fstat(task->lock_fd, &held) != 0) return absl::ErrnoToStatus(errno, "the lock descriptor");
  if (stat(lock_path.c_str(), &expected) != 0) return absl::ErrnoToStatus(errno, lock_path);
  if (held.st_dev != expected.st_dev || held.st_ino != expected.st_ino) {
    return absl::InvalidArgumentError(absl::StrCat("the lock descriptor is not ", lock_path));
  }
  if (flock(task->lock_fd, LOCK_EX | LOCK_NB) != 0) return absl::ErrnoToStatus(errno, "lock the task");
  if (fcntl(task->lock_fd, F_SETFD, FD_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "the lock descriptor");
  }

  // A task runs at most once.
  for (const char* record : {kRunnerFile, kResultFile}) {
    if (access(TaskPath(*task, record).c_str(), F_OK) == 0) {
      return absl::FailedPreconditionError(absl::StrCat("the task was launched before: ", record, " exists"));
    }
  }

  FNA_ASSIGN_OR_RETURN(const std::optional<std::string> spec_json,
                       ReadFileIfExists(TaskPath(*task, kSpecFile)));
  if (!spec_json) return absl::NotFoundError(absl::StrCat("no ", kSpecFile));
  FNA_ASSIGN_OR_RETURN(task->spec, ParseTaskSpecFile(*spec_json));
  if (task->spec.argv.empty()) return absl::DataLossError(absl::StrCat(kSpecFile, " has no command"));
  const std::string output_path = TaskPath(*task, kOutputLog);
  task->output = UniqueFd(open(output_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!task->output.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", output_path));

  for (std::string& arg : task->spec.argv) task->argv.push_back(arg.data());
  task->argv.push_back(nullptr);
  for (const auto& [name, value] : task->spec.env) {
    task->env_entries.push_back(absl::StrCat(name, "=", value));
  }
  for (std::string& entry : task->env_entries) task->envp.push_back(entry.data());
  task->envp.push_back(nullptr);
  return absl::OkStatus();
}

// Writes a message of at most PIPE_BUF bytes to a pipe: in one piece, or not at all if the reader is gone.
void WriteMessage(int fd, const void* data, size_t len) {
  while (write(fd, data, len) < 0 && errno == EINTR) {
  }
}

// Forks twice, so that the task is supervised by a daemon in a session of its own, not by a child of the
// agent. The calling process exits once the daemon writes to the returned pipe (0), or closes it without (1);
// only the daemon returns.
absl::StatusOr<UniqueFd> Daemonize(int lock_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  UniqueFd ready_read(fds[0]);
  UniqueFd ready_write(fds[1]);
  const pid_t session_leader = fork();
  if (session_leader < 0) return absl::ErrnoToStatus(errno, "fork");
  if (session_leader > 0) {
    ready_write = UniqueFd();
    close(lock_fd);  // the daemon holds it
    int wstatus;
    while (waitpid(session_leader, &wstatus, 0) < 0 && errno == EINTR) {
    }
    char byte;
    ssize_t n;
    while ((n = read(ready_read.get(), &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1) _exit(0);
    Log(LogLevel::kError, kComponent, "the runner's daemon exited before recording the task's start");
    _exit(kExitDaemonLost);
  }
  ready_read = UniqueFd();
  setsid();
  const pid_t daemon = fork();
  if (daemon != 0) _exit(daemon > 0 ? 0 : kExitSetupFailed);
  if (chdir("/") != 0) return absl::ErrnoToStatus(errno, "chdir /");
  return ready_write;
}

[[noreturn]] void ReportStartFailure(int start_pipe, StartStage stage) {
  const StartFailure failure{stage, errno};
  WriteMessage(start_pipe, &failure, sizeof(failure));
  _exit(kExitNotStarted);
}

// In the forked child: becomes the task's command.
[[noreturn]] void ExecCommand(Task& task, pid_t runner, const sigset_t& original_mask, int start_pipe) {
  setpgid(0, 0);
  // Die with the runner: a runner that is gone reports the task lost, so it must not go on.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != runner) _exit(kExitNotStarted);
  if (dup2(task.output.get(), STDOUT_FILENO) < 0 || dup2(task.output.get(), STDERR_FILENO) < 0) {
    ReportStartFailure(start_pipe, StartStage::kRedirectOutput);
  }
  if (chdir(task.spec.working_directory.c_str()) != 0) {
    ReportStartFailure(start_pipe, StartStage::kWorkingDirectory);
  }
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  environ = task.envp.data();  // execvp looks argv[0] up in this environment's PATH, and passes it on
  execvp(task.argv[0], task.argv.data());
  ReportStartFailure(start_pipe, StartStage::kExec);
}

std::string DescribeStartFailure(const Task& task, const StartFailure& failure) {
  const std::string prefix = absl::StrCat("failed to start ", task.spec.argv[0], ": ");
  switch (failure.stage) {
    case StartStage::kRedirectOutput:
      return absl::StrCat(prefix, "cannot redirect its output: ", strerror(failure.error));
    case StartStage::kWorkingDirectory:
      return absl::StrCat(prefix, "cannot enter ", task.spec.working_directory, ": ",
                          strerror(failure.error));
    case StartStage::kExec:
      break;
  }
  return absl::StrCat(prefix, strerror(failure.error));
}

// Waits for the task's process to exit, aborting it when asked (SIGTERM): SIGTERM to its group, SIGKILL after
// the grace. Returns its wait status, or nullopt when waiting failed.
std::optional<int> WaitForCommand(const Task& task, pid_t child, const sigset_t& wait_set,
                                  bool abort_requested, bool* aborted) {
  using SteadyClock = std::chrono::steady_clock;
  std::optional<SteadyClock::time_point> kill_at;
  bool killed = false;
  for (;;) {
    int wstatus;
    const pid_t exited = waitpid(child, &wstatus, WNOHANG);
    if (exited == child) return wstatus;
    if (exited < 0 && errno != EINTR) {
      Log(LogLevel::kError, kComponent, "cannot wait for the task's process",
          {{"task_dir", task.dir}, {"error", strerror(errno)}});
      return std::nullopt;
    }
    if (abort_requested && !*aborted) {
      *aborted = true;
      kill(-child, SIGTERM);
      kill_at = SteadyClock::now() + absl::ToChronoNanoseconds(task.spec.abort_grace);
    }
    if (kill_at && !killed && SteadyClock::now() >= *kill_at) {
      kill(-child, SIGKILL);
      killed = true;
    }
    int received;
    if (kill_at && !killed) {
      const int64_t remaining = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(*kill_at - SteadyClock::now()).count());
      const timespec timeout{static_cast<time_t>(remaining / 1000000000),
                             static_cast<long>(remaining % 1000000000)};
      received = sigtimedwait(&wait_set, nullptr, &timeout);
    } else {
      received = sigwaitinfo(&wait_set, nullptr);
    }
    if (received == SIGTERM) abort_requested = true;
  }
}

// Kills what is left of the task's process group and reaps it: as a child subreaper, the runner inherits the
// orphans. Processes that left the group are not waited for.
void KillAndReapGroup(pid_t group) {
  for (;;) {
    kill(-group, SIGKILL);
    const pid_t reaped = waitpid(-group, nullptr, 0);
    if (reaped < 0 && errno != EINTR) break;  // ECHILD: none left
  }
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// The daemon's part: runs the task and records it; `ready` is written once runner.json (or the result) is.
int Supervise(Task& task, UniqueFd ready) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    Log(LogLevel::kWarning, kComponent, "cannot become a child subreaper; orphans of the task escape",
        {{"task_dir", task.dir}, {"error", strerror(errno)}});
  }
  signal(SIGCHLD, SIG_DFL);
  sigset_t wait_set;
  sigemptyset(&wait_set);
  sigaddset(&wait_set, SIGTERM);
  sigaddset(&wait_set, SIGCHLD);
  // SIGPIPE too: the executor's process may be gone when the daemon reports ready.
  sigset_t blocked = wait_set;
  sigaddset(&blocked, SIGPIPE);
  sigset_t original_mask;
  sigprocmask(SIG_BLOCK, &blocked, &original_mask);

  const auto record_result = [&task](const ResultFile& result) {
    const absl::Status status = WriteFileAtomically(TaskPath(task, kResultFile), SerializeResultFile(result));
    if (status.ok()) return 0;
    Log(LogLevel::kError, kComponent, "cannot record the task's result",
        {{"task_dir", task.dir}, {"error", status.ToString()}});
    return kExitSetupFailed;
  };
  const auto signal_ready = [&ready] {
    WriteMessage(ready.get(), "r", 1);
    ready = UniqueFd();
  };

  ResultFile result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    Log(LogLevel::kError, kComponent, "pipe", {{"task_dir", task.dir}, {"error", strerror(errno)}});
    return kExitSetupFailed;
  }
  UniqueFd start_read(fds[0]);
  UniqueFd start_write(fds[1]);
  const absl::Time started_at = absl::Now();
  const pid_t runner = getpid();
  const pid_t child = fork();
  if (child == 0) ExecCommand(task, runner, original_mask, start_write.get());
  start_write = UniqueFd();
  if (child < 0) {
    result.start_error = absl::StrCat("failed to start ", task.spec.argv[0], ": fork: ", strerror(errno));
    result.finished_at = absl::Now();
    const int code = record_result(result);
    signal_ready();
    return code;
  }
  setpgid(child, child);
  result.started_at = started_at;

  RunnerFile record{runner, child, started_at};
  const absl::Status recorded = WriteFileAtomically(TaskPath(task, kRunnerFile), SerializeRunnerFile(record));
  if (!recorded.ok()) {
    // Exiting kills the child (PR_SET_PDEATHSIG) and tells the executor, whose next Start launches anew.
    Log(LogLevel::kError, kComponent, "cannot record the runner",
        {{"task_dir", task.dir}, {"error", recorded.ToString()}});
    return kExitSetupFailed;
  }
  signal_ready();
  const bool abort_requested = access(TaskPath(task, kAbortRequestedFile).c_str(), F_OK) == 0;

  StartFailure failure;
  ssize_t n;
  while ((n = read(start_read.get(), &failure, sizeof(failure))) < 0 && errno == EINTR) {
  }
  if (n == sizeof(failure)) result.start_error = DescribeStartFailure(task, failure);

  const std::optional<int> wstatus = WaitForCommand(task, child, wait_set, abort_requested, &result.aborted);
  if (!wstatus) return kExitSetupFailed;
  result.finished_at = absl::Now();
  if (result.start_error.empty()) {
    if (WIFEXITED(*wstatus)) result.exit_code = WEXITSTATUS(*wstatus);
    if (WIFSIGNALED(*wstatus)) result.signal = WTERMSIG(*wstatus);
  }
  KillAndReapGroup(child);
  return record_result(result);
}

int RunnerMain(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: flyte-neptune-runner <task-state-dir> <lock-fd>\n");
    return kExitSetupFailed;
  }
  Task task;
  task.dir = argv[1];
  absl::Status status = Prepare(argv[2], &task);
  absl::StatusOr<UniqueFd> ready = status.ok() ? Daemonize(task.lock_fd) : status;
  if (!ready.ok()) {
    Log(LogLevel::kError, kComponent, "cannot run the task",
        {{"task_dir", task.dir}, {"error", ready.status().ToString()}});
    return kExitSetupFailed;
  }
  return Supervise(task, *std::move(ready));
}

}  // namespace
}  // namespace fna::executor

int main(int argc, char** argv) { return fna::executor::RunnerMain(argc, argv); }
