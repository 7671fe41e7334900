#ifndef FNA_AGENT_EXECUTOR_INSTRUMENTED_EXECUTOR_H_
#define FNA_AGENT_EXECUTOR_INSTRUMENTED_EXECUTOR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/clock.h"
#include "agent/executor/executor.h"
#include "agent/metrics/metrics.h"

namespace fna::executor {

// An Executor that forwards every call to another one and records it, whatever the implementation (process,
// Kubernetes):
//   flyte_neptune_agent_executor_calls_total{operation,code}          by status code ("OK", "NOT_FOUND", ...)
//   flyte_neptune_agent_executor_call_duration_seconds{operation}
// Operations: start, get_status, abort, mark_run_finalized, record_pending_final_write,
// list_pending_final_writes, read_logs. Ready() is forwarded unrecorded.
//
// Thread-safe as `inner` is. `inner`, `registry` and `clock` are not owned and must outlive this.
class InstrumentedExecutor final : public Executor {
 public:
  InstrumentedExecutor(Executor* inner, metrics::Registry* registry, const Clock* clock);

  absl::Status Start(const TaskSpec& spec) override;
  absl::StatusOr<TaskStatus> GetStatus(const TaskRef& task) override;
  absl::Status Abort(const TaskRef& task) override;
  absl::Status MarkRunFinalized(const TaskRef& task) override;
  absl::Status RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) override;
  absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() override;
  absl::StatusOr<LogBatch> ReadLogs(const TaskRef& task, const LogQuery& query) override;
  bool Ready() const override { return inner_->Ready(); }

 private:
  // Records one call of `operation` that started at `start` and ended with `status`.
  void Record(absl::string_view operation, absl::Time start, const absl::Status& status);

  Executor* const inner_;
  const Clock* const clock_;
  metrics::Family<metrics::Counter>* const calls_;
  metrics::Family<metrics::Histogram>* const duration_;
};

}  // namespace fna::executor

#endif  // FNA_AGENT_EXECUTOR_INSTRUMENTED_EXECUTOR_H_
