#ifndef FNA_AGENT_EXECUTOR_EXECUTOR_H_
#define FNA_AGENT_EXECUTOR_EXECUTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace flyteidl::admin {
class CreateTaskRequest;
}  // namespace flyteidl::admin

namespace fna::executor {

// Which task attempt: its name and, for the Kubernetes executor, the namespace of its Pod.
struct TaskRef {
  std::string name;           // TaskSpec::name
  std::string k8s_namespace;  // TaskSpec::k8s_namespace; ignored by the process executor
};

// What to run for one task attempt: TaskTemplate.container as propeller rendered it, plus the agent's
// additions.
struct TaskSpec {
  // The attempt's identity (design.md §3.2): a DNS-1123 label of at most 50 characters, unique per attempt.
  std::string name;
  std::string image;              // ignored by the process executor
  std::vector<std::string> argv;  // container.command followed by the rendered container.args
  std::vector<std::pair<std::string, std::string>> env;  // in order; a later entry overrides an earlier one
  // Placement, used by the Kubernetes executor only.
  std::string k8s_namespace;
  std::string service_account;
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::pair<std::string, std::string>> annotations;
  // The CreateTask request the spec was built from, for executors that build their own object from the whole
  // template (the Kubernetes executor's Pod). Not owned; valid during Start only; may be null.
  const flyteidl::admin::CreateTaskRequest* request = nullptr;
  // The attempt's Neptune run, for user code to attach to (empty when tracking is disabled).
  std::string neptune_project;
  std::string custom_run_id;

  TaskRef ref() const { return TaskRef{name, k8s_namespace}; }
};

enum class TaskState {
  kPending,  // accepted, not running yet
  kRunning,
  kSucceeded,        // exit code 0
  kFailed,           // will not succeed if retried (e.g. the command could not be started)
  kRetryableFailed,  // non-zero exit, signal, vanished
  kAborted,          // stopped by Abort
};

bool IsTerminal(TaskState state);
absl::string_view TaskStateName(TaskState state);

struct TaskStatus {
  TaskState state = TaskState::kPending;
  std::string message;           // why, for failures: exit code, signal, start error
  std::optional<int> exit_code;  // the process's exit code, when it exited
  std::optional<absl::Time> started_at;
  std::optional<absl::Time> finished_at;
  std::string working_directory;  // where the task's process starts, when the executor knows it
  // Tracking bookkeeping kept on the executor's object (design.md §3.4), so that any replica, and a restarted
  // agent, knows it: the run was finalized, or a final write is pending (its opaque record).
  bool run_finalized = false;
  std::optional<std::string> pending_final_write;
};

struct LogLine {
  std::optional<absl::Time> timestamp;
  std::string message;  // one line of output, without its line break
};

struct LogQuery {
  std::string token;             // where to continue from; empty: from the start (or the tail, below)
  uint64_t tail_lines = 0;       // with an empty token: only the last N lines (0: all)
  uint64_t max_bytes = 1 << 20;  // at most this much output per batch
};

struct LogBatch {
  std::vector<LogLine> lines;
  std::string next_token;  // pass back to continue after these lines
  bool complete = false;   // the task has finished and every line has been read
};

// The seam between the lifecycle and whatever runs the task (a local process, a Kubernetes Pod).
//
// Thread safety: implementations are safe for concurrent use, including concurrent calls for the same task.
// State: everything lives on the executor's objects (state directory, Pod), never only in memory, so any
// replica and a restarted agent see the same task.
class Executor {
 public:
  virtual ~Executor() = default;

  // Starts the task, or adopts the one already started under `spec.ref()`: CreateTask is delivered at least
  // once, so a repeated Start never starts a second copy. InvalidArgument for a spec this executor cannot
  // run.
  virtual absl::Status Start(const TaskSpec& spec) = 0;

  // The task's current status. NotFound when `task` does not exist (never started, or cleaned up).
  virtual absl::StatusOr<TaskStatus> GetStatus(const TaskRef& task) = 0;

  // Stops the task and everything it started. OK when the task is unknown or already finished. Idempotent.
  virtual absl::Status Abort(const TaskRef& task) = 0;

  // Records that the task's run has been finalized (clears any pending final write). Idempotent.
  virtual absl::Status MarkRunFinalized(const TaskRef& task) = 0;

  // Records a final write still to be done, as an opaque `record` (replacing any earlier one).
  virtual absl::Status RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) = 0;

  // The records of every task with a pending final write, for a restarted agent to resume.
  virtual absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() = 0;

  // Reads the task's captured output. NotFound when `task` does not exist.
  virtual absl::StatusOr<LogBatch> ReadLogs(const TaskRef& task, const LogQuery& query) = 0;

  // Whether the executor can serve calls now (e.g. the Kubernetes executor's Pod cache has synced); the agent
  // reports itself ready (grpc.health.v1, /readyz) only while this holds. Called on every readiness probe:
  // cheap, thread-safe, no I/O. The default (the process executor) is always ready.
  virtual bool Ready() const { return true; }
};

}  // namespace fna::executor

#endif  // FNA_AGENT_EXECUTOR_EXECUTOR_H_
