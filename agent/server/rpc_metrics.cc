#include "agent/server/rpc_metrics.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fna::server {
namespace {

// 1 KiB to 64 MiB (server.max_receive_message_bytes is 64 MiB by default).
const std::vector<double>& ByteBuckets() {
  static const auto* const buckets = new std::vector<double>{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10,
                                                             1 << 20, 4 << 20, 16 << 20, 64 << 20};
  return *buckets;
}

bool IsConnectorOperation(absl::string_view operation) {
  return operation == "create" || operation == "get" || operation == "delete";
}

}  // namespace

RpcMetrics::RpcMetrics(metrics::Registry* registry, const Clock* clock)
    : clock_(clock),
      requests_(registry->AddCounter("flyte_neptune_agent_grpc_requests_total",
                                     "gRPC calls handled, by task type, operation and gRPC status code.",
                                     {"task_type", "operation", "code"})),
      duration_(registry->AddHistogram("flyte_neptune_agent_grpc_request_duration_seconds",
                                       "Time to handle a gRPC call (a GetTaskLogs stream: until it ends).",
                                       {"task_type", "operation", "code"}, metrics::LatencyBuckets())),
      in_flight_(
          registry->AddGauge("flyte_neptune_agent_grpc_requests_in_flight", "gRPC calls being handled now.")
              ->Get()),
      connector_success_(registry->AddCounter("flyte_connector_requests_success_total",
                                              "Total number of successful requests",
                                              {"task_type", "operation"})),
      connector_failure_(registry->AddCounter("flyte_connector_requests_failure_total",
                                              "Total number of failed requests",
                                              {"task_type", "operation", "error_code"})),
      connector_latency_(registry->AddHistogram("flyte_connector_request_latency_seconds",
                                                "Time spent processing connector request",
                                                {"task_type", "operation"}, metrics::LatencyBuckets())),
      connector_input_bytes_(registry->AddHistogram("flyte_connector_input_literal_bytes",
                                                    "Size of input literal", {"task_type"}, ByteBuckets())) {}

grpc::Status RpcMetrics::Record(absl::string_view operation, const std::string& task_type,
                                const std::function<grpc::Status()>& handler) {
  in_flight_->Add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
  }
  const absl::Time start = clock_->Now();
  const grpc::Status status = handler();
  const double seconds = absl::ToDoubleSeconds(clock_->Now() - start);
  in_flight_->Add(-1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--calls_ == 0) idle_.notify_all();
  }
  const std::string op(operation);
  const std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  requests_->Get({task_type, op, code})->Increment();
  duration_->Get({task_type, op, code})->Observe(seconds);
  if (IsConnectorOperation(operation)) {
    connector_latency_->Get({task_type, op})->Observe(seconds);
    if (status.ok()) {
      connector_success_->Get({task_type, op})->Increment();
    } else {
      connector_failure_->Get({task_type, op, absl::StrCat(HttpStatusOf(status.error_code()))})->Increment();
    }
  }
  return status;
}

bool RpcMetrics::WaitUntilIdle(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  while (calls_ > 0) {
    const absl::Duration left = deadline - clock_->Now();
    if (left <= absl::ZeroDuration()) return false;
    // A real-time wait for the clock's remaining time, bounded so that a moved fake clock is noticed.
    idle_.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Milliseconds(100))));
  }
  return true;
}

void RpcMetrics::ObserveInputBytes(const std::string& task_type, int64_t bytes) {
  connector_input_bytes_->Get({task_type})->Observe(static_cast<double>(bytes));
}

int RpcMetrics::HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:  // UNKNOWN, INTERNAL, DATA_LOSS
      return 500;
  }
}

}  // namespace fna::server
