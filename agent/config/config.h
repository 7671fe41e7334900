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
enum class ExecutorKind { kProcess };

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

  // logging
  LogFormat log_format = LogFormat::kAuto;
  LogLevel log_level = LogLevel::kInfo;
};

}  // namespace fna

#endif  // FNA_AGENT_CONFIG_CONFIG_H_
