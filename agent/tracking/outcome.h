#ifndef FNA_AGENT_TRACKING_OUTCOME_H_
#define FNA_AGENT_TRACKING_OUTCOME_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "agent/config/config.h"
#include "agent/executor/executor.h"
#include "flyteidl/admin/agent.pb.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The values of flyte/phase.
inline constexpr char kPhaseSucceeded[] = "SUCCEEDED";
inline constexpr char kPhaseFailed[] = "FAILED";
inline constexpr char kPhaseAborted[] = "ABORTED";
inline constexpr char kPhaseRetryableFailed[] = "RETRYABLE_FAILED";
inline constexpr char kPhaseTimedOut[] = "TIMED_OUT";

// What error.pb told, when it could be read.
struct ErrorFile {
  bool checked = false;  // false: the output store could not look (scheme unsupported, read error)
  std::optional<std::string> bytes;  // the file's contents when it exists
};

// The run's outcome for a terminal executor status (design.md §4, "Outcome"): flytekit exits 0 on a user
// error and writes error.pb, so an exit 0 with an error.pb is FAILED (RETRYABLE_FAILED for a recoverable
// error) with the ErrorDocument's message. Pure.
RunOutcome OutcomeFromStatus(const executor::TaskStatus& status, const ErrorFile& error_file);

// The outcome of an abort at `now`: TIMED_OUT when the task's timeout had elapsed since it was created
// (propeller enforces timeouts by aborting), ABORTED otherwise. Pure.
RunOutcome OutcomeOfAbort(const ResourceMeta& meta, const executor::TaskStatus* status, absl::Time now);

// The Flyte phase GetTask reports for an executor state. An exit 0 is SUCCEEDED even with an error.pb:
// propeller reads error.pb itself and fails the task honouring its retryability.
flyteidl::core::TaskExecution::Phase FlytePhase(executor::TaskState state);

// Sets the phase on `resource` so every propeller from 1.13 to 1.16 understands it: a retryable failure is
// RETRYABLE_FAILED (1.16+) or, in kState mode, phase UNDEFINED with state RETRYABLE_FAILURE. Every other
// phase is set explicitly (an unset phase with an unset state reads as a retryable failure).
void SetPhase(flyteidl::core::TaskExecution::Phase phase, RetryableFailureMode mode,
              flyteidl::admin::Resource* resource);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_OUTCOME_H_
