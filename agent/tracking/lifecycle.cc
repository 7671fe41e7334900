#include "agent/tracking/lifecycle.h"

#include <utility>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "agent/tracking/fields.h"
#include "agent/tracking/identity.h"
#include "agent/tracking/log_fields.h"
#include "agent/tracking/outcome.h"
#include "agent/tracking/resource_meta.h"
#include "agent/tracking/settings.h"
#include "agent/tracking/task_spec.h"

namespace fna::tracking {

using executor::TaskState;
using executor::TaskStatus;
using flyteidl::core::TaskExecution;

namespace {

// An attempt not polled for this long no longer counts as active (propeller polls every 30 s by default).
constexpr absl::Duration kActiveExpiry = absl::Minutes(15);
// A run deferred this long ago and never seen created is forgotten (another replica created it).
constexpr absl::Duration kDeferredExpiry = absl::Hours(24);
constexpr absl::Duration kPruneInterval = absl::Minutes(1);
constexpr size_t kMaxRemembered = 100000;

neptune::RunRef RefOf(const ResourceMeta& meta) {
  return neptune::RunRef{meta.settings().project(), meta.custom_run_id(), meta.settings().routing_rule()};
}

// Keeps the code of `status` and puts `context` in front of its message.
absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

std::string TaskTypeOf(const flyteidl::admin::TaskCategory& category, const std::string& deprecated_type) {
  return category.name().empty() ? deprecated_type : category.name();
}

}  // namespace

TaskLifecycle::TaskLifecycle(const AgentConfig* config, neptune::Tracker* tracker,
                             executor::Executor* executor, storage::OutputStore* outputs,
                             FinalWriter* final_writer, const Clock* clock, metrics::Registry* metrics)
    : config_(*config),
      tracker_(tracker),
      executor_(executor),
      outputs_(outputs),
      final_writer_(final_writer),
      clock_(clock),
      registry_(metrics),
      runs_created_(
          registry_
              ->AddCounter("flyte_neptune_agent_runs_created_total", "Neptune runs created by CreateTask.")
              ->Get()),
      runs_created_late_(
          registry_
              ->AddCounter("flyte_neptune_agent_runs_created_late_total",
                           "Neptune runs CreateTask could not create that a later call created.")
              ->Get()),
      runs_finalized_(registry_
                          ->AddCounter("flyte_neptune_agent_runs_finalized_total",
                                       "Neptune runs whose final fields GetTask or DeleteTask wrote.")
                          ->Get()),
      handed_off_(registry_
                      ->AddCounter("flyte_neptune_agent_final_writes_handed_off_total",
                                   "Final writes that failed within the finalize grace and continue in the "
                                   "background.")
                      ->Get()),
      tracking_errors_(registry_->AddCounter("flyte_neptune_agent_tracking_errors_total",
                                             "Tracker calls that failed (tracking degraded; the task is not "
                                             "affected), by stage (create_run, final_write) and status code.",
                                             {"stage", "code"})),
      active_tasks_(registry_->AddGaugeCallback(
          "flyte_neptune_agent_active_tasks",
          "Tracked task attempts this replica saw running (CreateTask, GetTask) in the last 15 minutes.",
          [this] { return static_cast<double>(CountActive()); })) {}

void TaskLifecycle::Prune(absl::Time now) {
  if (now - last_prune_ < kPruneInterval) return;
  last_prune_ = now;
  for (auto it = active_.begin(); it != active_.end();) {
    it = now - it->second >= kActiveExpiry ? active_.erase(it) : std::next(it);
  }
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    it = now - it->second >= kDeferredExpiry ? deferred_.erase(it) : std::next(it);
  }
}

void TaskLifecycle::NoteRunDeferred(const ResourceMeta& meta) {
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  Prune(now);
  if (deferred_.size() < kMaxRemembered) deferred_.try_emplace(meta.execution_id(), now);
}

bool TaskLifecycle::NoteRunExists(const ResourceMeta& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  return deferred_.erase(meta.execution_id()) > 0;
}

bool TaskLifecycle::NoteRunning(const ResourceMeta& meta) {
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  Prune(now);
  auto [it, added] = active_.try_emplace(meta.execution_id(), now);
  it->second = now;
  if (added && active_.size() > kMaxRemembered) active_.erase(it);
  return added;
}

void TaskLifecycle::NoteFinished(const ResourceMeta& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(meta.execution_id());
}

size_t TaskLifecycle::CountActive() {
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  size_t count = 0;
  for (const auto& [id, seen] : active_) count += now - seen < kActiveExpiry ? 1 : 0;
  return count;
}

absl::Status TaskLifecycle::CheckTaskType(absl::string_view task_type) const {
  if (task_type.empty() || absl::c_linear_search(config_.task_types, task_type)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("the neptune agent does not serve task type \"", task_type,
                                          "\"; it serves: ", absl::StrJoin(config_.task_types, ", "),
                                          " (check propeller's connectorForTaskTypes / agentForTaskTypes)"));
}

absl::Time TaskLifecycle::Deadline() const { return clock_->Now() + config_.create_budget; }

absl::StatusOr<std::string> TaskLifecycle::Create(const flyteidl::admin::CreateTaskRequest& request) {
  const flyteidl::core::TaskTemplate& task_template = request.template_();
  if (task_template.type().empty()) {
    return absl::InvalidArgumentError("CreateTaskRequest.template has no task type");
  }
  FNA_RETURN_IF_ERROR(CheckTaskType(task_template.type()));
  if (!task_template.has_container()) {
    return absl::InvalidArgumentError(
        "task template has no container: the neptune agent runs the task's container "
        "(TaskTemplate.container); "
        "k8s_pod and sql targets are not supported");
  }
  if (request.output_prefix().empty()) {
    return absl::InvalidArgumentError("CreateTaskRequest.output_prefix is empty; propeller always sets it");
  }
  const flyteidl::admin::TaskExecutionMetadata& metadata = request.task_execution_metadata();
  const auto& task_execution = metadata.task_execution_id();
  const auto& node_execution = task_execution.node_execution_id();
  const auto& execution = node_execution.execution_id();
  if (execution.name().empty() || node_execution.node_id().empty()) {
    return absl::InvalidArgumentError(
        "task_execution_metadata.task_execution_id lacks the execution name or node id; propeller always "
        "sets them");
  }

  FNA_ASSIGN_OR_RETURN(RunSettings settings, ResolveSettings(task_template, metadata, config_));
  const AttemptIdentity identity = DeriveIdentity(execution.name(), node_execution.node_id(),
                                                  task_execution.retry_attempt(), request.output_prefix());
  ResourceMeta meta;
  meta.set_execution_id(identity.execution_id);
  meta.set_custom_run_id(identity.custom_run_id);
  meta.set_output_prefix(request.output_prefix());
  FlyteIds* ids = meta.mutable_ids();
  ids->set_project(execution.project());
  ids->set_domain(execution.domain());
  ids->set_execution_name(execution.name());
  ids->set_node_id(node_execution.node_id());
  ids->set_retry_attempt(task_execution.retry_attempt());
  ids->set_task_project(task_execution.task_id().project());
  ids->set_task_domain(task_execution.task_id().domain());
  ids->set_task_name(task_execution.task_id().name());
  ids->set_task_version(task_execution.task_id().version());
  ids->set_task_type(task_template.type());
  if (auto it = metadata.labels().find("workflow-name"); it != metadata.labels().end()) {
    ids->set_workflow(it->second);
  }
  ids->set_namespace_(metadata.namespace_());
  ids->set_service_account(metadata.k8s_service_account());
  ids->set_image(task_template.container().image());
  ids->set_raw_output_prefix(RawOutputPrefixFromArgs(task_template.container()));
  *meta.mutable_settings() = std::move(settings);
  const auto& timeout = task_template.metadata().timeout();
  meta.set_timeout_ms(timeout.seconds() * 1000 + timeout.nanos() / 1000000);
  meta.set_created_at_ms(absl::ToUnixMillis(clock_->Now()));
  FNA_ASSIGN_OR_RETURN(std::string bytes, EncodeResourceMeta(meta));
  FNA_ASSIGN_OR_RETURN(executor::TaskSpec spec, BuildTaskSpec(request, meta));

  LogFields log_fields = ResourceLogFields(meta);
  if (absl::Status started = executor_->Start(spec); !started.ok()) {
    log_fields.emplace_back("error", std::string(started.message()));
    Log(LogLevel::kError, "lifecycle", "cannot start task", log_fields);
    return Annotate(started, absl::StrCat("cannot start task ", identity.execution_id));
  }
  if (meta.settings().disabled()) {
    Log(LogLevel::kInfo, "lifecycle", "task started; tracking disabled by label", log_fields);
    return bytes;
  }
  std::string working_directory;
  if (auto status = executor_->GetStatus(spec.ref()); status.ok()) {
    working_directory = status->working_directory;
  }
  const bool first_create = NoteRunning(meta);  // CreateTask is delivered at least once
  const RunLink link = EnsureRun(meta, working_directory);
  if (link.run_id.empty()) {
    log_fields.emplace_back("error", link.problem);
    Log(LogLevel::kWarning, "lifecycle", "task started; run creation deferred to GetTask", log_fields);
  } else {
    if (first_create && !link.created_late) runs_created_->Increment();
    log_fields.emplace_back("neptune_run", link.run_id);
    Log(LogLevel::kInfo, "lifecycle", "task started and run created", log_fields);
  }
  return bytes;
}

TaskLifecycle::RunLink TaskLifecycle::EnsureRun(const ResourceMeta& meta,
                                                absl::string_view working_directory) {
  RunLink link;
  const neptune::RunRef ref = RefOf(meta);
  auto info =
      tracker_->CreateRun(ref, InitialFields(meta, config_.console_url, working_directory), Deadline());
  if (info.ok()) {
    link.run_id = info->run_id;
    link.url = info->url;
    link.created_late = NoteRunExists(meta);
    if (link.created_late) runs_created_late_->Increment();
  } else {
    link.url = tracker_->FallbackLink(ref);
    link.problem = std::string(info.status().message());
    tracking_errors_->Get({"create_run", absl::StatusCodeToString(info.status().code())})->Increment();
    NoteRunDeferred(meta);
  }
  return link;
}

ErrorFile TaskLifecycle::ReadErrorFile(const ResourceMeta& meta) {
  const std::string uri = absl::StrCat(absl::StripSuffix(meta.output_prefix(), "/"), "/error.pb");
  auto read = outputs_->Read(uri, Deadline());
  if (read.ok()) return ErrorFile{true, *std::move(read)};
  if (!absl::IsUnimplemented(read.status())) {
    LogFields fields = ResourceLogFields(meta);
    fields.emplace_back("error", std::string(read.status().message()));
    Log(LogLevel::kWarning, "lifecycle", "cannot check error.pb; the run records the exit status only",
        fields);
  }
  return ErrorFile{false, std::nullopt};
}

absl::Status TaskLifecycle::WriteOutcome(const ResourceMeta& meta, const RunOutcome& outcome, RunLink* link) {
  *link = EnsureRun(meta, outcome.working_directory());
  if (link->run_id.empty()) return absl::UnavailableError(link->problem);
  if (absl::Status written = tracker_->Write(RefOf(meta), FinalFields(meta, outcome), Deadline());
      !written.ok()) {
    tracking_errors_->Get({"final_write", absl::StatusCodeToString(written.code())})->Increment();
    return written;
  }
  runs_finalized_->Increment();
  LogFields fields = ResourceLogFields(meta);
  fields.emplace_back("phase", outcome.phase());
  if (absl::Status marked = executor_->MarkRunFinalized(TaskRefOf(meta)); !marked.ok()) {
    // The run is complete; a later GetTask writes the same final fields again, which is harmless.
    fields.emplace_back("error", std::string(marked.message()));
    Log(LogLevel::kWarning, "lifecycle", "run finalized, but the executor could not record it", fields);
  } else {
    Log(LogLevel::kInfo, "lifecycle", "run finalized", fields);
  }
  return absl::OkStatus();
}

void TaskLifecycle::HandOff(const ResourceMeta& meta, const RunOutcome& outcome, const absl::Status& why) {
  FinalWrite write;
  *write.mutable_meta() = meta;
  *write.mutable_outcome() = outcome;
  LogFields fields = ResourceLogFields(meta);
  fields.emplace_back("phase", outcome.phase());
  fields.emplace_back("error", std::string(why.message()));
  if (absl::Status recorded = executor_->RecordPendingFinalWrite(TaskRefOf(meta), write.SerializeAsString());
      !recorded.ok()) {
    fields.emplace_back("record_error", std::string(recorded.message()));
  }
  Log(LogLevel::kWarning, "lifecycle", "final write failed; continuing in the background", fields);
  handed_off_->Increment();
  final_writer_->Enqueue(std::move(write));
}

RunOutcome TaskLifecycle::OutcomeOf(const ResourceMeta& meta, const TaskStatus& status) {
  FinalWrite pending;
  if (status.pending_final_write.has_value() && pending.ParseFromString(*status.pending_final_write) &&
      pending.has_outcome()) {
    return pending.outcome();  // decided earlier: an abort, or a write handed to the background
  }
  return OutcomeFromStatus(status, status.state == TaskState::kSucceeded ? ReadErrorFile(meta) : ErrorFile{});
}

void TaskLifecycle::AddRunInfo(const ResourceMeta& meta, const RunLink& link,
                               flyteidl::admin::Resource* resource) const {
  flyteidl::core::TaskLog* log = resource->add_log_links();
  log->set_uri(link.url);
  log->set_name(kRunLinkName);
  log->set_showwhilepending(true);
  log->set_hideoncefinished(false);
  auto* neptune = (*resource->mutable_custom_info()->mutable_fields())["neptune"].mutable_struct_value();
  auto& fields = *neptune->mutable_fields();
  fields["project"].set_string_value(meta.settings().project());
  fields["custom_run_id"].set_string_value(meta.custom_run_id());
  fields["url"].set_string_value(link.url);
  if (!link.run_id.empty()) fields["run_id"].set_string_value(link.run_id);
}

absl::StatusOr<flyteidl::admin::Resource> TaskLifecycle::Get(const flyteidl::admin::GetTaskRequest& request) {
  FNA_RETURN_IF_ERROR(CheckTaskType(TaskTypeOf(request.task_category(), request.task_type())));
  FNA_ASSIGN_OR_RETURN(ResourceMeta meta, DecodeResourceMeta(request.resource_meta()));
  TaskStatus status;
  if (auto read = executor_->GetStatus(TaskRefOf(meta)); read.ok()) {
    status = *std::move(read);
  } else if (absl::IsNotFound(read.status())) {
    status.state = TaskState::kRetryableFailed;
    status.message = absl::StrCat("task ", meta.execution_id(),
                                  " no longer exists in the executor: it was deleted outside Flyte");
    status.finished_at = clock_->Now();
  } else {
    return Annotate(read.status(), absl::StrCat("cannot read the status of task ", meta.execution_id()));
  }

  flyteidl::admin::Resource resource;
  TaskExecution::Phase phase = FlytePhase(status.state);
  std::string message = status.message;
  if (meta.settings().disabled()) {
    SetPhase(phase, config_.retryable_failure, &resource);
    resource.set_message(message);
    return resource;
  }

  RunLink link;
  if (!executor::IsTerminal(status.state)) {
    NoteRunning(meta);
    link = EnsureRun(meta, status.working_directory);
    if (link.run_id.empty()) {
      message = absl::StrCat(message, message.empty() ? "" : "; ",
                             "Neptune run not created yet, will retry: ", link.problem);
    }
  } else if (status.run_finalized) {
    NoteFinished(meta);
    link.url = tracker_->FallbackLink(RefOf(meta));
  } else {
    NoteFinished(meta);
    const RunOutcome outcome = OutcomeOf(meta, status);
    if (absl::Status written = WriteOutcome(meta, outcome, &link); !written.ok()) {
      const bool within_grace =
          status.finished_at.has_value() && clock_->Now() - *status.finished_at < config_.finalize_grace;
      if (within_grace) {
        // Hold the terminal phase back: propeller stops polling once it sees it (design.md §3.4).
        phase = TaskExecution::RUNNING;
        message = absl::StrCat("task finished (", outcome.phase(),
                               "); waiting for Neptune to record the outcome: ", written.message());
      } else {
        HandOff(meta, outcome, written);
        message =
            absl::StrCat(message, message.empty() ? "" : "; ",
                         "Neptune run not finalized yet, retrying in the background: ", written.message());
      }
    }
  }
  SetPhase(phase, config_.retryable_failure, &resource);
  resource.set_message(message);
  AddRunInfo(meta, link, &resource);
  return resource;
}

absl::Status TaskLifecycle::Delete(const flyteidl::admin::DeleteTaskRequest& request) {
  FNA_RETURN_IF_ERROR(CheckTaskType(TaskTypeOf(request.task_category(), request.task_type())));
  FNA_ASSIGN_OR_RETURN(ResourceMeta meta, DecodeResourceMeta(request.resource_meta()));
  LogFields fields = ResourceLogFields(meta);
  auto read = executor_->GetStatus(TaskRefOf(meta));
  if (absl::IsNotFound(read.status())) {
    Log(LogLevel::kInfo, "lifecycle", "abort of an unknown task: nothing to do", fields);
    return absl::OkStatus();
  }
  if (!read.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot abort task ", meta.execution_id(),
                                               ": cannot read its status: ", read.status().message()));
  }
  const TaskStatus& status = *read;
  NoteFinished(meta);
  RunOutcome outcome;
  if (executor::IsTerminal(status.state)) {
    if (status.run_finalized || meta.settings().disabled()) return absl::OkStatus();
    outcome = OutcomeOf(meta, status);  // it finished before the abort arrived: record what really happened
  } else {
    if (absl::Status aborted = executor_->Abort(TaskRefOf(meta)); !aborted.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot abort task ", meta.execution_id(), ": ", aborted.message()));
    }
    Log(LogLevel::kInfo, "lifecycle", "task aborted", fields);
    if (meta.settings().disabled()) return absl::OkStatus();
    outcome = OutcomeOfAbort(meta, &status, clock_->Now());
  }
  RunLink link;
  if (absl::Status written = WriteOutcome(meta, outcome, &link); !written.ok())
    HandOff(meta, outcome, written);
  return absl::OkStatus();
}

absl::StatusOr<executor::LogBatch> TaskLifecycle::ReadLogs(absl::string_view resource_meta,
                                                           const executor::LogQuery& query) {
  FNA_ASSIGN_OR_RETURN(ResourceMeta meta, DecodeResourceMeta(resource_meta));
  return executor_->ReadLogs(TaskRefOf(meta), query);
}

}  // namespace fna::tracking
