#ifndef FNA_AGENT_CONFIG_CONFIG_H_
#define FNA_AGENT_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/log.h"

namespace fna {

// Maps Flyte projects/domains to the Neptune projects their tasks may use (design.md §5, §3.7).
struct RoutingRule {
  std::string flyte_project = "*";  // exact Flyte project, or "*"
  std::string flyte_domain = "*";   // exact Flyte domain, or "*"
  // Neptune "workspace/project"s a task may choose; "*" allows any.
  std::vector<std::string> allowed_projects;
  std::string default_project;    // used when the task chooses none; always allowed
  std::vector<std::string> tags;  // added to every run of a matching task
  std::string token_file;         // this rule's Neptune API token (per workspace or tenant); empty: default
};

// How a retryable failure is reported to propeller.
enum class RetryableFailureMode {
  kPhase,  // phase RETRYABLE_FAILED (propeller >= 1.16)
  kState,  // phase UNDEFINED with the deprecated state RETRYABLE_FAILURE (propeller 1.13-1.15)
};

enum class TrackerKind { kOffline, kNeptune };
enum class ExecutorKind { kProcess, kKubernetes };

// The agent's whole configuration: embedded defaults, overridden by the YAML file, then environment
// variables, then flags (config_loader.h). Immutable once loaded; passed down as `const AgentConfig&`.
struct AgentConfig {
  // server
  std::string listen_address = "127.0.0.1:8000";
  int64_t max_receive_message_bytes = 64 << 20;

  // server: operations
  std::string metrics_address = "127.0.0.1:9090";  // /metrics, /readyz, /healthz; empty: not served
  absl::Duration drain_timeout = absl::Seconds(20);
  std::string tls_cert_file;       // PEM certificate chain; empty: plaintext gRPC
  std::string tls_key_file;        // PEM private key of tls_cert_file
  std::string tls_client_ca_file;  // PEM CAs of required client certificates (mutual TLS); empty: none asked
  absl::Duration tls_refresh_interval = absl::Minutes(1);  // how often the TLS files are re-read

  // agent
  std::string agent_name = "neptune-agent";
  std::vector<std::string> task_types = {"neptune"};
  RetryableFailureMode retryable_failure = RetryableFailureMode::kPhase;

  // flyte
  std::string console_url;  // Flyte console base URL for flyte/execution_url; empty: field omitted

  // tracking
  std::string default_project = "local/flyte";
  std::vector<std::string> allowed_projects;  // for tasks no routing rule matches; "*" allows any
  std::vector<std::string> default_tags;
  std::vector<RoutingRule> routing_rules;  // first match wins
  absl::Duration finalize_grace = absl::Minutes(2);
  absl::Duration create_budget = absl::Seconds(2);

  // tracker
  TrackerKind tracker = TrackerKind::kOffline;
  std::string offline_directory = ".neptune";  // runs go to <offline_directory>/offline/
  std::string neptune_host;                    // empty: the API token's api_url, else api_address
  std::string neptune_application_url;         // empty: the server's applicationUrl
  std::string neptune_api_token_file;          // empty: the NEPTUNE_API_TOKEN environment variable
  std::string neptune_ca_file;                 // empty: the system's CAs
  bool neptune_allow_self_signed = false;
  absl::Duration neptune_ping_interval = absl::Seconds(10);
  absl::Duration neptune_ping_idle_expiry = absl::Minutes(15);
  int64_t neptune_max_pings_per_second = 50;

  // executor
  ExecutorKind executor = ExecutorKind::kProcess;
  std::string process_state_directory = ".flyte-neptune-agent/tasks";
  bool process_allow_non_loopback = false;  // the process executor runs commands on this host
  std::string process_runner_path;          // empty: flyte-neptune-runner next to the agent binary
  // executor.kubernetes (kubernetes-executor.md)
  std::string k8s_kubeconfig;               // empty: in-cluster credentials
  std::string k8s_context;                  // empty: the kubeconfig's current-context
  std::vector<std::string> k8s_namespaces;  // where the agent lists its Pods; empty: cluster-wide
  std::vector<std::string>
      k8s_token_namespaces;  // task Pods there get the token Secret's reference; "*": all
  std::string k8s_token_secret = "neptune-api-token";
  std::string k8s_token_secret_key = "token";
  std::vector<std::string> k8s_default_env;  // NAME=value
  std::vector<std::string> k8s_env_from_secrets;
  std::vector<std::string> k8s_env_from_config_maps;
  std::string k8s_default_cpu = "1000m";
  std::string k8s_default_memory = "1024Mi";
  std::string k8s_gpu_resource_name = "nvidia.com/gpu";
  std::string k8s_image_pull_policy;  // empty: Kubernetes' default
  // JSON text (from the YAML file): a PodTemplate or {metadata, spec}; "" for none.
  std::string k8s_default_pod_template;
  std::string k8s_interruptible_tolerations;  // JSON text of a list of Tolerations; "" for none
  std::vector<std::string> k8s_interruptible_node_selector;  // key=value
  bool k8s_owner_references = true;
  bool k8s_watch = true;  // serve GetTask from a list+watch cache of the agent's Pods
  absl::Duration k8s_request_timeout = absl::Seconds(2);
  absl::Duration k8s_cleanup_delay = absl::Hours(1);
  absl::Duration k8s_sweep_interval = absl::Minutes(1);
  absl::Duration k8s_image_pull_backoff_grace = absl::Minutes(3);
  absl::Duration k8s_create_container_error_grace = absl::Minutes(3);
  absl::Duration k8s_pod_pending_timeout = absl::ZeroDuration();
  int64_t k8s_qps = 100;
  int64_t k8s_burst = 25;

  // storage.s3: reading error.pb under s3:// output prefixes (credentials from the AWS_* environment)
  std::string s3_endpoint;  // empty: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS's regional endpoint
  std::string s3_region;    // empty: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
  bool s3_force_path_style = false;  // path-style URLs (MinIO); custom endpoints use them anyway
  std::string s3_sts_endpoint;  // empty: AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL, else AWS's regional STS
  std::string s3_ca_file;       // empty: AWS_CA_BUNDLE, else the system's CAs

  // logging
  LogFormat log_format = LogFormat::kAuto;
  LogLevel log_level = LogLevel::kInfo;
};

}  // namespace fna

#endif  // FNA_AGENT_CONFIG_CONFIG_H_
