#include "agent/server/agent_server.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace fna::server {

AgentServer::AgentServer(const AgentConfig* config, tracking::TaskLifecycle* lifecycle)
    : async_service_(lifecycle, AsyncAgentServiceImpl::Options{}), metadata_service_(config) {}

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(const AgentConfig* config,
                                                                tracking::TaskLifecycle* lifecycle) {
  std::unique_ptr<AgentServer> server(new AgentServer(config, lifecycle));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config->listen_address, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config->max_receive_message_bytes));
  builder.RegisterService(&server->async_service_);
  builder.RegisterService(&server->metadata_service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config->listen_address, " (address in use or not available here)"));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

AgentServer::~AgentServer() { Shutdown(absl::Now()); }

void AgentServer::Shutdown(absl::Time deadline) {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  async_service_.StopStreams();
  server_->Shutdown(absl::ToChronoTime(deadline));
}

void AgentServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace fna::server
