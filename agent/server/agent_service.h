#ifndef FNA_AGENT_SERVER_AGENT_SERVICE_H_
#define FNA_AGENT_SERVER_AGENT_SERVICE_H_

#include <atomic>

#include "absl/time/time.h"
#include "agent/config/config.h"
#include "agent/server/rpc_metrics.h"
#include "agent/tracking/lifecycle.h"
#include "flyteidl/service/agent.grpc.pb.h"

namespace fna::server {

// flyteidl.service.AsyncAgentService: thin handlers that decode, call the lifecycle and encode, each call
// recorded in `metrics`. Thread-safe; `lifecycle` and `options.metrics` are not owned and must outlive the
// service.
class AsyncAgentServiceImpl final : public flyteidl::service::AsyncAgentService::Service {
 public:
  struct Options {
    RpcMetrics* metrics = nullptr;  // required
    absl::Duration log_poll_interval =
        absl::Seconds(1);  // how often a following GetTaskLogs looks for output
  };

  AsyncAgentServiceImpl(tracking::TaskLifecycle* lifecycle, Options options);

  grpc::Status CreateTask(grpc::ServerContext* context, const flyteidl::admin::CreateTaskRequest* request,
                          flyteidl::admin::CreateTaskResponse* response) override;
  grpc::Status GetTask(grpc::ServerContext* context, const flyteidl::admin::GetTaskRequest* request,
                       flyteidl::admin::GetTaskResponse* response) override;
  grpc::Status DeleteTask(grpc::ServerContext* context, const flyteidl::admin::DeleteTaskRequest* request,
                          flyteidl::admin::DeleteTaskResponse* response) override;
  grpc::Status GetTaskMetrics(grpc::ServerContext* context,
                              const flyteidl::admin::GetTaskMetricsRequest* request,
                              flyteidl::admin::GetTaskMetricsResponse* response) override;
  // Streams the task's output: `lines` > 0 starts from the last `lines` lines, `token` continues a previous
  // stream. Follows the output until the task has finished and all of it was sent, or the client cancels.
  // Each body part is preceded by a header part whose token resumes after that body.
  grpc::Status GetTaskLogs(grpc::ServerContext* context, const flyteidl::admin::GetTaskLogsRequest* request,
                           grpc::ServerWriter<flyteidl::admin::GetTaskLogsResponse>* writer) override;

  // Makes following GetTaskLogs streams end (at shutdown). Idempotent.
  void StopStreams() { stopping_ = true; }

 private:
  // `task_type` as a metric label: a served type, "" for none, else "other".
  std::string TaskTypeLabel(const std::string& task_type) const;
  grpc::Status StreamLogs(grpc::ServerContext* context, const flyteidl::admin::GetTaskLogsRequest* request,
                          grpc::ServerWriter<flyteidl::admin::GetTaskLogsResponse>* writer);

  tracking::TaskLifecycle* const lifecycle_;
  const Options options_;
  std::atomic<bool> stopping_{false};
};

// flyteidl.service.AgentMetadataService: lists the configured task types. Propeller's discovery routes every
// listed type to this agent, so only the configured ones are listed. Thread-safe; `config` and `metrics` must
// outlive this.
class AgentMetadataServiceImpl final : public flyteidl::service::AgentMetadataService::Service {
 public:
  AgentMetadataServiceImpl(const AgentConfig* config, RpcMetrics* metrics)
      : config_(*config), metrics_(metrics) {}

  grpc::Status GetAgent(grpc::ServerContext* context, const flyteidl::admin::GetAgentRequest* request,
                        flyteidl::admin::GetAgentResponse* response) override;
  grpc::Status ListAgents(grpc::ServerContext* context, const flyteidl::admin::ListAgentsRequest* request,
                          flyteidl::admin::ListAgentsResponse* response) override;

 private:
  void Describe(flyteidl::admin::Agent* agent) const;

  const AgentConfig& config_;
  RpcMetrics* const metrics_;
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_AGENT_SERVICE_H_
