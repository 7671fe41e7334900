#include "agent/executor/kubernetes/pod_status.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::executor::kubernetes {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

absl::Time At(const char* rfc3339) {
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &time, &error)) << error;
  return time;
}

// The Ready condition of the pending Pods below turned False at 12:00:00.
const absl::Time kReadySince = At("2024-05-01T12:00:00Z");

// A task Pod as the API returns it, with `status` replaced. The primary container is "c", a sidecar
// "sidecar".
Json MakePod(const char* status, bool annotated = true) {
  Json pod = Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "wf-n0-0-abcdefghij", "namespace": "flytesnacks-development", "uid": "5d3c",
                 "resourceVersion": "10245", "creationTimestamp": "2024-05-01T11:59:58Z",
                 "labels": {"app.kubernetes.io/managed-by": "flyte-neptune-agent"},
                 "annotations": {"primary_container_name": "c"}},
    "spec": {"restartPolicy": "Never", "nodeName": "node-1",
             "containers": [{"name": "c", "image": "ghcr.io/org/task:1", "workingDir": "/root"},
                            {"name": "sidecar", "image": "envoy:1"}]}
  })");
  if (!annotated) pod["metadata"]["annotations"].erase("primary_container_name");
  pod["status"] = Json::parse(status);
  return pod;
}

// Pending with Ready=False since kReadySince and the primary container waiting for `reason`.
Json Waiting(const std::string& reason, const std::string& message) {
  Json status = Json::parse(R"({
    "phase": "Pending",
    "conditions": [
      {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T11:59:58Z"},
      {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T12:00:00Z",
       "reason": "ContainersNotReady", "message": "containers with unready status: [c sidecar]"},
      {"type": "ContainersReady", "status": "False", "lastProbeTime": null,
       "lastTransitionTime": "2024-05-01T12:00:00Z", "reason": "ContainersNotReady",
       "message": "containers with unready status: [c sidecar]"},
      {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T11:59:58Z"}
    ],
    "hostIP": "10.0.0.5", "startTime": "2024-05-01T11:59:58Z",
    "containerStatuses": [
      {"name": "c", "ready": false, "restartCount": 0, "image": "ghcr.io/org/task:1", "imageID": "",
       "started": false, "state": {"waiting": {}}},
      {"name": "sidecar", "ready": false, "restartCount": 0, "image": "envoy:1", "imageID": "", "started": false,
       "state": {"waiting": {"reason": "ContainerCreating"}}}
    ]
  })");
  Json& waiting = status["containerStatuses"][0]["state"]["waiting"];
  waiting["reason"] = reason;
  if (!message.empty()) waiting["message"] = message;
  Json pod = MakePod("{}");
  pod["status"] = status;
  return pod;
}

// ---- Pending (DemystifyPending) ----

TEST(PodStatusPendingTest, UnschedulableIsQueuedWithTheReason) {
  const Json pod = MakePod(R"({"phase": "Pending", "conditions": [
      {"type": "PodScheduled", "status": "False", "lastProbeTime": null,
       "lastTransitionTime": "2024-05-01T12:00:00Z", "reason": "Unschedulable",
       "message": "0/3 nodes are available: 3 Insufficient cpu."}], "qosClass": "Guaranteed"})");
  const TaskStatus status = StatusFromPod(pod, kReadySince + absl::Hours(5));
  EXPECT_EQ(status.state, TaskState::kPending);
  EXPECT_EQ(status.message, "Unschedulable:0/3 nodes are available: 3 Insufficient cpu.");
  EXPECT_FALSE(status.exit_code.has_value());
  EXPECT_FALSE(NeedsCleanup(pod, kReadySince + absl::Hours(5)));
}

TEST(PodStatusPendingTest, NormalStartStepsAreInitializing) {
  for (const auto& [reason, message] : std::vector<std::pair<std::string, std::string>>{
           {"ContainerCreating", ""},
           {"PodInitializing", ""},
           {"ErrImagePull",
            "rpc error: code = NotFound desc = failed to pull and unpack image \"ghcr.io/org/task:1\""}}) {
    const Json pod = Waiting(reason, message);
    const TaskStatus status = StatusFromPod(pod, kReadySince + absl::Hours(1));
    EXPECT_EQ(status.state, TaskState::kPending) << reason;
    EXPECT_EQ(status.message,
              "[ContainersNotReady|" + reason + "]: containers with unready status: [c sidecar]|" + message);
    EXPECT_FALSE(NeedsCleanup(pod, kReadySince + absl::Hours(1)));
  }
}

TEST(PodStatusPendingTest, ImagePullBackOffFailsRetryablyAtItsGracePeriod) {
  const Json pod = Waiting("ImagePullBackOff", "Back-off pulling image \"ghcr.io/org/task:1\"");
  const TaskStatus before = StatusFromPod(pod, kReadySince + absl::Minutes(3) - absl::Seconds(1));
  EXPECT_EQ(before.state, TaskState::kPending);
  EXPECT_EQ(before.message,
            "[ContainersNotReady|ImagePullBackOff]: containers with unready status: [c sidecar]|"
            "Back-off pulling image \"ghcr.io/org/task:1\"");
  EXPECT_FALSE(NeedsCleanup(pod, kReadySince + absl::Minutes(3) - absl::Seconds(1)));

  const TaskStatus at = StatusFromPod(pod, kReadySince + absl::Minutes(3));
  EXPECT_EQ(at.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      at.message,
      "ContainersNotReady|ImagePullBackOff: Grace period [3m0s] exceeded|containers with unready status: "
      "[c sidecar]|Back-off pulling image \"ghcr.io/org/task:1\"");
  EXPECT_TRUE(NeedsCleanup(pod, kReadySince + absl::Minutes(3)));
  const PodPhase phase = ClassifyPod(pod, kReadySince + absl::Minutes(3));
  EXPECT_EQ(phase.code, "ContainersNotReady|ImagePullBackOff");
  EXPECT_EQ(phase.kind, FailureKind::kUser);

  StatusOptions options;
  options.image_pull_backoff_grace_period = absl::Seconds(90);
  EXPECT_EQ(StatusFromPod(pod, kReadySince + absl::Seconds(89), options).state, TaskState::kPending);
  EXPECT_THAT(StatusFromPod(pod, kReadySince + absl::Seconds(90), options).message,
              HasSubstr("Grace period [1m30s] exceeded|"));
}

TEST(PodStatusPendingTest, InvalidImageNameFailsPermanentlyAtOnce) {
  const Json pod = Waiting("InvalidImageName",
                           "Failed to apply default image tag \"Bad Image\": invalid reference format");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kFailed);
  EXPECT_EQ(
      status.message,
      "ContainersNotReady|InvalidImageName: containers with unready status: [c sidecar]|Failed to apply "
      "default image tag \"Bad Image\": invalid reference format");
  EXPECT_TRUE(NeedsCleanup(pod, kReadySince));
}

TEST(PodStatusPendingTest, CreateContainerConfigErrorHasNoGraceByDefault) {
  const Json pod = Waiting("CreateContainerConfigError", "secret \"neptune-api-token\" not found");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kFailed);
  EXPECT_EQ(
      status.message,
      "ContainersNotReady|CreateContainerConfigError: Grace period [0s] exceeded|containers with unready "
      "status: [c sidecar]|secret \"neptune-api-token\" not found");
  EXPECT_TRUE(NeedsCleanup(pod, kReadySince));
  StatusOptions options;
  options.create_container_config_error_grace_period = absl::Minutes(1);
  EXPECT_EQ(StatusFromPod(pod, kReadySince + absl::Seconds(59), options).state, TaskState::kPending);
  EXPECT_EQ(StatusFromPod(pod, kReadySince + absl::Seconds(60), options).state, TaskState::kFailed);
}

TEST(PodStatusPendingTest, CreateContainerErrorFailsPermanentlyAfterThreeMinutes) {
  const Json pod = Waiting("CreateContainerError", "failed to reserve container name");
  const TaskStatus before = StatusFromPod(pod, kReadySince + absl::Minutes(3) - absl::Milliseconds(1));
  EXPECT_EQ(before.state, TaskState::kPending);
  EXPECT_EQ(before.message,
            "[ContainersNotReady|CreateContainerError]: containers with unready status: [c sidecar]|"
            "failed to reserve container name");
  const TaskStatus at = StatusFromPod(pod, kReadySince + absl::Minutes(3));
  EXPECT_EQ(at.state, TaskState::kFailed);
  EXPECT_EQ(
      at.message,
      "ContainersNotReady|CreateContainerError: Grace period [3m0s] exceeded|containers with unready status: "
      "[c sidecar]|failed to reserve container name");
  EXPECT_TRUE(NeedsCleanup(pod, kReadySince + absl::Minutes(3)));
}

TEST(PodStatusPendingTest, OtherWaitingReasonsFailRetryablyAtOnceAsSystemErrors) {
  for (const char* reason :
       {"CrashLoopBackOff", "RunContainerError", "ErrImageNeverPull", "PostStartHookError"}) {
    const Json pod = Waiting(reason, "back-off 10s restarting failed container");
    const TaskStatus status = StatusFromPod(pod, kReadySince);
    EXPECT_EQ(status.state, TaskState::kRetryableFailed) << reason;
    EXPECT_EQ(status.message,
              std::string("ContainersNotReady|") + reason +
                  ": containers with unready status: [c sidecar]|back-off 10s restarting failed "
                  "container");
    EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem) << reason;
    EXPECT_TRUE(NeedsCleanup(pod, kReadySince)) << reason;
  }
}

TEST(PodStatusPendingTest, NothingElseIsScheduling) {
  const Json scheduled = MakePod(R"({"phase": "Pending", "conditions": [
      {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-05-01T12:00:00Z"}]})");
  EXPECT_EQ(StatusFromPod(scheduled, kReadySince).state, TaskState::kPending);
  EXPECT_EQ(StatusFromPod(scheduled, kReadySince).message, "Scheduling");
  // Just created: no status yet.
  const Json created = MakePod(R"({"phase": "Pending"})");
  EXPECT_EQ(StatusFromPod(created, kReadySince).message, "Scheduling");
  Json no_status = MakePod("{}");
  no_status.erase("status");
  EXPECT_EQ(StatusFromPod(no_status, kReadySince).state, TaskState::kPending);
  // Ready=False while the primary is ready and the sidecar waits: not an error.
  Json ready_primary = Waiting("ContainerCreating", "");
  ready_primary["status"]["containerStatuses"][0]["ready"] = true;
  ready_primary["status"]["containerStatuses"][1]["state"]["waiting"]["reason"] = "ContainerCreating";
  EXPECT_EQ(StatusFromPod(ready_primary, kReadySince).message,
            "[ContainersNotReady|ContainerCreating]: containers with unready status: [c sidecar]|");
}

TEST(PodStatusPendingTest, PendingTimeoutIsOffByDefaultAndFailsRetryablyWhenSet) {
  const Json pod = MakePod(R"({"phase": "Pending", "conditions": [
      {"type": "PodScheduled", "status": "False", "lastTransitionTime": "2024-05-01T12:00:00Z",
       "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]})");
  EXPECT_EQ(StatusFromPod(pod, kReadySince + absl::Hours(48)).state, TaskState::kPending);
  StatusOptions options;
  options.pod_pending_timeout = absl::Minutes(5);
  EXPECT_EQ(StatusFromPod(pod, kReadySince + absl::Minutes(5) - absl::Seconds(1), options).state,
            TaskState::kPending);
  const TaskStatus timed_out = StatusFromPod(pod, kReadySince + absl::Minutes(5), options);
  EXPECT_EQ(timed_out.state, TaskState::kRetryableFailed);
  EXPECT_EQ(timed_out.message,
            "PodPendingTimeout: Unschedulable:0/3 nodes are available: 3 Insufficient nvidia.com/gpu.");
  EXPECT_TRUE(NeedsCleanup(pod, kReadySince + absl::Minutes(5), options));
  EXPECT_EQ(ClassifyPod(pod, kReadySince + absl::Minutes(5), options).kind, FailureKind::kUser);
}

// ---- Running (DeterminePrimaryContainerPhase) ----

TEST(PodStatusRunningTest, PrimaryWaitingOrRunningIsRunning) {
  const Json pod = MakePod(R"({"phase": "Running", "startTime": "2024-05-01T11:59:58Z", "containerStatuses": [
      {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-05-01T12:00:05Z"}}},
      {"name": "sidecar", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]})");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRunning);
  EXPECT_EQ(status.message, "");
  EXPECT_EQ(status.started_at, At("2024-05-01T12:00:05Z"));
  EXPECT_FALSE(status.finished_at.has_value());
  EXPECT_FALSE(status.exit_code.has_value());
  EXPECT_EQ(status.working_directory, "/root");
}

TEST(PodStatusRunningTest, PrimaryExitZeroSucceedsWhileSidecarsRun) {
  const Json pod = MakePod(R"({"phase": "Running", "containerStatuses": [
      {"name": "c", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
       "startedAt": "2024-05-01T12:00:05Z", "finishedAt": "2024-05-01T12:42:00Z"}}},
      {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-05-01T12:00:04Z"}}}]})");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kSucceeded);
  EXPECT_EQ(status.message, "");
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(status.started_at, At("2024-05-01T12:00:05Z"));
  EXPECT_EQ(status.finished_at, At("2024-05-01T12:42:00Z"));
}

Json PrimaryTerminated(int exit_code, const char* reason, const char* message) {
  Json pod = MakePod(R"({"phase": "Running", "containerStatuses": [
      {"name": "c", "ready": false, "restartCount": 0, "state": {"terminated": {
       "startedAt": "2024-05-01T12:00:05Z", "finishedAt": "2024-05-01T12:10:00Z"}}},
      {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-05-01T12:00:04Z"}}}]})");
  Json& terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"];
  terminated["exitCode"] = exit_code;
  terminated["reason"] = reason;
  if (message != nullptr) terminated["message"] = message;
  return pod;
}

TEST(PodStatusRunningTest, OomKilledIsARetryableUserFailure) {
  const Json pod = PrimaryTerminated(137, "OOMKilled", nullptr);
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(status.message,
            "OOMKilled: \r\n[c] terminated with exit code (137). Reason [OOMKilled]. Message: \n.");
  EXPECT_EQ(status.exit_code, 137);
  EXPECT_EQ(status.finished_at, At("2024-05-01T12:10:00Z"));
  EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kUser);
  EXPECT_FALSE(NeedsCleanup(pod, kReadySince));
}

TEST(PodStatusRunningTest, SigkillExitsAreRetryableSystemFailures) {
  for (int exit_code : {137, 247}) {
    const Json pod = PrimaryTerminated(exit_code, "Error", nullptr);
    const TaskStatus status = StatusFromPod(pod, kReadySince);
    EXPECT_EQ(status.state, TaskState::kRetryableFailed);
    EXPECT_EQ(status.message, "Error: \r\n[c] terminated with exit code (" + std::to_string(exit_code) +
                                  "). Reason [Error]. Message: \n.");
    EXPECT_EQ(status.exit_code, exit_code);
    EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem);
  }
}

TEST(PodStatusRunningTest, OtherExitsAreRetryableUserFailuresWithTheLogTail) {
  const Json pod = PrimaryTerminated(1, "Error", "Traceback (most recent call last):\nValueError: boom\n");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      status.message,
      "Error: \r\n[c] terminated with exit code (1). Reason [Error]. Message: \nTraceback (most recent call "
      "last):\nValueError: boom\n.");
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kUser);
}

TEST(PodStatusRunningTest, APrimaryMissingFromTheStatusesIsRunningUnlessMissingFromTheSpec) {
  const Json pod = MakePod(R"({"phase": "Running", "containerStatuses": [
      {"name": "sidecar", "ready": true, "state": {"running": {"startedAt": "2024-05-01T12:00:04Z"}}}]})");
  EXPECT_EQ(StatusFromPod(pod, kReadySince).state, TaskState::kRunning);
  Json renamed = pod;
  renamed["metadata"]["annotations"]["primary_container_name"] = "gone";
  const TaskStatus status = StatusFromPod(renamed, kReadySince);
  EXPECT_EQ(status.state, TaskState::kFailed);
  EXPECT_EQ(status.message,
            "PrimaryContainerNotFound: Primary container [gone] not found in pod's container statuses");
}

TEST(PodStatusRunningTest, WithoutTheAnnotationEveryContainerMustSucceed) {
  const Json all_done = MakePod(R"({"phase": "Running", "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
      {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})",
                                /*annotated=*/false);
  EXPECT_EQ(StatusFromPod(all_done, kReadySince).state, TaskState::kSucceeded);
  EXPECT_EQ(StatusFromPod(all_done, kReadySince).exit_code, 0);  // the first container of the spec
  const Json sidecar_running = MakePod(R"({"phase": "Running", "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
      {"name": "sidecar", "state": {"running": {}}}]})",
                                       /*annotated=*/false);
  EXPECT_EQ(StatusFromPod(sidecar_running, kReadySince).state, TaskState::kRunning);
  const Json no_statuses = MakePod(R"({"phase": "Running"})", /*annotated=*/false);
  EXPECT_EQ(StatusFromPod(no_statuses, kReadySince).state, TaskState::kRunning);
}

// ---- Succeeded (DemystifySuccess) ----

TEST(PodStatusSucceededTest, SucceededIsSuccessUnlessAnyContainerWasOomKilled) {
  const Json pod = MakePod(R"({"phase": "Succeeded", "conditions": [
      {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": "2024-05-01T12:42:01Z"}],
      "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed",
       "startedAt": "2024-05-01T12:00:05Z", "finishedAt": "2024-05-01T12:42:00Z"}}},
      {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kSucceeded);
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(status.finished_at, At("2024-05-01T12:42:00Z"));

  Json oom = pod;
  oom["status"]["initContainerStatuses"] =
      Json::parse(R"([{"name": "init", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}])");
  const TaskStatus oom_status = StatusFromPod(oom, kReadySince);
  EXPECT_EQ(oom_status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(oom_status.message, "OOMKilled: Pod reported success despite being OOMKilled");
  EXPECT_EQ(oom_status.exit_code, 0);  // the primary's
}

// ---- Failed (DemystifyFailure) ----

TEST(PodStatusFailedTest, NodeShutdownAndAdmissionRejectionsAreInterruptions) {
  for (const char* reason : {"Shutdown", "Terminated", "NodeShutdown", "NodeAffinity"}) {
    Json pod =
        MakePod(R"({"phase": "Failed", "message": "Pod was terminated in response to imminent node shutdown.",
        "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 143, "reason": "Error",
          "message": "received SIGTERM"}}}]})");
    pod["status"]["reason"] = reason;
    const TaskStatus status = StatusFromPod(pod, kReadySince);
    EXPECT_EQ(status.state, TaskState::kRetryableFailed) << reason;
    EXPECT_EQ(
        status.message,
        "Interrupted: Pod was terminated in response to imminent node shutdown.\r\n[c] terminated with exit "
        "code (143). Reason [Error]. Message: \nreceived SIGTERM.");
    EXPECT_EQ(status.exit_code, 143);
    EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem);
  }
}

TEST(PodStatusFailedTest, APrimarySigkillIsASystemInterruption) {
  for (int exit_code : {137, 247}) {
    Json pod = MakePod(R"({"phase": "Failed", "containerStatuses": [
        {"name": "c", "state": {"terminated": {"reason": "Error"}}}]})");
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = exit_code;
    const TaskStatus status = StatusFromPod(pod, kReadySince);
    EXPECT_EQ(status.state, TaskState::kRetryableFailed);
    EXPECT_EQ(status.message,
              "Interrupted: Pod failed. No message received from kubernetes.\r\n[c] terminated with "
              "exit code (" +
                  std::to_string(exit_code) + "). Reason [Error]. Message: \n.");
    EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem);
  }
}

TEST(PodStatusFailedTest, ASidecarSigkillIsInterruptedButTheUsers) {
  const Json pod =
      MakePod(R"({"phase": "Failed", "reason": "Evicted", "message": "evicted", "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
      {"name": "sidecar", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]})");
  const PodPhase phase = ClassifyPod(pod, kReadySince);
  EXPECT_EQ(phase.code, "Interrupted");
  EXPECT_EQ(phase.kind, FailureKind::kUser);
  EXPECT_EQ(StatusFromPod(pod, kReadySince).exit_code, 1);
}

TEST(PodStatusFailedTest, OomKilledAnywhereIsAUserOom) {
  const Json pod = MakePod(R"({"phase": "Failed", "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
       "startedAt": "2024-05-01T12:00:05Z", "finishedAt": "2024-05-01T12:03:00Z"}}},
      {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      status.message,
      "OOMKilled: Pod failed. No message received from kubernetes.\r\n[c] terminated with exit code (137). "
      "Reason [OOMKilled]. Message: \n.\r\n[sidecar] terminated with ExitCode 0.");
  EXPECT_EQ(status.exit_code, 137);
  EXPECT_EQ(status.started_at, At("2024-05-01T12:00:05Z"));
  EXPECT_EQ(status.finished_at, At("2024-05-01T12:03:00Z"));
  EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kUser);
}

TEST(PodStatusFailedTest, AnUnexplainedFailureIsAnInterruption) {
  const Json pod = MakePod(R"({"phase": "Failed", "initContainerStatuses": [
      {"name": "init", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}], "containerStatuses": [
      {"name": "c", "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "usage: main.py"}}}]})");
  const TaskStatus status = StatusFromPod(pod, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      status.message,
      "Interrupted: Pod failed. No message received from kubernetes.\r\n[init] terminated with ExitCode 0."
      "\r\n[c] terminated with exit code (2). Reason [Error]. Message: \nusage: main.py.");
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem);
}

TEST(PodStatusFailedTest, EvictionAndDeadlineKeepTheirReason) {
  const Json evicted = MakePod(R"({"phase": "Failed", "reason": "Evicted",
      "message": "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi.",
      "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]})");
  const TaskStatus status = StatusFromPod(evicted, kReadySince);
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      status.message,
      "Evicted: The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi."
      "\r\n[c] terminated with exit code (143). Reason [Error]. Message: \n.");
  EXPECT_EQ(ClassifyPod(evicted, kReadySince).kind, FailureKind::kUser);
  EXPECT_FALSE(NeedsCleanup(evicted, kReadySince));

  // An eviction that SIGKILLed the primary is a system interruption.
  Json killed = evicted;
  killed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 137;
  EXPECT_EQ(ClassifyPod(killed, kReadySince).code, "Interrupted");
  EXPECT_EQ(ClassifyPod(killed, kReadySince).kind, FailureKind::kSystem);

  const Json deadline = MakePod(R"({"phase": "Failed", "reason": "DeadlineExceeded",
      "message": "Pod was active on the node longer than the specified deadline"})");
  const TaskStatus deadline_status = StatusFromPod(deadline, kReadySince);
  EXPECT_EQ(deadline_status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(deadline_status.message,
            "DeadlineExceeded: Pod was active on the node longer than the specified deadline");
  EXPECT_FALSE(deadline_status.exit_code.has_value());
}

TEST(PodStatusFailedTest, TheLastTerminationStateIsPreferred) {
  const Json pod = MakePod(R"({"phase": "Failed", "reason": "Error", "containerStatuses": [
      {"name": "c", "lastState": {"terminated": {"exitCode": 3, "reason": "Error", "message": "first"}},
       "state": {"terminated": {"exitCode": 4, "reason": "Error", "message": "second"}}}]})");
  EXPECT_THAT(StatusFromPod(pod, kReadySince).message,
              HasSubstr("exit code (3). Reason [Error]. Message: \nfirst."));
  EXPECT_EQ(StatusFromPod(pod, kReadySince).exit_code, 4);  // the exit code is the current state's
}

// ---- Deletion ----

TEST(PodStatusDeletionTest, ADeletedNonTerminalPodIsAnUnexpectedDeletion) {
  for (const char* status_json :
       {R"({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}}]})",
        R"({"phase": "Pending"})"}) {
    Json pod = MakePod(status_json);
    pod["metadata"]["deletionTimestamp"] = "2024-05-01T12:05:00Z";
    pod["metadata"]["deletionGracePeriodSeconds"] = 30;
    const TaskStatus status = StatusFromPod(pod, kReadySince);
    EXPECT_EQ(status.state, TaskState::kRetryableFailed);
    EXPECT_EQ(
        status.message,
        "UnexpectedObjectDeletion: object [flytesnacks-development/wf-n0-0-abcdefghij] terminated in the "
        "background, manually");
    EXPECT_EQ(ClassifyPod(pod, kReadySince).kind, FailureKind::kSystem);
    EXPECT_FALSE(NeedsCleanup(pod, kReadySince));
  }
  // A terminal Pod being deleted (e.g. by the sweeper) keeps its result.
  Json done = PrimaryTerminated(0, "Completed", nullptr);
  done["metadata"]["deletionTimestamp"] = "2024-05-01T12:05:00Z";
  EXPECT_EQ(StatusFromPod(done, kReadySince).state, TaskState::kSucceeded);
}

TEST(PodStatusDeletionTest, AMissingPodWasDeletedExternally) {
  const TaskStatus status = StatusForMissingPod("flytesnacks-development", "wf-n0-0-abcdefghij");
  EXPECT_EQ(status.state, TaskState::kRetryableFailed);
  EXPECT_EQ(
      status.message,
      "ResourceDeletedExternally: resource not found, name [flytesnacks-development/wf-n0-0-abcdefghij]. "
      "reason: pods \"wf-n0-0-abcdefghij\" not found");
}

// ---- Robustness ----

TEST(PodStatusRobustnessTest, MalformedInputNeverThrows) {
  const std::vector<std::string> inputs = {
      "null",
      "[]",
      "\"Pod\"",
      "42",
      "{}",
      R"({"status": []})",
      R"({"status": {"phase": 5}})",
      R"({"metadata": [], "status": {"phase": "Running"}})",
      R"({"metadata": {"annotations": {"primary_container_name": 7}}, "status": {"phase": "Running"}})",
      R"({"status": {"phase": "Pending", "conditions": {"type": "Ready"}}})",
      R"({"status": {"phase": "Pending", "conditions": [null, 1, {"type": "Ready", "status": "False",
          "lastTransitionTime": "yesterday"}], "containerStatuses": [{"state": {"waiting": {"reason": 3}}}]}})",
      R"({"status": {"phase": "Failed", "containerStatuses": [{"name": "c", "state": {"terminated":
          {"exitCode": "137", "startedAt": 5}}}]}})",
      R"({"metadata": {"annotations": {"primary_container_name": "c"}}, "spec": {"containers": "c"},
          "status": {"phase": "Running", "containerStatuses": [{"name": "c", "state": {"terminated":
          {"exitCode": 1.5e300}}}]}})",
  };
  for (const std::string& input : inputs) {
    const Json pod = Json::parse(input);
    EXPECT_NO_THROW({
      StatusFromPod(pod, kReadySince);
      NeedsCleanup(pod, kReadySince);
    }) << input;
  }
  // An unreadable transition time counts as long ago: the grace period has passed.
  Json pod = Waiting("ImagePullBackOff", "");
  pod["status"]["conditions"][1]["lastTransitionTime"] = "not a time";
  EXPECT_EQ(StatusFromPod(pod, kReadySince).state, TaskState::kRetryableFailed);
}

}  // namespace
}  // namespace fna::executor::kubernetes
