#ifndef FNA_AGENT_EXECUTOR_TASK_DIR_H_
#define FNA_AGENT_EXECUTOR_TASK_DIR_H_

// The on-disk layout of one process-executor task, shared by ProcessExecutor and flyte-neptune-runner.
//
// <state_directory>/<name>/
//   spec.json            what to run (TaskSpecFile); written before the directory appears, never changed
//   work/                the task's working directory
//   lock                 flock(LOCK_EX)'d by the runner for its whole life (by Start until the runner holds
//   it) runner.json          the live runner (RunnerFile), written once the task's process has been forked
//   output.log           the process's stdout and stderr, merged
//   runner.log           the runner's own diagnostics
//   abort.requested      Abort was called; a runner that finds it aborts as on SIGTERM
//   status.json          the result (ResultFile); written last, atomically: its presence means "finished"
//   run.finalized        tracking: the run was finalized
//   final_write.pending  tracking: the opaque record of a final write still to be done
//
// Every record is replaced atomically (written aside, then renamed), so a reader sees it whole or not at all.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna::executor {

inline constexpr char kSpecFile[] = "spec.json";
inline constexpr char kWorkDir[] = "work";
inline constexpr char kLockFile[] = "lock";
inline constexpr char kRunnerFile[] = "runner.json";
inline constexpr char kOutputLog[] = "output.log";
inline constexpr char kRunnerLog[] = "runner.log";
inline constexpr char kAbortRequestedFile[] = "abort.requested";
inline constexpr char kResultFile[] = "status.json";
inline constexpr char kRunFinalizedFile[] = "run.finalized";
inline constexpr char kPendingFinalWriteFile[] = "final_write.pending";

// spec.json: the command, resolved by the executor so that the runner applies it verbatim.
struct TaskSpecFile {
  std::vector<std::string> argv;  // argv[0] is looked up in the env's PATH, as execvp does
  std::vector<std::pair<std::string, std::string>> env;  // the complete environment: unique names, in order
  std::string working_directory;                         // absolute
  absl::Duration abort_grace = absl::Seconds(5);         // SIGTERM to SIGKILL on abort
};

// runner.json.
struct RunnerFile {
  int runner_pid = 0;
  int child_pid = 0;  // also the process group id of the task's processes
  absl::Time started_at;
};

// status.json: the facts; the executor turns them into a TaskStatus.
struct ResultFile {
  std::optional<int> exit_code;          // the process exited with this code
  std::optional<int> signal;             // the process was killed by this signal
  std::optional<absl::Time> started_at;  // absent when the process was never forked
  absl::Time finished_at;
  std::string start_error;  // non-empty when the command could not be started
  bool aborted = false;     // stopped by Abort (or never started because of it)
};

// InvalidArgument when a string of `spec` is not valid UTF-8.
absl::StatusOr<std::string> SerializeTaskSpecFile(const TaskSpecFile& spec);
absl::StatusOr<TaskSpecFile> ParseTaskSpecFile(absl::string_view json);
std::string SerializeRunnerFile(const RunnerFile& runner);
absl::StatusOr<RunnerFile> ParseRunnerFile(absl::string_view json);
std::string SerializeResultFile(const ResultFile& result);
absl::StatusOr<ResultFile> ParseResultFile(absl::string_view json);

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// The whole content of `path`, or nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadFileIfExists(const std::string& path);

// Replaces `path` with `content` atomically (a unique temporary file beside it, fsync'd, then renamed), mode
// 0600. Safe to call concurrently for the same path: the last rename wins.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content);

}  // namespace fna::executor

#endif  // FNA_AGENT_EXECUTOR_TASK_DIR_H_
