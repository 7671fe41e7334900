#ifndef FNA_AGENT_TESTING_FAKE_TRACKER_H_
#define FNA_AGENT_TESTING_FAKE_TRACKER_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/neptune/tracker.h"

namespace fna {

// An in-memory neptune::Tracker for unit tests, keyed by custom run id. Thread-safe.
//
// CreateRun creates the run on its first success, with run_id "RUN-<n>" (n counts runs from 1) and url
// "https://neptune.test/<project>/e/RUN-<n>", and applies `fields`; later successful calls return the same
// RunInfo and apply nothing. A custom id reused with another project is FailedPrecondition. Write applies
// `fields` (NotFound for a run never created in that project). Applying assigns each path its value; string
// sets are unioned (sorted, deduplicated). FallbackLink is
// "https://neptune.test/<project>/runs?customId=<id>".
//
// Fault injection: an injected failure is returned before the call has any effect (attempts are still
// counted). A standing failure (FailAll*) wins over counted ones (FailNext*).
class FakeTracker final : public neptune::Tracker {
 public:
  struct Run {
    std::string project;
    int routing_rule = -1;  // of the call that created the run
    neptune::RunInfo info;
    std::map<std::string, neptune::FieldValue> fields;  // the latest value of every path
    int create_runs = 0;                                // successful CreateRun calls
    int writes = 0;                                     // successful Write calls
  };

  absl::StatusOr<neptune::RunInfo> CreateRun(const neptune::RunRef& ref,
                                             const std::vector<neptune::Field>& fields,
                                             absl::Time deadline) override;
  absl::Status Write(const neptune::RunRef& ref, const std::vector<neptune::Field>& fields,
                     absl::Time deadline) override;
  std::string FallbackLink(const neptune::RunRef& ref) const override;

  // The run `custom_run_id`, or std::nullopt if it was never created. A copy.
  std::optional<Run> GetRun(absl::string_view custom_run_id) const;
  // The custom ids of all created runs, sorted.
  std::vector<std::string> CustomRunIds() const;
  // Calls made for `custom_run_id`, failed ones included.
  int CreateRunCalls(absl::string_view custom_run_id) const;
  int WriteCalls(absl::string_view custom_run_id) const;

  // The next `n` CreateRun (Write) calls, for any run, fail with `status` (not OK).
  void FailNextCreateRuns(int n, absl::Status status);
  void FailNextWrites(int n, absl::Status status);
  // Every CreateRun (Write) call fails with `status` (not OK) until ClearFailures().
  void FailAllCreateRuns(absl::Status status);
  void FailAllWrites(absl::Status status);
  void ClearFailures();

 private:
  struct Failure {
    int remaining = 0;      // counted failures left
    bool standing = false;  // fail until cleared
    absl::Status status;
  };

  // The injected failure for this call, consuming a counted one; OK when none.
  static absl::Status TakeFailure(Failure& failure);
  static void Apply(const std::vector<neptune::Field>& fields, Run& run);

  mutable std::mutex mu_;
  std::map<std::string, Run, std::less<>> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> create_run_calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> write_calls_ ABSL_GUARDED_BY(mu_);
  Failure create_failure_ ABSL_GUARDED_BY(mu_);
  Failure write_failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fna

#endif  // FNA_AGENT_TESTING_FAKE_TRACKER_H_
