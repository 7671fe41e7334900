#include "agent/server/agent_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/log.h"
#include "agent/server/tls.h"
#include "grpc/grpc.h"
#include "grpc/support/log.h"
#include "grpc/support/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"

namespace fna::server {
namespace {

constexpr char kAsyncAgentService[] = "flyteidl.service.AsyncAgentService";
constexpr char kAgentMetadataService[] = "flyteidl.service.AgentMetadataService";
// How long the drain lets the last answers go out before it closes the connections left.
constexpr absl::Duration kFlushGrace = absl::Seconds(1);

void SetServing(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  health->SetServingStatus(kAsyncAgentService, serving);
  health->SetServingStatus(kAgentMetadataService, serving);
  health->SetServingStatus(serving);  // "" and every service above
}

void LogGrpc(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_DEBUG  ? LogLevel::kDebug
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kWarning;
  Log(level, "grpc", args->message, {{"source", absl::StrCat(args->file, ":", args->line)}});
}

void DropGrpcLog(gpr_log_func_args*) {}

}  // namespace

AgentServer::AgentServer(const AgentConfig* config, tracking::TaskLifecycle* lifecycle, Options options)
    : options_(options),
      registry_(options.metrics),
      rpc_metrics_(registry_.get(), options.clock),
      async_service_(lifecycle, AsyncAgentServiceImpl::Options{&rpc_metrics_}),
      metadata_service_(config, &rpc_metrics_) {}

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(const AgentConfig* config,
                                                                tracking::TaskLifecycle* lifecycle,
                                                                Options options) {
  std::unique_ptr<AgentServer> server(new AgentServer(config, lifecycle, options));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  auto credentials = MakeServerCredentials(*config);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(config->listen_address, *credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config->max_receive_message_bytes));
  // gRPC's default SO_REUSEPORT would let a second agent share the port, unnoticed.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&server->async_service_);
  builder.RegisterService(&server->metadata_service_);
  gpr_set_log_function(DropGrpcLog);
  server->server_ = builder.BuildAndStart();
  gpr_set_log_function(LogGrpc);
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("server.listen_address \"", config->listen_address,
                                               "\": cannot listen (address in use or not available here)"));
  }
  SetServing(*server->server_, false);
  server->in_process_ = server->server_->InProcessChannel(grpc::ChannelArguments());
  server->Probe();
  AgentServer* raw = server.get();
  server->prober_ = std::make_unique<PeriodicThread>(options.probe_interval, [raw] { raw->Probe(); });
  return server;
}

AgentServer::~AgentServer() { Shutdown(absl::Now()); }

void AgentServer::ReportReadiness() {
  const bool ready = options_.health->Readiness().ok;
  std::lock_guard<std::mutex> lock(mu_);
  if (ready != serving_) {
    SetServing(*server_, ready);
    serving_ = ready;
  }
}

void AgentServer::Probe() {
  ReportReadiness();
  // Health.Check of "" (an empty HealthCheckRequest), as a client would send it.
  grpc::GenericStub stub(in_process_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + std::max(options_.probe_interval, absl::Seconds(5))));
  grpc::CompletionQueue queue;
  const grpc::Slice empty("");
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  call->Finish(&response, &status, nullptr);
  void* tag = nullptr;
  bool ok = false;
  if (queue.Next(&tag, &ok) && ok && status.ok()) options_.health->Heartbeat();
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

void AgentServer::Shutdown(absl::Time deadline) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  if (prober_ != nullptr) prober_->Stop();
  server_->GetHealthCheckService()->Shutdown();  // NOT_SERVING from now on, whatever is set later
  async_service_.StopStreams();
  in_process_.reset();  // the prober's connection
  // Stop accepting calls now, as Server::Shutdown does first (the core allows it twice).
  grpc_completion_queue* queue = grpc_completion_queue_create_for_next(nullptr);
  grpc_server_shutdown_and_notify(server_->c_server(), queue, nullptr);
  rpc_metrics_.WaitUntilIdle(options_.clock->Now() + (deadline - absl::Now()));  // `deadline` is wall time
  // The last answers go out now. Connections still open after that are idle ones (propeller keeps one), which
  // the shutdown would wait for: close them.
  const absl::Duration flush = std::max(absl::ZeroDuration(), std::min(kFlushGrace, deadline - absl::Now()));
  const grpc_event shut = grpc_completion_queue_next(
      queue,
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(absl::ToInt64Milliseconds(flush), GPR_TIMESPAN)),
      nullptr);
  if (shut.type == GRPC_QUEUE_TIMEOUT) grpc_server_cancel_all_calls(server_->c_server());
  server_->Shutdown(absl::ToChronoTime(deadline));
  grpc_completion_queue_shutdown(queue);
  while (grpc_completion_queue_next(queue, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(queue);
}

void AgentServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace fna::server
