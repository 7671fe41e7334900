// flyte-neptune-agent: a Flyte agent (connector) that runs each task attempt and tracks it as a Neptune run.
// Wires the configured implementations of the seams into the lifecycle and serves it over gRPC until SIGTERM.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/common/clock.h"
#include "agent/common/log.h"
#include "agent/common/periodic.h"
#include "agent/common/secret.h"
#include "agent/config/config_loader.h"
#include "agent/executor/instrumented_executor.h"
#include "agent/executor/kubernetes/kubernetes_executor.h"
#include "agent/executor/process_executor.h"
#include "agent/http/http_transport.h"
#include "agent/kube/cluster_connection.h"
#include "agent/kube/kube_client.h"
#include "agent/metrics/metrics.h"
#include "agent/neptune/neptune_client.h"
#include "agent/neptune/offline_tracker.h"
#include "agent/neptune/token_files.h"
#include "agent/server/agent_server.h"
#include "agent/server/health.h"
#include "agent/server/monitoring_server.h"
#include "agent/storage/local_output_store.h"
#include "agent/storage/routing_output_store.h"
#include "agent/storage/s3_output_store.h"
#include "agent/tracking/final_writer.h"
#include "agent/tracking/lifecycle.h"
#include "agent/version.h"

extern char** environ;

namespace fna {
namespace {

constexpr absl::Duration kFinalWriterPeriod = absl::Seconds(1);

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::pair<std::string, std::string> kv = absl::StrSplit(*entry, absl::MaxSplits('=', 1));
    env.insert(std::move(kv));
  }
  return env;
}

// flyte-neptune-runner is installed next to the agent.
std::string DefaultRunnerPath() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "flyte-neptune-runner";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "flyte-neptune-runner";
}

std::string EnvOr(const std::map<std::string, std::string>& env, const std::string& upper) {
  for (const std::string& name : {upper, absl::AsciiStrToLower(upper)}) {
    if (auto it = env.find(name); it != env.end() && !it->second.empty()) return it->second;
  }
  return "";
}

// The Neptune 2.x tracker and what it needs. Members are destroyed in reverse order: the pinger's thread
// stops before the client, the client goes before its transport.
struct NeptuneTracker {
  explicit NeptuneTracker(metrics::Registry* registry) : token_files(registry) {}
  neptune::TokenFiles token_files;
  Secret environment_token;
  std::unique_ptr<http::HttplibTransport> transport;
  std::unique_ptr<neptune::NeptuneClient> client;
  std::unique_ptr<PeriodicThread> pings;
};

// Builds the Neptune tracker. Every configured token must be readable now: a bad token file is a start-up
// error (design.md §3.7); later read failures only degrade tracking.
absl::StatusOr<std::unique_ptr<NeptuneTracker>> MakeNeptuneTracker(
    const AgentConfig& config, const std::map<std::string, std::string>& env, const Clock* clock,
    metrics::Registry* registry) {
  auto tracker = std::make_unique<NeptuneTracker>(registry);
  if (auto it = env.find("NEPTUNE_API_TOKEN"); it != env.end() && !it->second.empty()) {
    tracker->environment_token = Secret(it->second);
  }
  if (config.neptune_api_token_file.empty() && tracker->environment_token.empty()) {
    return absl::FailedPreconditionError(
        "tracker.kind is neptune but there is no API token: set tracker.neptune.api_token_file or "
        "NEPTUNE_API_TOKEN");
  }
  std::vector<std::pair<std::string, std::string>> files;  // key, path
  if (!config.neptune_api_token_file.empty()) {
    files.emplace_back("tracker.neptune.api_token_file", config.neptune_api_token_file);
  }
  for (size_t i = 0; i < config.routing_rules.size(); ++i) {
    if (config.routing_rules[i].token_file.empty()) continue;
    files.emplace_back(absl::StrCat("tracking.routing_rules[", i, "].token_file"),
                       config.routing_rules[i].token_file);
  }
  for (const auto& [key, file] : files) {
    if (auto token = tracker->token_files.Read(file); !token.ok()) {
      return absl::Status(token.status().code(), absl::StrCat(key, ": ", token.status().message()));
    }
  }
  if (!config.neptune_ca_file.empty() && access(config.neptune_ca_file.c_str(), R_OK) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("tracker.neptune.ca_file \"", config.neptune_ca_file, "\": cannot read"));
  }

  http::HttplibTransportOptions transport_options;
  transport_options.ca_cert_file = config.neptune_ca_file;
  transport_options.allow_self_signed = config.neptune_allow_self_signed;
  transport_options.https_proxy = EnvOr(env, "HTTPS_PROXY");
  transport_options.http_proxy = EnvOr(env, "HTTP_PROXY");
  transport_options.no_proxy = EnvOr(env, "NO_PROXY");
  auto transport = http::HttplibTransport::Create(transport_options, clock);
  if (!transport.ok()) return transport.status();
  tracker->transport = *std::move(transport);

  neptune::NeptuneClientOptions options;
  NeptuneTracker* raw = tracker.get();
  options.token_source = [raw, &config](int rule) -> absl::StatusOr<Secret> {
    if (rule >= 0 && rule < static_cast<int>(config.routing_rules.size()) &&
        !config.routing_rules[rule].token_file.empty()) {
      return raw->token_files.Read(config.routing_rules[rule].token_file);
    }
    if (!config.neptune_api_token_file.empty()) return raw->token_files.Read(config.neptune_api_token_file);
    return raw->environment_token;
  };
  options.host = config.neptune_host;
  options.application_url = config.neptune_application_url;
  options.user_agent = absl::StrCat("flyte-neptune-agent/", kVersion);
  options.pinger.interval = config.neptune_ping_interval;
  options.pinger.idle_expiry = config.neptune_ping_idle_expiry;
  options.pinger.max_pings_per_second = static_cast<double>(config.neptune_max_pings_per_second);
  options.metrics = registry;
  options.pinger.metrics = registry;
  tracker->client = std::make_unique<neptune::NeptuneClient>(options, tracker->transport.get(), clock);
  neptune::NeptuneClient* client = tracker->client.get();
  tracker->pings = std::make_unique<PeriodicThread>(absl::Seconds(1), [client] { client->RunDue(); });
  return tracker;
}

// The Kubernetes executor and what it needs, destroyed in reverse order (the sweeper first).
struct KubernetesExecutor {
  std::unique_ptr<kube::KubeClient> client;
  std::unique_ptr<executor::kubernetes::PodCache> cache;  // null with executor.kubernetes.watch: false
  std::unique_ptr<executor::kubernetes::KubernetesExecutor> executor;
  std::unique_ptr<PeriodicThread> sweeper;
};

absl::StatusOr<nlohmann::json> ParseJsonKey(const std::string& text, absl::string_view key) {
  if (text.empty()) return nlohmann::json();
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(key, ": not valid JSON"));
  return value;
}

absl::StatusOr<executor::kubernetes::KubernetesExecutorOptions> KubernetesOptions(const AgentConfig& config) {
  executor::kubernetes::KubernetesExecutorOptions options;
  executor::kubernetes::PodOptions& pod = options.pod;
  for (const std::string& assignment : config.k8s_default_env) {
    std::pair<std::string, std::string> kv = absl::StrSplit(assignment, absl::MaxSplits('=', 1));
    pod.default_env.push_back(std::move(kv));
  }
  pod.env_from_secrets = config.k8s_env_from_secrets;
  pod.env_from_config_maps = config.k8s_env_from_config_maps;
  pod.default_requests = {{"cpu", config.k8s_default_cpu}, {"memory", config.k8s_default_memory}};
  pod.gpu_resource_name = config.k8s_gpu_resource_name;
  pod.image_pull_policy = config.k8s_image_pull_policy;
  auto pod_template =
      ParseJsonKey(config.k8s_default_pod_template, "executor.kubernetes.default_pod_template");
  if (!pod_template.ok()) return pod_template.status();
  pod.default_pod_template = *std::move(pod_template);
  auto tolerations =
      ParseJsonKey(config.k8s_interruptible_tolerations, "executor.kubernetes.interruptible_tolerations");
  if (!tolerations.ok()) return tolerations.status();
  if (!tolerations->is_null()) pod.interruptible_tolerations = *std::move(tolerations);
  for (const std::string& assignment : config.k8s_interruptible_node_selector) {
    std::pair<std::string, std::string> kv = absl::StrSplit(assignment, absl::MaxSplits('=', 1));
    pod.interruptible_node_selector.insert(std::move(kv));
  }
  pod.token_namespaces.insert(config.k8s_token_namespaces.begin(), config.k8s_token_namespaces.end());
  pod.token_secret = {config.k8s_token_secret, config.k8s_token_secret_key};
  pod.console_url = config.console_url;
  options.status.image_pull_backoff_grace_period = config.k8s_image_pull_backoff_grace;
  options.status.create_container_error_grace_period = config.k8s_create_container_error_grace;
  options.status.pod_pending_timeout = config.k8s_pod_pending_timeout;
  options.agent_name = config.agent_name;
  options.namespaces = config.k8s_namespaces;
  options.owner_references = config.k8s_owner_references;
  options.request_timeout = config.k8s_request_timeout;
  options.cleanup_delay = config.k8s_cleanup_delay;
  return options;
}

// Builds the Kubernetes executor: in-cluster credentials, or a kubeconfig for development.
absl::StatusOr<std::unique_ptr<KubernetesExecutor>> MakeKubernetesExecutor(
    const AgentConfig& config, const std::map<std::string, std::string>& env, const Clock* clock,
    metrics::Registry* registry) {
  const kube::EnvGetter getenv = [&env](absl::string_view name) -> std::optional<std::string> {
    if (auto it = env.find(std::string(name)); it != env.end()) return it->second;
    return std::nullopt;
  };
  auto connection = config.k8s_kubeconfig.empty()
                        ? kube::InClusterConnection(getenv)
                        : kube::KubeconfigConnection(config.k8s_kubeconfig, config.k8s_context, getenv);
  if (!connection.ok()) return connection.status();
  kube::KubeClientOptions client_options;
  client_options.qps = static_cast<double>(config.k8s_qps);
  client_options.burst = static_cast<int>(config.k8s_burst);
  client_options.user_agent = absl::StrCat("flyte-neptune-agent/", kVersion);
  client_options.https_proxy = EnvOr(env, "HTTPS_PROXY");
  client_options.http_proxy = EnvOr(env, "HTTP_PROXY");
  client_options.no_proxy = EnvOr(env, "NO_PROXY");
  client_options.metrics = registry;
  auto client = kube::KubeClient::Create(*std::move(connection), client_options, clock);
  if (!client.ok()) return client.status();
  auto options = KubernetesOptions(config);
  if (!options.ok()) return options.status();

  auto made = std::make_unique<KubernetesExecutor>();
  made->client = *std::move(client);
  if (config.k8s_watch) {
    executor::kubernetes::PodCacheOptions cache_options;
    cache_options.namespaces = config.k8s_namespaces;
    cache_options.label_selector = executor::kubernetes::AgentPodSelector(config.agent_name);
    made->cache = std::make_unique<executor::kubernetes::PodCache>(made->client.get(), cache_options, clock);
    made->cache->Start();
  }
  made->executor = std::make_unique<executor::kubernetes::KubernetesExecutor>(
      made->client.get(), *std::move(options), clock, made->cache.get());
  executor::kubernetes::KubernetesExecutor* executor = made->executor.get();
  made->sweeper = std::make_unique<PeriodicThread>(config.k8s_sweep_interval, [executor] {
    if (auto swept = executor->Sweep(); !swept.ok()) {
      Log(LogLevel::kWarning, "kubernetes", "sweeper pass failed",
          {{"error", std::string(swept.status().message())}});
    }
  });
  return made;
}

// The output stores GetTask reads error.pb with: local paths, and s3:// with credentials from the AWS_*
// variables. Destroyed in reverse order (the router first, the transport last).
struct OutputStores {
  std::unique_ptr<http::HttplibTransport> s3_transport;
  std::unique_ptr<storage::S3OutputStore> s3;
  storage::LocalOutputStore local;
  std::unique_ptr<storage::RoutingOutputStore> router;
};

absl::StatusOr<std::unique_ptr<OutputStores>> MakeOutputStores(const AgentConfig& config,
                                                               const std::map<std::string, std::string>& env,
                                                               const Clock* clock) {
  auto stores = std::make_unique<OutputStores>();
  http::HttplibTransportOptions transport_options;
  transport_options.ca_cert_file =
      config.s3_ca_file.empty() ? EnvOr(env, "AWS_CA_BUNDLE") : config.s3_ca_file;
  transport_options.https_proxy = EnvOr(env, "HTTPS_PROXY");
  transport_options.http_proxy = EnvOr(env, "HTTP_PROXY");
  transport_options.no_proxy = EnvOr(env, "NO_PROXY");
  auto transport = http::HttplibTransport::Create(transport_options, clock);
  if (!transport.ok()) return transport.status();
  stores->s3_transport = *std::move(transport);
  storage::S3StoreOptions options;
  options.region = config.s3_region;
  options.endpoint = config.s3_endpoint;
  options.sts_endpoint = config.s3_sts_endpoint;
  options.addressing =
      config.s3_force_path_style ? storage::S3Addressing::kPathStyle : storage::S3Addressing::kAuto;
  options.user_agent = absl::StrCat("flyte-neptune-agent/", kVersion);
  auto s3 = storage::S3OutputStore::FromEnvironment(options, storage::MapEnvironment(env),
                                                    stores->s3_transport.get(), clock);
  if (!s3.ok()) return s3.status();
  stores->s3 = *std::move(s3);
  stores->router = std::make_unique<storage::RoutingOutputStore>(&stores->local, stores->s3.get());
  return stores;
}

int Fail(absl::string_view what, const absl::Status& status) {
  Log(LogLevel::kError, "main", absl::StrCat(what, ": ", status.message()));
  return 1;
}

int Run(const AgentConfig& config, const std::map<std::string, std::string>& env) {
  // Signals are taken by sigwait below; block them before any thread starts so none of them receives one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Clock* clock = Clock::Real();
  // The operations endpoint comes first, so that probes see the start-up (not ready yet, alive).
  metrics::Registry registry;
  registry
      .AddGauge("flyte_neptune_agent_build_info",
                "The agent's version, commit and the flyteidl version it speaks.",
                {"version", "commit", "flyteidl_version"})
      ->Get({kVersion, BuildCommit(), kFlyteidlVersion})
      ->Set(1);
  server::Health health(clock);
  std::unique_ptr<server::MonitoringServer> monitoring;
  if (!config.metrics_address.empty()) {
    auto started = server::MonitoringServer::Start(config.metrics_address, &registry, &health);
    if (!started.ok()) return Fail("cannot serve server.metrics_address", started.status());
    monitoring = *std::move(started);
  }

  std::unique_ptr<neptune::OfflineTracker> offline;
  std::unique_ptr<NeptuneTracker> online;
  neptune::Tracker* tracker = nullptr;
  if (config.tracker == TrackerKind::kNeptune) {
    auto made = MakeNeptuneTracker(config, env, clock, &registry);
    if (!made.ok()) return Fail("cannot set up the Neptune tracker", made.status());
    online = *std::move(made);
    tracker = online->client.get();
  } else {
    auto made =
        neptune::OfflineTracker::Create(neptune::OfflineTrackerOptions{config.offline_directory}, clock);
    if (!made.ok()) return Fail("cannot open the offline Neptune directory", made.status());
    offline = *std::move(made);
    tracker = offline.get();
  }

  std::unique_ptr<executor::ProcessExecutor> process;
  std::unique_ptr<KubernetesExecutor> kubernetes;
  executor::Executor* executor = nullptr;
  if (config.executor == ExecutorKind::kKubernetes) {
    auto made = MakeKubernetesExecutor(config, env, clock, &registry);
    if (!made.ok()) return Fail("cannot set up the Kubernetes executor", made.status());
    kubernetes = *std::move(made);
    executor = kubernetes->executor.get();
  } else {
    executor::ProcessExecutor::Options executor_options;
    executor_options.state_directory = config.process_state_directory;
    executor_options.runner_path =
        config.process_runner_path.empty() ? DefaultRunnerPath() : config.process_runner_path;
    auto made = executor::ProcessExecutor::Create(executor_options);
    if (!made.ok()) return Fail("cannot start the process executor", made.status());
    process = *std::move(made);
    executor = process.get();
  }
  executor::InstrumentedExecutor instrumented_executor(executor, &registry, clock);

  auto outputs = MakeOutputStores(config, env, clock);
  if (!outputs.ok()) return Fail("cannot set up the S3 output store", outputs.status());
  tracking::FinalWriter::Options writer_options;
  writer_options.console_url = config.console_url;
  writer_options.metrics = &registry;
  tracking::FinalWriter final_writer(writer_options, tracker, &instrumented_executor, clock);
  if (absl::Status resumed = final_writer.Resume(); !resumed.ok()) {
    return Fail("cannot read pending final writes", resumed);
  }
  tracking::TaskLifecycle lifecycle(&config, tracker, &instrumented_executor, (*outputs)->router.get(),
                                    &final_writer, clock, &registry);

  health.AddReadinessCheck("executor", [&instrumented_executor] { return instrumented_executor.Ready(); });
  server::AgentServer::Options server_options;
  server_options.health = &health;
  server_options.metrics = &registry;
  auto server = server::AgentServer::Start(&config, &lifecycle, server_options);
  if (!server.ok()) return Fail("cannot start the gRPC server", server.status());
  PeriodicThread final_writes(kFinalWriterPeriod, [&final_writer] { final_writer.RunDue(); });
  health.SetServing();
  (*server)->ReportReadiness();
  Log(LogLevel::kInfo, "main", "serving",
      {{"address", config.listen_address},
       {"port", absl::StrCat((*server)->port())},
       {"metrics_address", config.metrics_address},
       {"metrics_port", monitoring == nullptr ? "" : absl::StrCat(monitoring->port())},
       {"task_types", absl::StrJoin(config.task_types, ",")},
       {"tracker", config.tracker == TrackerKind::kNeptune ? "neptune" : "offline"},
       {"offline_directory", config.offline_directory},
       {"executor", config.executor == ExecutorKind::kKubernetes ? "kubernetes" : "process"},
       {"version", kVersion}});

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  // The drain (README, Operations): not ready, no new calls, the calls in flight and the pending final writes
  // finish within server.drain_timeout.
  const absl::Time started = clock->Now();
  const absl::Time deadline = started + config.drain_timeout;
  Log(LogLevel::kInfo, "main", "draining",
      {{"signal", strsignal(signal_number)}, {"drain_timeout", absl::FormatDuration(config.drain_timeout)}});
  // The drain's watchdog: the deadline ends the process with status 0 whatever still runs (e.g. a background
  // final write; its record on the executor is resumed by the next agent), a second signal at once.
  std::thread([signals, deadline, clock] {
    while (true) {
      const timespec left = absl::ToTimespec(std::max(absl::ZeroDuration(), deadline - clock->Now()));
      siginfo_t info;
      const int second = sigtimedwait(&signals, &info, &left);
      if (second > 0) {
        Log(LogLevel::kWarning, "main", "second signal: exiting without draining",
            {{"signal", strsignal(second)}});
        std::_Exit(128 + second);
      }
      if (clock->Now() >= deadline) {
        Log(LogLevel::kWarning, "main",
            "drain deadline passed: exiting; pending final writes resume on restart");
        std::_Exit(0);
      }
    }
  }).detach();
  health.SetDraining();
  (*server)->Shutdown(deadline);
  final_writes.Stop();
  const size_t pending = final_writer.Drain(deadline);
  if (online != nullptr) online->pings->Stop();
  if (monitoring != nullptr) monitoring->Stop();
  Log(LogLevel::kInfo, "main", "stopped",
      {{"drained_in", absl::FormatDuration(clock->Now() - started)},
       {"pending_final_writes", absl::StrCat(pending)}});
  return 0;
}

}  // namespace
}  // namespace fna

int main(int argc, char** argv) {
  using fna::ParseCommandLine;
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto command_line = ParseCommandLine(args, fna::Environment());
  if (!command_line.ok()) {
    std::cerr << "flyte-neptune-agent: " << command_line.status().message() << "\n";
    return 2;
  }
  if (command_line->help) {
    std::cout << fna::UsageText();
    return 0;
  }
  if (command_line->version) {
    std::cout << fna::VersionLine("flyte-neptune-agent") << "\n";
    return 0;
  }
  if (command_line->print_config) {
    std::cout << fna::FormatConfig(command_line->config);
    return 0;
  }
  fna::ConfigureLogging(command_line->config.log_format, command_line->config.log_level);
  return fna::Run(command_line->config, fna::Environment());
}
