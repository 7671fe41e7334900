#ifndef FNA_AGENT_SERVER_AGENT_SERVER_H_
#define FNA_AGENT_SERVER_AGENT_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config/config.h"
#include "agent/server/agent_service.h"
#include "agent/tracking/lifecycle.h"
#include "grpcpp/server.h"

namespace fna::server {

// The gRPC server: AsyncAgentService, AgentMetadataService, grpc.health.v1 and server reflection, with a
// receive limit from the configuration (propeller sends the task's inputs inline). Thread-safe. `config` and
// `lifecycle` are not owned and must outlive the server.
class AgentServer {
 public:
  // Binds `config.listen_address` (port 0 picks a free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(const AgentConfig* config,
                                                            tracking::TaskLifecycle* lifecycle);
  ~AgentServer();

  int port() const { return port_; }

  // Reports NOT_SERVING, stops accepting calls, lets calls in flight finish until `deadline`, then cancels
  // them. Idempotent.
  void Shutdown(absl::Time deadline);

  // Blocks until the server has shut down.
  void Wait();

 private:
  AgentServer(const AgentConfig* config, tracking::TaskLifecycle* lifecycle);

  AsyncAgentServiceImpl async_service_;
  AgentMetadataServiceImpl metadata_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_AGENT_SERVER_H_
