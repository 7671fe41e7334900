#include "agent/executor/kubernetes/pod_status.h"

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/executor/kubernetes/k8s_rules.h"

namespace fna::executor::kubernetes {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kOomKilled = "OOMKilled";
constexpr absl::string_view kInterrupted = "Interrupted";

// Safe accessors: a missing key, a null or a value of the wrong type reads as absent. Never throw.
const Json* Get(const Json* object, const char* key) {
  if (object == nullptr || !object->is_object()) return nullptr;
  auto it = object->find(key);
  return it == object->end() || it->is_null() ? nullptr : &*it;
}

std::string Str(const Json* object, const char* key) {
  const Json* value = Get(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : "";
}

std::optional<int64_t> Int(const Json* object, const char* key) {
  const Json* value = Get(object, key);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  if (value->is_number_float()) {
    const double number = value->get<double>();
    // Exit codes are small integers; anything else is not one (and would overflow the cast).
    if (!(number >= -2147483648.0 && number <= 2147483647.0)) return std::nullopt;
    return static_cast<int64_t>(number);
  }
  if (value->is_number_unsigned()) return static_cast<int64_t>(value->get<uint64_t>());
  return value->get<int64_t>();
}

bool Bool(const Json* object, const char* key) {
  const Json* value = Get(object, key);
  return value != nullptr && value->is_boolean() && value->get<bool>();
}

std::optional<absl::Time> Time(const Json* object, const char* key) {
  const std::string text = Str(object, key);
  absl::Time time;
  std::string error;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return std::nullopt;
  return time;
}

std::vector<const Json*> Array(const Json* object, const char* key) {
  std::vector<const Json*> out;
  const Json* value = Get(object, key);
  if (value == nullptr || !value->is_array()) return out;
  for (const auto& item : *value) {
    if (item.is_object()) out.push_back(&item);
  }
  return out;
}

bool IsSigkill(int64_t exit_code) { return exit_code == 137 || exit_code == 247; }

PodPhase Pending(std::string reason) {
  PodPhase phase;
  phase.state = TaskState::kPending;
  phase.code = std::move(reason);
  return phase;
}

PodPhase Running() {
  PodPhase phase;
  phase.state = TaskState::kRunning;
  return phase;
}

PodPhase Success() {
  PodPhase phase;
  phase.state = TaskState::kSucceeded;
  return phase;
}

PodPhase Failure(TaskState state, std::string code, std::string message, FailureKind kind, bool cleanup) {
  PodPhase phase;
  phase.state = state;
  phase.code = std::move(code);
  phase.message = std::move(message);
  phase.kind = kind;
  phase.cleanup = cleanup;
  return phase;
}

std::string GraceMessage(absl::string_view message, absl::Duration grace) {
  return absl::StrCat("Grace period [", GoDurationString(grace), "] exceeded|", message);
}

std::string TerminatedMessage(absl::string_view name, const Json* terminated) {
  return absl::StrCat("\r\n[", name, "] terminated with exit code (", Int(terminated, "exitCode").value_or(0),
                      "). Reason [", Str(terminated, "reason"), "]. Message: \n", Str(terminated, "message"),
                      ".");
}

// demystifyPendingHelper + DemystifyPending. `since` is the last condition's transition time.
PodPhase DemystifyPending(const Json* status, absl::Time now, const StatusOptions& options) {
  absl::Time since = now;
  std::optional<PodPhase> result;
  for (const Json* condition : Array(status, "conditions")) {
    // A condition without a (readable) transition time counts as long ago, as Go's zero time does.
    since = Time(condition, "lastTransitionTime").value_or(absl::InfinitePast());
    const std::string type = Str(condition, "type");
    const std::string condition_status = Str(condition, "status");
    const std::string condition_reason = Str(condition, "reason");
    const std::string condition_message = Str(condition, "message");
    if ((type == "PodScheduled" && condition_status == "False") || type == "Unschedulable") {
      result = Pending(absl::StrCat(condition_reason, ":", condition_message));
      break;
    }
    if (type != "Ready" || condition_status != "False") continue;
    for (const Json* container : Array(status, "containerStatuses")) {
      if (Bool(container, "ready")) continue;
      const Json* waiting = Get(Get(container, "state"), "waiting");
      if (waiting == nullptr) continue;
      const std::string reason = Str(waiting, "reason");
      const std::string final_reason = absl::StrCat(condition_reason, "|", reason);
      const std::string final_message = absl::StrCat(condition_message, "|", Str(waiting, "message"));
      const std::string initializing = absl::StrCat("[", final_reason, "]: ", final_message);
      const absl::Duration elapsed = now - since;
      if (reason == "ErrImagePull" || reason == "ContainerCreating" || reason == "PodInitializing") {
        result = Pending(initializing);
      } else if (reason == "CreateContainerError" || reason == "CreateContainerConfigError") {
        const absl::Duration grace = reason == "CreateContainerError"
                                         ? options.create_container_error_grace_period
                                         : options.create_container_config_error_grace_period;
        result = elapsed >= grace
                     ? Failure(TaskState::kFailed, final_reason, GraceMessage(final_message, grace),
                               FailureKind::kUser, /*cleanup=*/true)
                     : Pending(initializing);
      } else if (reason == "InvalidImageName") {
        result =
            Failure(TaskState::kFailed, final_reason, final_message, FailureKind::kUser, /*cleanup=*/true);
      } else if (reason == "ImagePullBackOff") {
        const absl::Duration grace = options.image_pull_backoff_grace_period;
        result = elapsed >= grace
                     ? Failure(TaskState::kRetryableFailed, final_reason, GraceMessage(final_message, grace),
                               FailureKind::kUser, /*cleanup=*/true)
                     : Pending(initializing);
      } else {
        // Not a step of a normal start (ErrImageNeverPull, RunContainerError, CrashLoopBackOff, hook
        // errors…).
        result = Failure(TaskState::kRetryableFailed, final_reason, final_message, FailureKind::kSystem,
                         /*cleanup=*/true);
      }
      break;
    }
    if (result.has_value()) break;
  }
  if (!result.has_value()) result = Pending("Scheduling");
  if (IsTerminal(result->state)) return *result;
  if (options.pod_pending_timeout > absl::ZeroDuration() && now - since >= options.pod_pending_timeout) {
    return Failure(TaskState::kRetryableFailed, "PodPendingTimeout", result->code, FailureKind::kUser,
                   /*cleanup=*/true);
  }
  return *result;
}

std::vector<const Json*> AllContainerStatuses(const Json* status) {
  std::vector<const Json*> out = Array(status, "initContainerStatuses");
  for (const Json* container : Array(status, "containerStatuses")) out.push_back(container);
  for (const Json* container : Array(status, "ephemeralContainerStatuses")) out.push_back(container);
  return out;
}

PodPhase DemystifySuccess(const Json* status) {
  for (const Json* container : AllContainerStatuses(status)) {
    const Json* terminated = Get(Get(container, "state"), "terminated");
    if (terminated != nullptr && absl::StrContains(Str(terminated, "reason"), kOomKilled)) {
      return Failure(TaskState::kRetryableFailed, std::string(kOomKilled),
                     "Pod reported success despite being OOMKilled", FailureKind::kUser, /*cleanup=*/false);
    }
  }
  return Success();
}

PodPhase DemystifyFailure(const Json* status, const std::string& primary) {
  std::string code = Str(status, "reason");
  if (code.empty()) code = "UnknownError";
  std::string message = Str(status, "message");
  if (message.empty()) message = "Pod failed. No message received from kubernetes.";
  bool system =
      code == "Shutdown" || code == "Terminated" || code == "NodeShutdown" || code == "NodeAffinity";
  for (const Json* container : AllContainerStatuses(status)) {
    const Json* terminated = Get(Get(container, "lastState"), "terminated");
    if (terminated == nullptr) terminated = Get(Get(container, "state"), "terminated");
    if (terminated == nullptr) continue;
    const std::string name = Str(container, "name");
    const int64_t exit_code = Int(terminated, "exitCode").value_or(0);
    if (absl::StrContains(Str(terminated, "reason"), kOomKilled)) {
      code = std::string(kOomKilled);
    } else if (IsSigkill(exit_code)) {
      code = std::string(kInterrupted);
      if (!primary.empty() && name == primary) system = true;
    }
    if (exit_code == 0) {
      absl::StrAppend(&message, "\r\n[", name, "] terminated with ExitCode 0.");
    } else {
      absl::StrAppend(&message, TerminatedMessage(name, terminated));
    }
  }
  // An unexplained failure (no reason, no OOM, no SIGKILL) is classified as a system error on purpose.
  if (system || code == "UnknownError") {
    return Failure(TaskState::kRetryableFailed, std::string(kInterrupted), message, FailureKind::kSystem,
                   /*cleanup=*/false);
  }
  return Failure(TaskState::kRetryableFailed, code, message, FailureKind::kUser, /*cleanup=*/false);
}

bool SpecHasContainer(const Json* spec, const std::string& name) {
  for (const Json* container : Array(spec, "containers")) {
    if (Str(container, "name") == name) return true;
  }
  return false;
}

PodPhase DeterminePrimaryContainerPhase(const Json* status, const Json* spec, const std::string& primary) {
  for (const Json* container : Array(status, "containerStatuses")) {
    if (Str(container, "name") != primary) continue;
    const Json* state = Get(container, "state");
    if (Get(state, "waiting") != nullptr || Get(state, "running") != nullptr) return Running();
    const Json* terminated = Get(state, "terminated");
    if (terminated == nullptr) return Running();
    const int64_t exit_code = Int(terminated, "exitCode").value_or(0);
    const std::string reason = Str(terminated, "reason");
    const bool oom = absl::StrContains(reason, kOomKilled);
    if (exit_code == 0 && !oom) return Success();
    return Failure(TaskState::kRetryableFailed, reason, TerminatedMessage(primary, terminated),
                   !oom && IsSigkill(exit_code) ? FailureKind::kSystem : FailureKind::kUser,
                   /*cleanup=*/false);
  }
  if (Get(spec, "containers") == nullptr || SpecHasContainer(spec, primary)) return Running();
  return Failure(TaskState::kFailed, "PrimaryContainerNotFound",
                 absl::StrCat("Primary container [", primary, "] not found in pod's container statuses"),
                 FailureKind::kUser, /*cleanup=*/false);
}

PodPhase AllContainersPhase(const Json* status) {
  std::vector<const Json*> containers = Array(status, "initContainerStatuses");
  for (const Json* container : Array(status, "containerStatuses")) containers.push_back(container);
  if (containers.empty()) return Running();
  for (const Json* container : containers) {
    const Json* terminated = Get(Get(container, "state"), "terminated");
    if (terminated == nullptr || Int(terminated, "exitCode").value_or(-1) != 0) return Running();
  }
  return Success();
}

std::string PrimaryContainerName(const Json& pod) {
  return Str(Get(Get(&pod, "metadata"), "annotations"), "primary_container_name");
}

}  // namespace

PodPhase ClassifyPod(const nlohmann::json& pod, absl::Time now, const StatusOptions& options) {
  const Json* metadata = Get(&pod, "metadata");
  const Json* status = Get(&pod, "status");
  const Json* spec = Get(&pod, "spec");
  const std::string pod_phase = Str(status, "phase");
  const std::string primary = PrimaryContainerName(pod);
  PodPhase phase;
  if (pod_phase == "Succeeded") {
    phase = DemystifySuccess(status);
  } else if (pod_phase == "Failed") {
    phase = DemystifyFailure(status, primary);
  } else if (pod_phase == "Pending" || pod_phase.empty()) {
    phase = DemystifyPending(status, now, options);
  } else if (!primary.empty()) {
    phase = DeterminePrimaryContainerPhase(status, spec, primary);
  } else {
    phase = AllContainersPhase(status);
  }
  if (Get(metadata, "deletionTimestamp") != nullptr && !IsTerminal(phase.state)) {
    return Failure(TaskState::kRetryableFailed, "UnexpectedObjectDeletion",
                   absl::StrCat("object [", Str(metadata, "namespace"), "/", Str(metadata, "name"),
                                "] terminated in the background, manually"),
                   FailureKind::kSystem, /*cleanup=*/false);
  }
  return phase;
}

TaskStatus StatusFromPod(const nlohmann::json& pod, absl::Time now, const StatusOptions& options) {
  const PodPhase phase = ClassifyPod(pod, now, options);
  TaskStatus out;
  out.state = phase.state;
  if (phase.state == TaskState::kPending) {
    out.message = phase.code;
  } else if (IsTerminal(phase.state) && phase.state != TaskState::kSucceeded) {
    out.message = phase.code.empty() ? phase.message : absl::StrCat(phase.code, ": ", phase.message);
  }

  // The primary container: the annotated one, else the first in the spec, else the first status.
  const Json* status = Get(&pod, "status");
  const Json* spec = Get(&pod, "spec");
  std::string primary = PrimaryContainerName(pod);
  const std::vector<const Json*> spec_containers = Array(spec, "containers");
  const std::vector<const Json*> statuses = Array(status, "containerStatuses");
  if (primary.empty() && !spec_containers.empty()) primary = Str(spec_containers.front(), "name");
  if (primary.empty() && !statuses.empty()) primary = Str(statuses.front(), "name");
  for (const Json* container : spec_containers) {
    if (Str(container, "name") == primary) out.working_directory = Str(container, "workingDir");
  }
  for (const Json* container : statuses) {
    if (Str(container, "name") != primary) continue;
    const Json* state = Get(container, "state");
    if (const Json* running = Get(state, "running"); running != nullptr) {
      if (auto started = Time(running, "startedAt")) out.started_at = *started;
      break;
    }
    const Json* terminated = Get(state, "terminated");
    if (terminated == nullptr) terminated = Get(Get(container, "lastState"), "terminated");
    if (terminated != nullptr) {
      if (auto exit_code = Int(terminated, "exitCode");
          exit_code.has_value() && *exit_code >= INT32_MIN && *exit_code <= INT32_MAX) {
        out.exit_code = static_cast<int>(*exit_code);
      }
      if (auto started = Time(terminated, "startedAt")) out.started_at = *started;
      if (auto finished = Time(terminated, "finishedAt")) out.finished_at = *finished;
    }
    break;
  }
  return out;
}

bool NeedsCleanup(const nlohmann::json& pod, absl::Time now, const StatusOptions& options) {
  return ClassifyPod(pod, now, options).cleanup;
}

TaskStatus StatusForMissingPod(absl::string_view namespace_name, absl::string_view name) {
  TaskStatus out;
  out.state = TaskState::kRetryableFailed;
  out.message = absl::StrCat("ResourceDeletedExternally: resource not found, name [", namespace_name, "/",
                             name, "]. reason: pods \"", name, "\" not found");
  return out;
}

}  // namespace fna::executor::kubernetes
