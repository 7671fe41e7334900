#include "agent/executor/kubernetes/kubernetes_executor.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "flyteidl/admin/agent.pb.h"

namespace fna::executor::kubernetes {
namespace {

using Json = nlohmann::json;

constexpr char kComponent[] = "kubernetes";
constexpr int64_t kListPageSize = 500;

std::string Rfc3339(absl::Time t) { return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()); }

std::optional<absl::Time> ParseTime(const std::string& text) {
  absl::Time t;
  std::string error;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return std::nullopt;
  return t;
}

// metadata.<section>.<key> as a string, or "".
std::string MetadataValue(const Json& pod, const char* section, const char* key) {
  const Json* values = nullptr;
  if (pod.is_object() && pod.contains("metadata") && pod["metadata"].is_object() &&
      pod["metadata"].contains(section)) {
    values = &pod["metadata"][section];
  }
  if (values == nullptr || !values->is_object() || !values->contains(key) || !(*values)[key].is_string()) {
    return "";
  }
  return (*values)[key].get<std::string>();
}

// metadata.<key> as a string ("name", "namespace", "uid"), or "".
std::string MetadataField(const Json& pod, const char* key) {
  if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].is_object()) return "";
  const Json& metadata = pod["metadata"];
  return metadata.contains(key) && metadata[key].is_string() ? metadata[key].get<std::string>() : "";
}

}  // namespace

KubernetesExecutor::KubernetesExecutor(kube::KubeClient* client, KubernetesExecutorOptions options,
                                       const Clock* clock, PodCache* cache)
    : client_(client), options_(std::move(options)), clock_(clock), cache_(cache) {}

bool KubernetesExecutor::Ready() const { return cache_ == nullptr || cache_->synced(); }

absl::StatusOr<Json> KubernetesExecutor::ReadPod(const TaskRef& task, absl::Time deadline) {
  Json pod;
  if (cache_ != nullptr && cache_->Get(task.k8s_namespace, task.name, &pod) == CacheLookup::kHit) return pod;
  auto read = client_->GetPod(task.k8s_namespace, task.name, deadline);
  if (cache_ != nullptr) {
    if (read.ok()) cache_->Observe(*read);
    if (absl::IsNotFound(read.status())) cache_->ObserveDeleted(task.k8s_namespace, task.name);
  }
  return read;
}

absl::StatusOr<std::vector<Json>> KubernetesExecutor::OwnPods(absl::string_view extra_label,
                                                              absl::string_view value) {
  std::optional<std::vector<Json>> cached;
  if (cache_ != nullptr) cached = cache_->Snapshot();
  if (!cached.has_value()) {
    return ListOwnPods(extra_label.empty() ? std::string() : absl::StrCat(extra_label, "=", value));
  }
  std::vector<Json> pods;
  for (Json& pod : *cached) {
    if (MetadataValue(pod, "labels", kManagedByLabel) != kManagedByValue ||
        MetadataValue(pod, "labels", kAgentLabel) != options_.agent_name) {
      continue;
    }
    if (!extra_label.empty() && MetadataValue(pod, "labels", std::string(extra_label).c_str()) != value)
      continue;
    pods.push_back(std::move(pod));
  }
  return pods;
}

absl::Time KubernetesExecutor::Deadline() const { return clock_->Now() + options_.request_timeout; }

std::string AgentPodSelector(absl::string_view agent_name) {
  return absl::StrCat(kManagedByLabel, "=", kManagedByValue, ",", kAgentLabel, "=", agent_name);
}

std::string KubernetesExecutor::Selector() const { return AgentPodSelector(options_.agent_name); }

std::string KubernetesExecutor::WorkflowUid(const TaskSpec& spec, absl::Time deadline) {
  if (!options_.owner_references || workflow_reads_forbidden_.load()) return "";
  // The FlyteWorkflow CR is named after the workflow execution.
  const std::string& workflow =
      spec.request->task_execution_metadata().task_execution_id().node_execution_id().execution_id().name();
  if (workflow.empty()) return "";
  auto object = client_->GetObject(absl::StrCat("/apis/flyte.lyft.com/v1alpha1/namespaces/",
                                                spec.k8s_namespace, "/flyteworkflows/", workflow),
                                   deadline);
  if (object.ok()) return MetadataField(*object, "uid");
  if (absl::IsPermissionDenied(object.status())) {
    workflow_reads_forbidden_.store(true);
    Log(LogLevel::kWarning, kComponent,
        "cannot read FlyteWorkflows: task Pods get no ownerReference and are removed by the sweeper only",
        {{"error", std::string(object.status().message())}});
  }
  return "";
}

absl::Status KubernetesExecutor::Start(const TaskSpec& spec) {
  if (spec.request == nullptr)
    return absl::InvalidArgumentError("the Kubernetes executor needs the CreateTask request");
  const absl::Time deadline = Deadline();
  PodIdentity identity;
  identity.pod_name = spec.name;
  identity.neptune_project = spec.neptune_project;
  identity.custom_run_id = spec.custom_run_id;
  identity.tracking_disabled = spec.custom_run_id.empty();
  identity.flyteworkflow_uid = WorkflowUid(spec, deadline);

  PodOptions pod_options = options_.pod;
  pod_options.agent_labels[kManagedByLabel] = kManagedByValue;
  pod_options.agent_labels[kAgentLabel] = options_.agent_name;
  if (identity.tracking_disabled) pod_options.agent_annotations[kTrackingAnnotation] = "disabled";
  FNA_ASSIGN_OR_RETURN(nlohmann::ordered_json pod, BuildPod(*spec.request, identity, pod_options));

  auto created = client_->CreatePod(spec.k8s_namespace, Json(pod), deadline);
  if (created.ok() && cache_ != nullptr) cache_->Observe(*created);
  if (created.ok()) {
    Log(LogLevel::kInfo, kComponent, "pod created",
        {{"pod", absl::StrCat(spec.k8s_namespace, "/", spec.name)}});
    return absl::OkStatus();
  }
  if (!absl::IsAlreadyExists(created.status())) return created.status();
  // CreateTask delivered again (or by another replica): adopt the Pod when it is ours.
  FNA_ASSIGN_OR_RETURN(Json existing, ReadPod(spec.ref(), deadline));
  if (MetadataValue(existing, "labels", kManagedByLabel) != kManagedByValue ||
      MetadataValue(existing, "labels", kAgentLabel) != options_.agent_name) {
    return absl::FailedPreconditionError(absl::StrCat("a Pod named ", spec.k8s_namespace, "/", spec.name,
                                                      " already exists and was not created by agent \"",
                                                      options_.agent_name, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskStatus> KubernetesExecutor::GetStatus(const TaskRef& task) {
  FNA_ASSIGN_OR_RETURN(Json pod, ReadPod(task, Deadline()));
  TaskStatus status = StatusFromPod(pod, clock_->Now(), options_.status);
  // Aborted while it ran: whatever the terminating Pod shows now (killed, deleted) is the abort.
  if (!MetadataValue(pod, "annotations", kAbortedAnnotation).empty() &&
      status.state != TaskState::kSucceeded) {
    status.state = TaskState::kAborted;
    status.message = "aborted";
    status.finished_at = ParseTime(MetadataValue(pod, "annotations", kAbortedAnnotation));
  }
  status.run_finalized = !MetadataValue(pod, "annotations", kFinalizedAnnotation).empty();
  const std::string pending = MetadataValue(pod, "annotations", kPendingAnnotation);
  std::string record;
  if (!status.run_finalized && !pending.empty() && absl::Base64Unescape(pending, &record)) {
    status.pending_final_write = std::move(record);
  }
  return status;
}

absl::Status KubernetesExecutor::Abort(const TaskRef& task) {
  const absl::Time deadline = Deadline();
  const Json patch = {{"metadata", {{"annotations", {{kAbortedAnnotation, Rfc3339(clock_->Now())}}}}}};
  if (absl::Status patched = Annotate(task, patch); !patched.ok() && !absl::IsNotFound(patched)) {
    return patched;
  }
  FNA_RETURN_IF_ERROR(client_->DeletePod(task.k8s_namespace, task.name, std::nullopt, deadline));
  Log(LogLevel::kInfo, kComponent, "pod deleted (abort)",
      {{"pod", absl::StrCat(task.k8s_namespace, "/", task.name)}});
  return absl::OkStatus();
}

absl::Status KubernetesExecutor::Annotate(const TaskRef& task, const Json& merge_patch) {
  auto patched = client_->PatchPod(task.k8s_namespace, task.name, merge_patch, Deadline());
  if (patched.ok() && cache_ != nullptr) cache_->Observe(*patched);
  return patched.status();
}

absl::Status KubernetesExecutor::MarkRunFinalized(const TaskRef& task) {
  return Annotate(
      task,
      {{"metadata",
        {{"labels", {{kPendingLabel, nullptr}}},
         {"annotations", {{kFinalizedAnnotation, Rfc3339(clock_->Now())}, {kPendingAnnotation, nullptr}}}}}});
}

absl::Status KubernetesExecutor::RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) {
  return Annotate(task, {{"metadata",
                          {{"labels", {{kPendingLabel, "true"}}},
                           {"annotations", {{kPendingAnnotation, absl::Base64Escape(record)}}}}}});
}

absl::StatusOr<std::vector<Json>> KubernetesExecutor::ListOwnPods(absl::string_view extra_selector) {
  std::string selector = Selector();
  if (!extra_selector.empty()) absl::StrAppend(&selector, ",", extra_selector);
  std::vector<std::string> namespaces = options_.namespaces;
  if (namespaces.empty()) namespaces.push_back("");  // cluster-wide
  std::vector<Json> pods;
  for (const std::string& ns : namespaces) {
    std::string continue_token;
    do {
      FNA_ASSIGN_OR_RETURN(kube::PodList page,
                           client_->ListPods(ns, selector, kListPageSize, continue_token, Deadline()));
      for (Json& pod : page.items) pods.push_back(std::move(pod));
      continue_token = page.continue_token;
    } while (!continue_token.empty());
  }
  return pods;
}

absl::StatusOr<std::vector<std::string>> KubernetesExecutor::ListPendingFinalWrites() {
  FNA_ASSIGN_OR_RETURN(std::vector<Json> pods, OwnPods(kPendingLabel, "true"));
  std::vector<std::string> records;
  for (const Json& pod : pods) {
    std::string record;
    if (!MetadataValue(pod, "annotations", kFinalizedAnnotation).empty()) continue;
    if (absl::Base64Unescape(MetadataValue(pod, "annotations", kPendingAnnotation), &record) &&
        !record.empty()) {
      records.push_back(std::move(record));
    }
  }
  return records;
}

absl::StatusOr<int> KubernetesExecutor::Sweep() {
  FNA_ASSIGN_OR_RETURN(std::vector<Json> pods, OwnPods("", ""));
  const absl::Time now = clock_->Now();
  int deleted = 0;
  for (const Json& pod : pods) {
    const TaskStatus status = StatusFromPod(pod, now, options_.status);
    if (!IsTerminal(status.state)) continue;
    std::optional<absl::Time> since = ParseTime(MetadataValue(pod, "annotations", kFinalizedAnnotation));
    if (!since.has_value() && MetadataValue(pod, "annotations", kTrackingAnnotation) == "disabled") {
      since = status.finished_at.has_value() ? status.finished_at : std::optional<absl::Time>(now);
    }
    if (!since.has_value()) continue;  // the run is not final yet
    const bool cleanup_case = NeedsCleanup(pod, now, options_.status);
    if (!cleanup_case && now - *since < options_.cleanup_delay) continue;
    // The uid precondition guards against deleting a namesake created since the list.
    const std::string uid = MetadataField(pod, "uid");
    const std::string ns = MetadataField(pod, "namespace");
    const std::string name = MetadataField(pod, "name");
    absl::Status gone = client_->DeletePod(
        ns, name, uid.empty() ? std::nullopt : std::optional<std::string>(uid), Deadline());
    LogFields fields = {{"pod", absl::StrCat(ns, "/", name)},
                        {"reason", cleanup_case ? "clean-up case" : "finished"}};
    if (!gone.ok()) {
      fields.emplace_back("error", std::string(gone.message()));
      Log(LogLevel::kWarning, kComponent, "sweeper: cannot delete pod", fields);
      continue;
    }
    Log(LogLevel::kInfo, kComponent, "sweeper: pod deleted", fields);
    ++deleted;
  }
  return deleted;
}

namespace {

// A log token: the timestamp of the last line returned and how many lines carried exactly that timestamp
// ("<RFC 3339 nanos> <count>"), so that a request from that second on can skip what was already read.
struct LogPosition {
  absl::Time time = absl::InfinitePast();
  int64_t lines_at_time = 0;
};

absl::StatusOr<LogPosition> ParseLogToken(absl::string_view token) {
  LogPosition position;
  if (token.empty()) return position;
  const std::vector<absl::string_view> parts = absl::StrSplit(token, ' ');
  std::string error;
  if (parts.size() != 2 || !absl::ParseTime(absl::RFC3339_full, parts[0], &position.time, &error) ||
      !absl::SimpleAtoi(parts[1], &position.lines_at_time) || position.lines_at_time < 0) {
    return absl::InvalidArgumentError(absl::StrCat("not a log token of this agent: \"", token, "\""));
  }
  return position;
}

std::string FormatLogToken(const LogPosition& position) {
  return absl::StrCat(absl::FormatTime(absl::RFC3339_full, position.time, absl::UTCTimeZone()), " ",
                      position.lines_at_time);
}

}  // namespace

absl::StatusOr<LogBatch> KubernetesExecutor::ReadLogs(const TaskRef& task, const LogQuery& query) {
  FNA_ASSIGN_OR_RETURN(LogPosition position, ParseLogToken(query.token));
  const absl::Time deadline = Deadline();
  FNA_ASSIGN_OR_RETURN(Json pod, ReadPod(task, deadline));
  const bool finished = IsTerminal(StatusFromPod(pod, clock_->Now(), options_.status).state);

  kube::PodLogOptions log_options;
  log_options.container = MetadataValue(pod, "annotations", "primary_container_name");
  if (log_options.container.empty()) log_options.container = task.name;
  log_options.timestamps = true;
  log_options.limit_bytes = static_cast<int64_t>(query.max_bytes);
  if (!query.token.empty()) {
    log_options.since_time = absl::FromUnixSeconds(absl::ToUnixSeconds(position.time));  // whole seconds
  } else if (query.tail_lines > 0) {
    log_options.tail_lines = static_cast<int64_t>(query.tail_lines);
  }
  LogBatch batch;
  batch.next_token = query.token;
  auto text = client_->GetPodLog(task.k8s_namespace, task.name, log_options, deadline);
  if (absl::IsInvalidArgument(text.status()) && !finished) return batch;  // the container has not started
  if (!text.ok()) return text.status();

  // limitBytes may cut the last line: it is read again from its timestamp next time.
  absl::string_view body = *text;
  if (body.size() >= query.max_bytes && !body.empty() && body.back() != '\n') {
    body = body.substr(0, body.rfind('\n') + 1);
  }
  const bool cut = text->size() >= query.max_bytes;
  LogPosition last = position;
  int64_t to_skip = position.lines_at_time;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    const size_t space = line.find(' ');
    absl::Time time;
    std::string error;
    if (space == absl::string_view::npos ||
        !absl::ParseTime(absl::RFC3339_full, line.substr(0, space), &time, &error)) {
      continue;  // not a timestamped line (the API always sends them with timestamps=true)
    }
    if (time < position.time) continue;
    if (time == position.time && to_skip > 0) {
      --to_skip;
      continue;
    }
    batch.lines.push_back(LogLine{time, std::string(line.substr(space + 1))});
    last.lines_at_time = time == last.time ? last.lines_at_time + 1 : 1;
    last.time = time;
  }
  if (last.time != absl::InfinitePast()) batch.next_token = FormatLogToken(last);
  batch.complete = finished && !cut;
  return batch;
}

}  // namespace fna::executor::kubernetes
