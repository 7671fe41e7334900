#ifndef FNA_AGENT_SERVER_AGENT_SERVER_H_
#define FNA_AGENT_SERVER_AGENT_SERVER_H_

#include <atomic>
#include <memory>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/periodic.h"
#include "agent/config/config.h"
#include "agent/metrics/metrics.h"
#include "agent/server/agent_service.h"
#include "agent/server/health.h"
#include "agent/server/rpc_metrics.h"
#include "agent/tracking/lifecycle.h"
#include "grpcpp/server.h"

namespace fna::server {

// The gRPC server: AsyncAgentService, AgentMetadataService, grpc.health.v1 and server reflection, with a
// receive limit from the configuration (propeller sends the task's inputs inline).
//
// Health: grpc.health.v1 reports the overall status ("") and that of both flyteidl services as `health`'s
// readiness: NOT_SERVING until the agent is ready, SERVING while it is, NOT_SERVING for good once Shutdown
// starts. A probe thread re-reads the readiness every `probe_interval` and calls the health service through
// an in-process channel, recording each answer as `health`'s heartbeat (liveness).
//
// gRPC's own log lines (gpr_log, process-wide: e.g. a client's failed TLS handshake) go through fna::Log as
// component "grpc" once a server started, so that every line the agent writes has the configured format and
// is redacted; they concern single connections or calls, so they are warnings at most. What gRPC says while
// the server starts is dropped: Start's error says it in one line.
//
// Thread-safe. `config`, `lifecycle` and the options' pointers are not owned and must outlive the server.
class AgentServer {
 public:
  struct Options {
    Health* health = nullptr;              // required
    metrics::Registry* metrics = nullptr;  // the calls' metrics (RpcMetrics); null: not exported
    const Clock* clock = Clock::Real();
    absl::Duration probe_interval = absl::Seconds(1);
  };

  // Binds `config.listen_address` (port 0 picks a free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(const AgentConfig* config,
                                                            tracking::TaskLifecycle* lifecycle,
                                                            Options options);
  ~AgentServer();

  int port() const { return port_; }

  // The drain: reports NOT_SERVING, stops accepting calls, lets the calls in flight finish until `deadline`
  // (GetTaskLogs streams end within a poll interval), then cancels what is left and closes the connections
  // (propeller keeps one open, idle, which gRPC's shutdown would otherwise wait for). Returns by `deadline`
  // unless a handler outlives it (each is bounded by its own budget). `deadline` is wall-clock time (gRPC's).
  // Idempotent.
  void Shutdown(absl::Time deadline);

  // Blocks until the server has shut down.
  void Wait();

  // Makes grpc.health.v1 report `health`'s readiness now, rather than at the next probe (e.g. right after
  // Health::SetServing).
  void ReportReadiness();

 private:
  AgentServer(const AgentConfig* config, tracking::TaskLifecycle* lifecycle, Options options);

  // Reports the readiness and probes the serving loop.
  void Probe();

  const Options options_;
  metrics::RegistryOrPrivate registry_;
  RpcMetrics rpc_metrics_;
  AsyncAgentServiceImpl async_service_;
  AgentMetadataServiceImpl metadata_service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> in_process_;
  std::unique_ptr<PeriodicThread> prober_;
  std::mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;  // what the health service reports
  std::atomic<bool> shut_down_{false};
  int port_ = 0;
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_AGENT_SERVER_H_
