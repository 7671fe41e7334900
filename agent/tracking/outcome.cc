#include "agent/tracking/outcome.h"

#include "absl/strings/str_cat.h"
#include "flyteidl/core/errors.pb.h"

namespace fna::tracking {

using executor::TaskState;
using flyteidl::core::TaskExecution;

namespace {

int64_t Millis(const std::optional<absl::Time>& t) { return t.has_value() ? absl::ToUnixMillis(*t) : 0; }

void CopyTimes(const executor::TaskStatus& status, RunOutcome* outcome) {
  outcome->set_started_at_ms(Millis(status.started_at));
  outcome->set_finished_at_ms(Millis(status.finished_at));
  outcome->set_working_directory(status.working_directory);
  if (status.exit_code.has_value()) {
    outcome->set_has_exit_code(true);
    outcome->set_exit_code(*status.exit_code);
  }
}

}  // namespace

RunOutcome OutcomeFromStatus(const executor::TaskStatus& status, const ErrorFile& error_file) {
  RunOutcome outcome;
  CopyTimes(status, &outcome);
  outcome.set_error_file_checked(error_file.checked);
  switch (status.state) {
    case TaskState::kSucceeded:
      if (error_file.bytes.has_value()) {
        flyteidl::core::ErrorDocument document;
        if (!document.ParseFromString(*error_file.bytes)) {
          outcome.set_phase(kPhaseFailed);
          outcome.set_error("the task wrote an error.pb that is not a flyteidl.core.ErrorDocument");
        } else {
          const auto& error = document.error();
          outcome.set_phase(error.kind() == flyteidl::core::ContainerError::RECOVERABLE
                                ? kPhaseRetryableFailed
                                : kPhaseFailed);
          outcome.set_error(error.code().empty() ? error.message()
                                                 : absl::StrCat(error.code(), ": ", error.message()));
        }
      } else {
        outcome.set_phase(kPhaseSucceeded);
      }
      break;
    case TaskState::kFailed:
      outcome.set_phase(kPhaseFailed);
      outcome.set_error(status.message);
      break;
    case TaskState::kRetryableFailed:
      outcome.set_phase(kPhaseRetryableFailed);
      outcome.set_error(status.message);
      break;
    case TaskState::kAborted:
      outcome.set_phase(kPhaseAborted);
      outcome.set_error(status.message.empty() ? "aborted" : status.message);
      break;
    case TaskState::kPending:
    case TaskState::kRunning:
      // Not terminal: callers only ask for terminal states.
      outcome.set_phase(kPhaseFailed);
      outcome.set_error("internal: outcome requested for a running task");
      break;
  }
  return outcome;
}

RunOutcome OutcomeOfAbort(const ResourceMeta& meta, const executor::TaskStatus* status, absl::Time now) {
  RunOutcome outcome;
  if (status != nullptr) CopyTimes(*status, &outcome);
  if (outcome.finished_at_ms() == 0) outcome.set_finished_at_ms(absl::ToUnixMillis(now));
  const absl::Duration elapsed = now - absl::FromUnixMillis(meta.created_at_ms());
  if (meta.timeout_ms() > 0 && elapsed >= absl::Milliseconds(meta.timeout_ms())) {
    outcome.set_phase(kPhaseTimedOut);
    outcome.set_error(absl::StrCat("timed out: aborted by Flyte after the task's timeout of ",
                                   absl::FormatDuration(absl::Milliseconds(meta.timeout_ms()))));
  } else {
    outcome.set_phase(kPhaseAborted);
    outcome.set_error("aborted by Flyte");
  }
  return outcome;
}

TaskExecution::Phase FlytePhase(TaskState state) {
  switch (state) {
    case TaskState::kPending:
      return TaskExecution::QUEUED;
    case TaskState::kRunning:
      return TaskExecution::RUNNING;
    case TaskState::kSucceeded:
      return TaskExecution::SUCCEEDED;
    case TaskState::kFailed:
      return TaskExecution::FAILED;
    case TaskState::kRetryableFailed:
      return TaskExecution::RETRYABLE_FAILED;
    case TaskState::kAborted:
      return TaskExecution::ABORTED;
  }
  return TaskExecution::FAILED;
}

void SetPhase(TaskExecution::Phase phase, RetryableFailureMode mode, flyteidl::admin::Resource* resource) {
  if (phase == TaskExecution::RETRYABLE_FAILED && mode == RetryableFailureMode::kState) {
    resource->set_phase(TaskExecution::UNDEFINED);
    resource->set_state(flyteidl::admin::RETRYABLE_FAILURE);
    return;
  }
  resource->set_phase(phase);
  switch (phase) {
    case TaskExecution::SUCCEEDED:
      resource->set_state(flyteidl::admin::SUCCEEDED);
      break;
    case TaskExecution::FAILED:
    case TaskExecution::ABORTED:
      resource->set_state(flyteidl::admin::PERMANENT_FAILURE);
      break;
    case TaskExecution::RUNNING:
      resource->set_state(flyteidl::admin::RUNNING);
      break;
    case TaskExecution::RETRYABLE_FAILED:
      resource->set_state(flyteidl::admin::RETRYABLE_FAILURE);
      break;
    default:
      resource->set_state(flyteidl::admin::PENDING);
      break;
  }
}

}  // namespace fna::tracking
