#ifndef FNA_AGENT_EXECUTOR_PROCESS_EXECUTOR_H_
#define FNA_AGENT_EXECUTOR_PROCESS_EXECUTOR_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/executor/executor.h"
#include "agent/executor/task_dir.h"

namespace fna::executor {

// Runs each task as a local process group, for development. Every task has a directory under the state
// directory (layout: task_dir.h) and a flyte-neptune-runner daemon that forks the task's process, captures
// its output, and records its result. Runners outlive the agent, so a restarted agent (or another agent on
// the same state directory) adopts running tasks; a runner that dies without a result makes its task
// kRetryableFailed.
//
// Start is idempotent and safe against concurrent Starts and crashes: the task directory is built aside and
// renamed into place (exactly one Start wins), and the task's lock is held continuously from before the
// rename until the runner exits. A task whose directory exists but whose runner never got going (the agent
// crashed in between) is kPending, and the next Start launches it.
//
// Thread safety: all methods are safe for concurrent use, also for the same task and across processes. Start
// waits for the runner it spawns, so the agent must not ignore SIGCHLD nor reap children it did not start.
class ProcessExecutor final : public Executor {
 public:
  struct Options {
    std::string state_directory;  // created if missing
    std::string runner_path;      // the flyte-neptune-runner executable
    // Variables copied from the agent's environment (as it is at Create) into every task's environment,
    // before the task's own; unset ones are skipped.
    std::vector<std::string> inherited_env = {"PATH", "HOME", "LANG", "TZ"};
    // On Abort the task's process group gets SIGTERM, then SIGKILL after this long.
    absl::Duration abort_grace = absl::Seconds(5);
  };

  // InvalidArgument when the runner is not executable or a setting is malformed; the state directory's error
  // when it cannot be created.
  static absl::StatusOr<std::unique_ptr<ProcessExecutor>> Create(Options options);

  // InvalidArgument when `spec.name` is not a DNS-1123 label of at most 50 characters, argv is empty, an env
  // name is empty or holds '=', or a string holds NUL or is not valid UTF-8. A repeated Start adopts the task
  // without comparing specs. Returns once the runner has forked the task's process (or recorded why it could
  // not); an error leaves the task kPending for a later Start to launch.
  absl::Status Start(const TaskSpec& spec) override;

  // kPending until the runner records the process, kRunning while it runs, then its result: exit 0
  // kSucceeded; exit N kRetryableFailed with exit_code N; killed by signal S kRetryableFailed with exit_code
  // 128+S; not startable kFailed; aborted kAborted. A runner that died without a result: kRetryableFailed.
  // InvalidArgument for a malformed name.
  absl::StatusOr<TaskStatus> GetStatus(const TaskRef& task) override;

  // Signals the runner (SIGTERM) and returns at once; the task converges to kAborted after the grace period
  // at most. A task not launched yet is aborted on the spot and never launched. InvalidArgument for a
  // malformed name.
  absl::Status Abort(const TaskRef& task) override;

  // NotFound for an unknown task.
  absl::Status MarkRunFinalized(const TaskRef& task) override;

  // NotFound for an unknown task. A no-op once the run is finalized (a late writer must not resurrect it).
  absl::Status RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) override;

  // The records in the order of the tasks' names.
  absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() override;

  // `query.token` is a byte offset into the output. Whole lines only: a trailing partial line waits for its
  // line break unless the task has finished. Lines come without their break ("\n" or "\r\n"). The lines of a
  // batch, joined by line breaks, are at most `max_bytes` long; a longer line comes in pieces. Timestamps are
  // unknown. InvalidArgument for a malformed token or a zero max_bytes.
  absl::StatusOr<LogBatch> ReadLogs(const TaskRef& task, const LogQuery& query) override;

 private:
  ProcessExecutor(std::string state_directory, std::string runner_path,
                  std::vector<std::pair<std::string, std::string>> inherited_env, absl::Duration abort_grace);

  std::string TaskDir(absl::string_view name) const;
  // The task's directory; NotFound when it does not exist, InvalidArgument for a malformed name.
  absl::StatusOr<std::string> ExistingTaskDir(absl::string_view name) const;
  // Creates the task's directory `dir` and returns its lock, held; an invalid fd when a concurrent Start
  // created the directory first.
  absl::StatusOr<UniqueFd> CreateTaskDir(const TaskSpec& spec, const std::string& dir);
  // Launches the runner unless the task is launched or finished already.
  absl::Status Adopt(absl::string_view name, const std::string& dir);
  // Spawns the runner on `dir`, handing it `lock` (held exclusively), and waits for it to record the start.
  absl::Status LaunchRunner(absl::string_view name, const std::string& dir, UniqueFd lock);
  // The task's state, times, message and working directory; not the tracking records.
  absl::StatusOr<TaskStatus> RunStatus(absl::string_view name, const std::string& dir);

  const std::string state_directory_;
  const std::string runner_path_;
  const std::vector<std::pair<std::string, std::string>> inherited_env_;
  const absl::Duration abort_grace_;
};

}  // namespace fna::executor

#endif  // FNA_AGENT_EXECUTOR_PROCESS_EXECUTOR_H_
