#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_POD_BUILDER_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_POD_BUILDER_H_

// Builds the Pod of one task attempt as FlytePropeller's pod plugin builds it (kubernetes-executor.md §1),
// plus the agent's additions. Pure: no I/O, no clock; the same inputs give the same manifest, byte for byte.

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "flyteidl/admin/agent.pb.h"
#include "nlohmann/json.hpp"

namespace fna::executor::kubernetes {

// Who the attempt is: computed by the lifecycle (agent/tracking/identity.h), never by the builder.
struct PodIdentity {
  // The Pod's and the primary container's name: the attempt's execution id (design.md §3.2), a DNS-1123 label
  // of at most kMaxPodNameLength characters. InvalidArgument otherwise.
  std::string pod_name;
  // NEPTUNE_PROJECT and NEPTUNE_CUSTOM_RUN_ID in the primary container, so that neptune.init_run() in user
  // code attaches to the agent's run. Both are left out, and so is the token reference, when
  // `tracking_disabled`.
  std::string neptune_project;
  std::string custom_run_id;
  bool tracking_disabled = false;
  // The FlyteWorkflow CR's metadata.uid, when the caller could read it: the Pod then gets an ownerReference
  // to the CR (named after the execution), without `controller` and `blockOwnerDeletion` (§1.3 notes), so
  // propeller's garbage collection deletes it with its workflow. Empty: no ownerReference.
  std::string flyteworkflow_uid;
};

inline constexpr size_t kMaxPodNameLength = 50;

// Kubernetes resource name -> quantity string ("500m", "1Gi").
using ResourceList = std::map<std::string, std::string>;

// A Secret key for a `valueFrom.secretKeyRef`.
struct SecretKeyRef {
  std::string name;
  std::string key;
};

// The agent's configuration of task Pods. Every JSON value is Kubernetes JSON (camelCase keys); nothing here
// is ever a secret value.
struct PodOptions {
  // Propeller's k8s.default-env-vars: appended to the primary container's env after the execution's env.
  // A name may not be NEPTUNE_API_TOKEN (the token only ever reaches a Pod as `token_secret`).
  std::vector<std::pair<std::string, std::string>> default_env;
  // Propeller's k8s.default-env-from-secrets / -configmaps: `envFrom` entries (each `optional: true`),
  // secrets first. Typically the blob store's credentials.
  std::vector<std::string> env_from_secrets;
  std::vector<std::string> env_from_config_maps;

  // Platform resource values (§1.5) for the primary container of container tasks:
  // `default_requests` is what a resource gets when the task sets neither its request nor its limit (cpu and
  // memory always; ephemeral storage and the GPU only when the task asks for them); propeller's code defaults
  // are 1000m / 1024Mi. `max_limits` caps both the request and the limit of a resource (none by default).
  ResourceList default_requests = {{"cpu", "1000m"}, {"memory", "1024Mi"}};
  ResourceList max_limits;
  // The resource name for core.Resources GPU, and for a resource called "gpu" in a pod template
  // (k8s.gpu-resource-name).
  std::string gpu_resource_name = "nvidia.com/gpu";
  // k8s.image-pull-policy: empty leaves Kubernetes' default.
  std::string image_pull_policy;

  // The default PodTemplate (k8s.default-pod-template-name's object, already read by the caller), as a
  // PodTemplate (`{"template": {"metadata": …, "spec": …}}`) or a Pod-like `{"metadata": …, "spec": …}`.
  // null: none. Merged as §1.7 describes: the template is the base, Flyte's values win, lists are
  // concatenated; template containers `default` / `primary` / same-named are the base of the primary
  // container and also feed its resource defaults. Not applied to k8s_pod targets (propeller already did).
  nlohmann::json default_pod_template;
  // PodTemplates by name, for a task whose metadata.pod_template_name names one (the caller reads it from the
  // execution namespace or the Flyte namespace). A name missing here is FailedPrecondition.
  std::map<std::string, nlohmann::json> pod_templates;

  // Scheduling of interruptible attempts (the `interruptible` label is "true"), as propeller's
  // k8s.interruptible-tolerations, k8s.interruptible-node-selector (merged into nodeSelector) and
  // k8s.interruptible-node-selector-requirement; k8s.non-interruptible-node-selector-requirement applies to
  // the others. A requirement (a NodeSelectorRequirement object; null: none) is added to every required node
  // affinity term (one term is created when there is none). Tolerations: an array of Toleration objects.
  nlohmann::json interruptible_tolerations = nlohmann::json::array();
  std::map<std::string, std::string> interruptible_node_selector;
  nlohmann::json interruptible_node_selector_requirement;
  nlohmann::json non_interruptible_node_selector_requirement;
  // k8s.resource-tolerations: resource name -> array of Tolerations added when any container requests or
  // limits that resource (e.g. "nvidia.com/gpu").
  std::map<std::string, nlohmann::json> resource_tolerations;
  // k8s.gpu-device-node-label / k8s.gpu-partition-size-node-label, for TaskTemplate.extended_resources.
  std::string gpu_device_node_label = "k8s.amazonaws.com/accelerator";
  std::string gpu_partition_size_node_label = "k8s.amazonaws.com/gpu-partition-size";

  // Namespaces whose task Pods may get the Neptune API token ("*": every namespace), and the Secret (in that
  // namespace) holding it.
  // Only there, and only while tracking is enabled, the primary container gets NEPTUNE_API_TOKEN as
  // `valueFrom.secretKeyRef` (`optional: true`, so a missing Secret never fails the task). Never a value.
  std::set<std::string> token_namespaces;
  SecretKeyRef token_secret = {"neptune-api-token", "token"};

  // Propeller's k8s.default-labels / k8s.default-annotations: the lowest-priority metadata; the task's and
  // the execution's values win.
  std::map<std::string, std::string> default_labels;
  std::map<std::string, std::string> default_annotations = {
      {"cluster-autoscaler.kubernetes.io/safe-to-evict", "false"}};
  // The agent's own metadata: applied last, so no task can change them. The agent finds its Pods with these
  // (a label selector) and the sweeper goes by them.
  std::map<std::string, std::string> agent_labels = {{"app.kubernetes.io/managed-by", "flyte-neptune-agent"}};
  std::map<std::string, std::string> agent_annotations;

  // The Flyte console's base URL: FLYTE_EXECUTION_URL is set when it is non-empty and the task template's
  // config has a `link_type` key (propeller's rule).
  std::string console_url;
};

// The Pod manifest (`apiVersion: v1`, `kind: Pod`) for one attempt, ready to POST:
// - container tasks (`template.container`): one container named `identity.pod_name` with the image, the
//   command and the rendered args, `terminationMessagePolicy: FallbackToLogsOnError`, env in propeller's
//   order (template env, FLYTE_INTERNAL_EXECUTION_WORKFLOW/ID/PROJECT/DOMAIN, FLYTE_ATTEMPT_NUMBER,
//   FLYTE_EXECUTION_URL, FLYTE_INTERNAL_TASK_*, the execution's env sorted by name, `default_env`) followed
//   by NEPTUNE_PROJECT, NEPTUNE_CUSTOM_RUN_ID and NEPTUNE_API_TOKEN (as above); a later duplicate name
//   replaces the earlier value in place, so no name appears twice. Resources defaulted per §1.5; pod-level
//   defaults (§1.6), the pod template (§1.7), GPU accelerator and shared memory.
// - k8s_pod tasks: `k8s_pod.pod_spec` as propeller rendered it, unchanged except the NEPTUNE_* variables in
//   the primary container (`template.config["primary_container_name"]`), `restartPolicy: Never` and the
//   service account when empty. A pod spec still holding `{{ .…}}` templates (propeller before v1.16.8) is
//   FailedPrecondition.
// Metadata (§1.3): namespace, labels (default ∪ pod template ∪ k8s_pod ∪ template metadata ∪ execution ∪
// `inject-flyte-secrets`/`execution-identity` ∪ agent; invalid values sanitized as propeller does, invalid
// keys refused), annotations (default ∪ pod template ∪ k8s_pod ∪ template metadata ∪ execution ∪
// `flyte.secrets/s<i>` ∪ `primary_container_name` ∪ agent), the ownerReference; `restartPolicy: Never`.
// Errors: InvalidArgument naming the field (bad quantity, bad name, missing target, …); FailedPrecondition
// for an unrendered k8s_pod or a missing named pod template.
absl::StatusOr<nlohmann::ordered_json> BuildPod(const flyteidl::admin::CreateTaskRequest& request,
                                                const PodIdentity& identity, const PodOptions& options);

}  // namespace fna::executor::kubernetes

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_POD_BUILDER_H_
