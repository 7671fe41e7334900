#ifndef FNA_AGENT_SERVER_RPC_METRICS_H_
#define FNA_AGENT_SERVER_RPC_METRICS_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/metrics/metrics.h"
#include "grpcpp/support/status.h"

namespace fna::server {

// The metrics of the gRPC handlers:
//   flyte_neptune_agent_grpc_requests_total{task_type,operation,code}            calls by gRPC code
//   flyte_neptune_agent_grpc_request_duration_seconds{task_type,operation,code}  their latency
//   flyte_neptune_agent_grpc_requests_in_flight                                   calls being handled now
// and flytekit's connector metrics, with its names and labels, for create/get/delete, so that dashboards
// built for flytekit's connector keep working (flyteorg/flytekit
// flytekit/extend/backend/connector_service.py, commit 45d5531; flytekit's latency and input size are
// Summaries, which expose the same _sum and _count):
//   flyte_connector_requests_success_total{task_type,operation}
//   flyte_connector_requests_failure_total{task_type,operation,error_code}  the HTTP status of the gRPC code
//   flyte_connector_request_latency_seconds{task_type,operation}            successes and failures
//   flyte_connector_input_literal_bytes{task_type}                          CreateTask inputs, when present
// task_type is a type the agent serves, "" when the request names none, else "other": label values stay
// bounded whatever clients send. The calls in flight are also what a drain waits for (WaitUntilIdle).
// Thread-safe; `clock` is not owned and must outlive this.
class RpcMetrics {
 public:
  RpcMetrics(metrics::Registry* registry, const Clock* clock);

  // Runs `handler` (the call `operation` for `task_type`, already bounded) and records its outcome and
  // latency.
  grpc::Status Record(absl::string_view operation, const std::string& task_type,
                      const std::function<grpc::Status()>& handler);

  // The size of a CreateTask's inputs.
  void ObserveInputBytes(const std::string& task_type, int64_t bytes);

  // Blocks until no call is in Record, or until `deadline` of the clock. Returns whether no call is.
  bool WaitUntilIdle(absl::Time deadline);

  // The HTTP status flytekit's connector would report for `code` (grpc-gateway's mapping; flytekit itself
  // only reports 404 and 500).
  static int HttpStatusOf(grpc::StatusCode code);

 private:
  const Clock* const clock_;
  metrics::Family<metrics::Counter>* const requests_;
  metrics::Family<metrics::Histogram>* const duration_;
  metrics::Gauge* const in_flight_;
  metrics::Family<metrics::Counter>* const connector_success_;
  metrics::Family<metrics::Counter>* const connector_failure_;
  metrics::Family<metrics::Histogram>* const connector_latency_;
  metrics::Family<metrics::Histogram>* const connector_input_bytes_;

  std::mutex mu_;
  std::condition_variable idle_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_RPC_METRICS_H_
