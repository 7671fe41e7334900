#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_KUBERNETES_EXECUTOR_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_KUBERNETES_EXECUTOR_H_

// The production executor: one Pod per task attempt, through the Kubernetes API (kubernetes-executor.md).

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/executor/executor.h"
#include "agent/executor/kubernetes/pod_builder.h"
#include "agent/executor/kubernetes/pod_cache.h"
#include "agent/executor/kubernetes/pod_status.h"
#include "agent/kube/kube_client.h"
#include "nlohmann/json.hpp"

namespace fna::executor::kubernetes {

// The agent's own metadata on its Pods. The label selector of every list, and the sweeper, go by these.
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kManagedByValue[] = "flyte-neptune-agent";
inline constexpr char kAgentLabel[] = "flyte-neptune-agent/agent";  // the agent.name that created the Pod
// "true" while a final write is pending, so that a restarted agent finds those Pods with a selector.
inline constexpr char kPendingLabel[] = "flyte-neptune-agent/pending-final-write";
// The pending final write's opaque record, base64.
inline constexpr char kPendingAnnotation[] = "flyte-neptune-agent/pending-final-write";
// When the run was finalized (RFC 3339): the sweeper's clock starts here.
inline constexpr char kFinalizedAnnotation[] = "flyte-neptune-agent/run-finalized-at";
// "disabled" on Pods whose task opted out of tracking: no run will ever be finalized for them.
inline constexpr char kTrackingAnnotation[] = "flyte-neptune-agent/tracking";
// When DeleteTask aborted the task (RFC 3339), so that the terminating Pod reads as aborted.
inline constexpr char kAbortedAnnotation[] = "flyte-neptune-agent/aborted-at";

// The label selector of the Pods of the agent named `agent_name`.
std::string AgentPodSelector(absl::string_view agent_name);

struct KubernetesExecutorOptions {
  PodOptions pod;
  StatusOptions status;
  // The agent's name (agent.name): a label on its Pods, so two agents in one cluster never touch each
  // other's Pods.
  std::string agent_name = "neptune-agent";
  // Namespaces the agent lists its Pods in (pending final writes, the sweeper); empty: cluster-wide.
  std::vector<std::string> namespaces;
  // Read the FlyteWorkflow CR at Start for an ownerReference (garbage collection with the workflow). Once
  // the API answers 403, the executor stops trying.
  bool owner_references = true;
  // Bound of each API call (retries included).
  absl::Duration request_timeout = absl::Seconds(2);
  // A finished Pod is deleted this long after its run was finalized (its terminal phase reported).
  absl::Duration cleanup_delay = absl::Hours(1);
};

// Executor over the Kubernetes API:
// - Start builds the Pod (pod_builder.h) and POSTs it; a 409 adopts the Pod already there when it is this
//   agent's (CreateTask is delivered at least once), and is FailedPrecondition otherwise.
// - GetStatus reads the Pod and maps it (pod_status.h); the agent's annotations carry the run's
//   bookkeeping (finalized, pending final write, aborted), so every replica and a restarted agent see it.
//   With a PodCache, Pods are read from it, and from the API only when the cache cannot tell (a Pod it has
//   not seen yet, a scope not synced, a recent deletion to confirm); what the executor's own calls return
//   goes into the cache. The sweeper and the pending-final-write listing then use the cache as well.
// - Abort annotates the Pod as aborted and deletes it (404 is OK).
// - Sweep deletes finished Pods by the agent's annotations (below).
//
// Thread safety: safe for concurrent use. `client` and `clock` are not owned and must outlive the executor.
class KubernetesExecutor final : public Executor {
 public:
  // `cache` may be null (every read goes to the API); when given it must be started by the caller and
  // outlive the executor.
  KubernetesExecutor(kube::KubeClient* client, KubernetesExecutorOptions options, const Clock* clock,
                     PodCache* cache = nullptr);

  // Ready to serve: the Pod cache has completed its first list (always, without a cache).
  bool Ready() const override;

  absl::Status Start(const TaskSpec& spec) override;
  absl::StatusOr<TaskStatus> GetStatus(const TaskRef& task) override;
  absl::Status Abort(const TaskRef& task) override;
  absl::Status MarkRunFinalized(const TaskRef& task) override;
  absl::Status RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) override;
  absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() override;
  absl::StatusOr<LogBatch> ReadLogs(const TaskRef& task, const LogQuery& query) override;

  // One pass of the sweeper over the agent's Pods. A Pod is deleted when it is terminal (never a running or
  // pending one, except below) and its run is finalized or untracked, and either `cleanup_delay` has passed
  // since the finalization (or, untracked, since the Pod finished) or it is one of propeller's clean-up cases
  // (stuck pending, image or container-creation errors: NeedsCleanup), which go at once. Returns the number
  // of Pods deleted; errors of single deletions are logged and the pass goes on.
  absl::StatusOr<int> Sweep();

 private:
  absl::Time Deadline() const;
  // The FlyteWorkflow CR's uid for the attempt's ownerReference, or "" (not configured, forbidden, absent).
  std::string WorkflowUid(const TaskSpec& spec, absl::Time deadline);
  // The Pods of this agent in every configured namespace (or cluster-wide) matching `extra_selector`.
  absl::StatusOr<std::vector<nlohmann::json>> ListOwnPods(absl::string_view extra_selector);
  absl::Status Annotate(const TaskRef& task, const nlohmann::json& merge_patch);
  // The Pod, from the cache when it can tell, else from the API (NotFound when it is gone).
  absl::StatusOr<nlohmann::json> ReadPod(const TaskRef& task, absl::Time deadline);
  // The agent's Pods: the cache's when synced, else listed.
  absl::StatusOr<std::vector<nlohmann::json>> OwnPods(absl::string_view extra_label, absl::string_view value);
  std::string Selector() const;

  kube::KubeClient* const client_;
  const KubernetesExecutorOptions options_;
  const Clock* const clock_;
  PodCache* const cache_;
  std::atomic<bool> workflow_reads_forbidden_{false};
};

}  // namespace fna::executor::kubernetes

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_KUBERNETES_EXECUTOR_H_
