#ifndef FNA_AGENT_TRACKING_LIFECYCLE_H_
#define FNA_AGENT_TRACKING_LIFECYCLE_H_

#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/clock.h"
#include "agent/config/config.h"
#include "agent/executor/executor.h"
#include "agent/metrics/metrics.h"
#include "agent/neptune/tracker.h"
#include "agent/storage/output_store.h"
#include "agent/tracking/final_writer.h"
#include "agent/tracking/outcome.h"
#include "flyteidl/admin/agent.pb.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The name of the console link to the run; unique among a task's links.
inline constexpr char kRunLinkName[] = "Neptune run";

// The life of one task attempt, as propeller drives it (flyte-agent-protocol.md §2): CreateTask at least
// once, GetTask polled until a terminal phase, DeleteTask only on abort. Mirrors it into a Neptune run:
// created at CreateTask (or, if Neptune is unavailable then, on a later GetTask), closed with the outcome
// when GetTask first sees the attempt terminal, or marked ABORTED / TIMED_OUT by DeleteTask.
//
// Stateless: everything comes from resource_meta and what the executor and tracker can re-read, so any
// replica serves any call and a restart loses nothing. Tracking never breaks the pipeline: tracker errors
// never fail a call; they show in Resource.message and the logs (design.md §3.4).
//
// Metrics, as this replica sees the calls it serves (`metrics`; null: not exported):
//   flyte_neptune_agent_runs_created_total          runs created by CreateTask
//   flyte_neptune_agent_runs_created_late_total     runs CreateTask could not create that a later call
//   created flyte_neptune_agent_runs_finalized_total        runs finalized by GetTask or DeleteTask
//   flyte_neptune_agent_final_writes_handed_off_total  final writes left to the background after the grace
//   flyte_neptune_agent_tracking_errors_total{stage,code}  tracker calls that failed: stage create_run or
//                                                   final_write (each degrades only tracking)
//   flyte_neptune_agent_active_tasks                tracked attempts seen running in the last 15 minutes
// The in-memory state behind them is a bounded cache rebuilt from the calls (design.md §3.1).
//
// Thread-safe; calls for the same task may run concurrently. Returned errors carry canonical codes and
// messages a Flyte user can act on (the server maps them to gRPC status).
class TaskLifecycle {
 public:
  // None of the pointers is owned; all but `metrics` (null: not exported) must be set, and all must outlive
  // this.
  TaskLifecycle(const AgentConfig* config, neptune::Tracker* tracker, executor::Executor* executor,
                storage::OutputStore* outputs, FinalWriter* final_writer, const Clock* clock,
                metrics::Registry* metrics = nullptr);

  // Starts the task (or adopts it: idempotent) and creates its run. Returns the resource_meta.
  // NotFound for a task type the agent does not serve; InvalidArgument for a malformed request or settings
  // over their bounds; PermissionDenied for a Neptune project the routing rules refuse; FailedPrecondition
  // when no Neptune project can be chosen; the executor's error when the task cannot be started.
  absl::StatusOr<std::string> Create(const flyteidl::admin::CreateTaskRequest& request);

  // The attempt's status, with the run's link from the first call (ShowWhilePending) and custom_info.
  // Finalizes the run the first time it sees the attempt terminal, holding the terminal phase back (reported
  // as RUNNING) for at most the finalize grace while the final write fails. InvalidArgument for malformed
  // resource_meta.
  absl::StatusOr<flyteidl::admin::Resource> Get(const flyteidl::admin::GetTaskRequest& request);

  // Aborts the attempt and marks its run ABORTED (TIMED_OUT past the task's timeout). Idempotent: OK for an
  // unknown or finished attempt. InvalidArgument for malformed resource_meta; Unavailable if the executor
  // could not stop the task (propeller retries the abort).
  absl::Status Delete(const flyteidl::admin::DeleteTaskRequest& request);

  // The attempt's captured output.
  absl::StatusOr<executor::LogBatch> ReadLogs(absl::string_view resource_meta,
                                              const executor::LogQuery& query);

  // NotFound unless the agent serves `task_type` (an empty type, from an old client, is accepted).
  absl::Status CheckTaskType(absl::string_view task_type) const;

 private:
  struct RunLink {
    std::string run_id;  // empty when the run does not exist (yet)
    std::string url;
    std::string problem;        // why the run could not be created, for Resource.message
    bool created_late = false;  // an earlier call of this replica could not create the run
  };

  absl::Time Deadline() const;
  RunLink EnsureRun(const ResourceMeta& meta, absl::string_view working_directory);
  ErrorFile ReadErrorFile(const ResourceMeta& meta);
  // The outcome of a terminal attempt: one decided earlier (pending final write) or from its status.
  RunOutcome OutcomeOf(const ResourceMeta& meta, const executor::TaskStatus& status);
  // Ensures the run and writes its final fields; on success records on the executor that the run is
  // finalized.
  absl::Status WriteOutcome(const ResourceMeta& meta, const RunOutcome& outcome, RunLink* link);
  // Records a failed final write on the executor's object and hands it to the background final writer.
  void HandOff(const ResourceMeta& meta, const RunOutcome& outcome, const absl::Status& why);
  void AddRunInfo(const ResourceMeta& meta, const RunLink& link, flyteidl::admin::Resource* resource) const;

  // The bookkeeping behind the metrics. A run that could not be created is remembered as deferred;
  // NoteRunExists forgets it and returns whether it was. NoteRunning returns whether the attempt is new to
  // this replica.
  void NoteRunDeferred(const ResourceMeta& meta);
  bool NoteRunExists(const ResourceMeta& meta);
  bool NoteRunning(const ResourceMeta& meta);
  void NoteFinished(const ResourceMeta& meta);
  size_t CountActive();
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AgentConfig& config_;
  neptune::Tracker* const tracker_;
  executor::Executor* const executor_;
  storage::OutputStore* const outputs_;
  FinalWriter* const final_writer_;
  const Clock* const clock_;

  metrics::RegistryOrPrivate registry_;
  metrics::Counter* const runs_created_;
  metrics::Counter* const runs_created_late_;
  metrics::Counter* const runs_finalized_;
  metrics::Counter* const handed_off_;
  metrics::Family<metrics::Counter>* const tracking_errors_;
  std::mutex mu_;
  std::map<std::string, absl::Time> deferred_ ABSL_GUARDED_BY(mu_);  // execution id -> when deferred
  std::map<std::string, absl::Time> active_ ABSL_GUARDED_BY(mu_);    // execution id -> last seen running
  absl::Time last_prune_ ABSL_GUARDED_BY(mu_);
  metrics::GaugeCallback active_tasks_;  // last: reads the members above
};

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_LIFECYCLE_H_
