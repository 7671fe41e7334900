#ifndef FNA_AGENT_SERVER_MONITORING_SERVER_H_
#define FNA_AGENT_SERVER_MONITORING_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/metrics/metrics.h"
#include "agent/server/health.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace fna::server {

// The operations endpoint, an HTTP server on its own port (server.metrics_address):
//   GET /metrics  the registry in the Prometheus text format 0.0.4
//   GET /readyz   200 "ok", or 503 with the reason (Health::Readiness)
//   GET /healthz  200 "ok", or 503 with the reason (Health::Liveness)
// Thread-safe. `registry` and `health` are not owned and must outlive the server.
class MonitoringServer {
 public:
  // Listens on `address` ("host:port" or "[IPv6]:port"; port 0 picks a free port) and serves on its own
  // threads. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MonitoringServer>> Start(const std::string& address,
                                                                 const metrics::Registry* registry,
                                                                 const Health* health);
  ~MonitoringServer();

  int port() const { return port_; }

  // Stops serving (a request in progress completes). Idempotent.
  void Stop();

 private:
  MonitoringServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listening_done_{false};
  int port_ = 0;
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_MONITORING_SERVER_H_
