#include "agent/executor/executor.h"

namespace fna::executor {

bool IsTerminal(TaskState state) {
  switch (state) {
    case TaskState::kPending:
    case TaskState::kRunning:
      return false;
    case TaskState::kSucceeded:
    case TaskState::kFailed:
    case TaskState::kRetryableFailed:
    case TaskState::kAborted:
      return true;
  }
  return false;
}

absl::string_view TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kPending:
      return "PENDING";
    case TaskState::kRunning:
      return "RUNNING";
    case TaskState::kSucceeded:
      return "SUCCEEDED";
    case TaskState::kFailed:
      return "FAILED";
    case TaskState::kRetryableFailed:
      return "RETRYABLE_FAILED";
    case TaskState::kAborted:
      return "ABORTED";
  }
  return "UNKNOWN";
}

}  // namespace fna::executor
