#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_POD_STATUS_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_POD_STATUS_H_

// Maps a task Pod's status to the executor's TaskStatus as FlytePropeller's pod plugin does
// (kubernetes-executor.md §2: DemystifyPending / DeterminePrimaryContainerPhase / DemystifySuccess /
// DemystifyFailure, plus the deleted-object checks of the plugin manager). Pure: the clock is the `now`
// argument, and any JSON (even malformed, partial or not a Pod) gives a status, never an exception.

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/executor/executor.h"
#include "nlohmann/json.hpp"

namespace fna::executor::kubernetes {

// Propeller's k8s plugin settings that the mapping uses. Grace periods are measured from the Pod's `Ready`
// condition's lastTransitionTime (the kubelet's clock) to `now`; "at or past" the grace fails the task.
struct StatusOptions {
  absl::Duration image_pull_backoff_grace_period = absl::Minutes(3);  // k8s.image-pull-backoff-grace-period
  absl::Duration create_container_error_grace_period =
      absl::Minutes(3);  // k8s.create-container-error-grace-period
  absl::Duration create_container_config_error_grace_period =
      absl::ZeroDuration();  // …-config-error-grace-period
  // k8s.pod-pending-timeout: a Pod still pending (not failed by the rules above) this long after its last
  // condition's transition fails retryably. Zero: off.
  absl::Duration pod_pending_timeout = absl::ZeroDuration();
};

// Who is to blame for a failure (core.ExecutionError.kind). The agent protocol cannot carry it (every failure
// reaches propeller as USER), but it is kept for logs and metrics.
enum class FailureKind { kNone, kUser, kSystem };

// The pod plugin's verdict, before it is flattened into a TaskStatus.
struct PodPhase {
  TaskState state = TaskState::kPending;
  // Failures: Flyte's error code ("OOMKilled", "Interrupted", "ContainersNotReady|ImagePullBackOff", …).
  // Pending: the phase reason ("Unschedulable:0/3 nodes…", "[ContainersNotReady|ContainerCreating]: …",
  // "Scheduling"). Empty otherwise.
  std::string code;
  std::string message;  // failures: the §2.3 message
  FailureKind kind = FailureKind::kNone;
  // A "…WithCleanup" result (stuck pending, image and container-creation errors): the Pod will not get any
  // further by itself, so the agent deletes it as soon as it has reported the terminal phase.
  bool cleanup = false;
};

// The verdict for `pod` (a Pod object as the API returns it) at `now`.
PodPhase ClassifyPod(const nlohmann::json& pod, absl::Time now, const StatusOptions& options = {});

// The TaskStatus for `pod` at `now`:
// - state per the §2.2 table (Queued and Initializing are kPending; RetryableFailure, of either kind, is
//   kRetryableFailed; PermanentFailure is kFailed);
// - message: for failures "<code>: <§2.3 message>" (just the message when there is no code); for pending
//   Pods the phase reason; empty while running and on success;
// - exit_code, started_at, finished_at from the primary container's state (its last terminated state when
//   the current one has none), else unset;
// - working_directory from the primary container's `workingDir` in the spec, when set.
// The primary container is the one named by the `primary_container_name` annotation, else the first.
TaskStatus StatusFromPod(const nlohmann::json& pod, absl::Time now, const StatusOptions& options = {});

// True when `pod` is in one of the "WithCleanup" cases, i.e. ClassifyPod(...).cleanup.
bool NeedsCleanup(const nlohmann::json& pod, absl::Time now, const StatusOptions& options = {});

// The status of a Pod the API no longer has (GET answered 404 or 410): RetryableFailure
// `ResourceDeletedExternally` (SYSTEM), "resource not found, name [<namespace>/<name>]. reason: pods
// \"<name>\" not found".
TaskStatus StatusForMissingPod(absl::string_view namespace_name, absl::string_view name);

}  // namespace fna::executor::kubernetes

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_POD_STATUS_H_
