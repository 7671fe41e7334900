#include "agent/executor/instrumented_executor.h"

#include <utility>

namespace fna::executor {

InstrumentedExecutor::InstrumentedExecutor(Executor* inner, metrics::Registry* registry, const Clock* clock)
    : inner_(inner),
      clock_(clock),
      calls_(
          registry->AddCounter("flyte_neptune_agent_executor_calls_total",
                               "Calls to the executor (what runs the tasks), by operation and status code.",
                               {"operation", "code"})),
      duration_(registry->AddHistogram("flyte_neptune_agent_executor_call_duration_seconds",
                                       "Time a call to the executor took.", {"operation"},
                                       metrics::LatencyBuckets())) {}

void InstrumentedExecutor::Record(absl::string_view operation, absl::Time start, const absl::Status& status) {
  const std::string op(operation);
  calls_->Get({op, absl::StatusCodeToString(status.code())})->Increment();
  duration_->Get({op})->Observe(absl::ToDoubleSeconds(clock_->Now() - start));
}

absl::Status InstrumentedExecutor::Start(const TaskSpec& spec) {
  const absl::Time start = clock_->Now();
  absl::Status status = inner_->Start(spec);
  Record("start", start, status);
  return status;
}

absl::StatusOr<TaskStatus> InstrumentedExecutor::GetStatus(const TaskRef& task) {
  const absl::Time start = clock_->Now();
  absl::StatusOr<TaskStatus> status = inner_->GetStatus(task);
  Record("get_status", start, status.status());
  return status;
}

absl::Status InstrumentedExecutor::Abort(const TaskRef& task) {
  const absl::Time start = clock_->Now();
  absl::Status status = inner_->Abort(task);
  Record("abort", start, status);
  return status;
}

absl::Status InstrumentedExecutor::MarkRunFinalized(const TaskRef& task) {
  const absl::Time start = clock_->Now();
  absl::Status status = inner_->MarkRunFinalized(task);
  Record("mark_run_finalized", start, status);
  return status;
}

absl::Status InstrumentedExecutor::RecordPendingFinalWrite(const TaskRef& task, absl::string_view record) {
  const absl::Time start = clock_->Now();
  absl::Status status = inner_->RecordPendingFinalWrite(task, record);
  Record("record_pending_final_write", start, status);
  return status;
}

absl::StatusOr<std::vector<std::string>> InstrumentedExecutor::ListPendingFinalWrites() {
  const absl::Time start = clock_->Now();
  absl::StatusOr<std::vector<std::string>> records = inner_->ListPendingFinalWrites();
  Record("list_pending_final_writes", start, records.status());
  return records;
}

absl::StatusOr<LogBatch> InstrumentedExecutor::ReadLogs(const TaskRef& task, const LogQuery& query) {
  const absl::Time start = clock_->Now();
  absl::StatusOr<LogBatch> batch = inner_->ReadLogs(task, query);
  Record("read_logs", start, batch.status());
  return batch;
}

}  // namespace fna::executor
