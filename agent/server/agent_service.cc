#include "agent/server/agent_service.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/log.h"
#include "agent/server/grpc_status.h"
#include "google/protobuf/util/time_util.h"

namespace fna::server {
namespace {

using flyteidl::admin::GetTaskLogsResponse;

// Logs a failed call: propeller shows the message to the user, operators see it here.
grpc::Status Reply(absl::string_view method, const absl::Status& status) {
  if (!status.ok()) {
    Log(status.code() == absl::StatusCode::kInternal ? LogLevel::kError : LogLevel::kWarning, "server",
        "request failed",
        {{"method", std::string(method)},
         {"code", absl::StatusCodeToString(status.code())},
         {"error", std::string(status.message())}});
  }
  return ToGrpcStatus(status);
}

// The task type a request names: its category, else the deprecated task_type (older propellers).
const std::string& TaskTypeOf(const flyteidl::admin::TaskCategory& category, const std::string& task_type) {
  return category.name().empty() ? task_type : category.name();
}

}  // namespace

AsyncAgentServiceImpl::AsyncAgentServiceImpl(tracking::TaskLifecycle* lifecycle, Options options)
    : lifecycle_(lifecycle), options_(options) {}

std::string AsyncAgentServiceImpl::TaskTypeLabel(const std::string& task_type) const {
  if (task_type.empty() || lifecycle_->CheckTaskType(task_type).ok()) return task_type;
  return "other";
}

grpc::Status AsyncAgentServiceImpl::CreateTask(grpc::ServerContext* context,
                                               const flyteidl::admin::CreateTaskRequest* request,
                                               flyteidl::admin::CreateTaskResponse* response) {
  const std::string type = TaskTypeLabel(request->template_().type());
  if (request->has_inputs()) {
    options_.metrics->ObserveInputBytes(type, static_cast<int64_t>(request->inputs().ByteSizeLong()));
  }
  return options_.metrics->Record("create", type, [&] {
    auto meta = lifecycle_->Create(*request);
    if (!meta.ok()) return Reply("CreateTask", meta.status());
    response->set_resource_meta(*std::move(meta));
    return grpc::Status::OK;
  });
}

grpc::Status AsyncAgentServiceImpl::GetTask(grpc::ServerContext* context,
                                            const flyteidl::admin::GetTaskRequest* request,
                                            flyteidl::admin::GetTaskResponse* response) {
  const std::string type = TaskTypeLabel(TaskTypeOf(request->task_category(), request->task_type()));
  return options_.metrics->Record("get", type, [&] {
    auto resource = lifecycle_->Get(*request);
    if (!resource.ok()) return Reply("GetTask", resource.status());
    *response->mutable_resource() = *std::move(resource);
    return grpc::Status::OK;
  });
}

grpc::Status AsyncAgentServiceImpl::DeleteTask(grpc::ServerContext* context,
                                               const flyteidl::admin::DeleteTaskRequest* request,
                                               flyteidl::admin::DeleteTaskResponse* response) {
  const std::string type = TaskTypeLabel(TaskTypeOf(request->task_category(), request->task_type()));
  return options_.metrics->Record("delete", type,
                                  [&] { return Reply("DeleteTask", lifecycle_->Delete(*request)); });
}

grpc::Status AsyncAgentServiceImpl::GetTaskMetrics(grpc::ServerContext* context,
                                                   const flyteidl::admin::GetTaskMetricsRequest* request,
                                                   flyteidl::admin::GetTaskMetricsResponse* response) {
  const std::string type = TaskTypeLabel(TaskTypeOf(request->task_category(), request->task_type()));
  return options_.metrics->Record("get_metrics", type, [] {
    return grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        "GetTaskMetrics is not supported by the neptune agent: the task's metrics are in its Neptune "
        "run (see the task's \"Neptune run\" link)");
  });
}

grpc::Status AsyncAgentServiceImpl::GetTaskLogs(grpc::ServerContext* context,
                                                const flyteidl::admin::GetTaskLogsRequest* request,
                                                grpc::ServerWriter<GetTaskLogsResponse>* writer) {
  const std::string type = TaskTypeLabel(TaskTypeOf(request->task_category(), request->task_type()));
  return options_.metrics->Record("get_logs", type, [&] { return StreamLogs(context, request, writer); });
}

grpc::Status AsyncAgentServiceImpl::StreamLogs(grpc::ServerContext* context,
                                               const flyteidl::admin::GetTaskLogsRequest* request,
                                               grpc::ServerWriter<GetTaskLogsResponse>* writer) {
  if (absl::Status type =
          lifecycle_->CheckTaskType(TaskTypeOf(request->task_category(), request->task_type()));
      !type.ok()) {
    return Reply("GetTaskLogs", type);
  }
  executor::LogQuery query;
  query.token = request->token();
  query.tail_lines = request->lines();
  bool first = true;
  while (true) {
    auto batch = lifecycle_->ReadLogs(request->resource_meta(), query);
    if (!batch.ok()) return Reply("GetTaskLogs", batch.status());
    if (first || !batch->lines.empty()) {
      GetTaskLogsResponse header;
      header.mutable_header()->set_token(batch->next_token);
      GetTaskLogsResponse body;
      auto* part = body.mutable_body();
      for (const executor::LogLine& line : batch->lines) {
        part->add_results(line.message);
        auto* structured = part->add_structured_lines();
        structured->set_message(line.message);
        structured->set_originator(flyteidl::admin::USER);
        if (line.timestamp.has_value()) {
          *structured->mutable_timestamp() =
              google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(*line.timestamp));
        }
      }
      if (!writer->Write(header) || !writer->Write(body)) return grpc::Status::OK;  // client went away
      first = false;
    }
    if (batch->complete || context->IsCancelled() || stopping_) return grpc::Status::OK;
    query.token = batch->next_token;
    query.tail_lines = 0;
    absl::SleepFor(options_.log_poll_interval);
  }
}

void AgentMetadataServiceImpl::Describe(flyteidl::admin::Agent* agent) const {
  agent->set_name(config_.agent_name);
  agent->set_is_sync(false);
  for (const std::string& type : config_.task_types) {
    agent->add_supported_task_types(type);
    auto* category = agent->add_supported_task_categories();
    category->set_name(type);
    category->set_version(0);
  }
}

grpc::Status AgentMetadataServiceImpl::GetAgent(grpc::ServerContext* context,
                                                const flyteidl::admin::GetAgentRequest* request,
                                                flyteidl::admin::GetAgentResponse* response) {
  return metrics_->Record("get_agent", "", [&] {
    if (request->name() != config_.agent_name) {
      return Reply("GetAgent",
                   absl::NotFoundError(absl::StrCat("no agent named \"", request->name(),
                                                    "\"; this server runs \"", config_.agent_name, "\"")));
    }
    Describe(response->mutable_agent());
    return grpc::Status::OK;
  });
}

grpc::Status AgentMetadataServiceImpl::ListAgents(grpc::ServerContext* context,
                                                  const flyteidl::admin::ListAgentsRequest* request,
                                                  flyteidl::admin::ListAgentsResponse* response) {
  return metrics_->Record("list_agents", "", [&] {
    Describe(response->add_agents());
    return grpc::Status::OK;
  });
}

}  // namespace fna::server
