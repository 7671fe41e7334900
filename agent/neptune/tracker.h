#ifndef FNA_AGENT_NEPTUNE_TRACKER_H_
#define FNA_AGENT_NEPTUNE_TRACKER_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fna::neptune {

// A set of strings written as a union (`insertStrings` online, `AddStrings` offline): sys/tags,
// sys/group_tags.
struct StringSet {
  std::vector<std::string> values;
  friend bool operator==(const StringSet& a, const StringSet& b) { return a.values == b.values; }
};

// A typed attribute value as Neptune 2.x stores it: string, int, float, bool, datetime, string set.
using FieldValue = std::variant<std::string, int64_t, double, bool, absl::Time, StringSet>;

// One attribute of a run, e.g. {"flyte/project", std::string("flytesnacks")}. Writes are plain assigns
// (string sets: unions), so writing the same field twice is safe.
struct Field {
  std::string path;  // segments joined with '/'
  FieldValue value;
};

// Which run, in which Neptune project, reached with which credentials.
struct RunRef {
  std::string project;        // "workspace/project"
  std::string custom_run_id;  // the idempotency key of the run (design.md §3.2)
  int routing_rule = -1;      // the routing rule whose token to use; -1 for the agent's default
};

struct RunInfo {
  std::string run_id;  // Neptune's id for the run (the short id, e.g. "PROJ-12"; offline: the container uuid)
  std::string url;     // a direct link to the run (offline: the file:// URL of its directory)
};

// The seam between the lifecycle and a Neptune backend (offline directory, 2.x REST API, ...).
//
// Thread safety: implementations are safe for concurrent use, including concurrent calls for the same run.
// Secrets: implementations hold their tokens; nothing they return (status messages included) contains one.
class Tracker {
 public:
  virtual ~Tracker() = default;

  // Creates the run `ref.custom_run_id` in `ref.project` with `fields` as its first values, or finds the run
  // an earlier call created. Idempotent: repeated calls (CreateTask is delivered at least once; creation may
  // be retried from GetTask) give the same run; they may write `fields` again. Gives up at `deadline`
  // (DeadlineExceeded / Unavailable), leaving the caller to retry later.
  virtual absl::StatusOr<RunInfo> CreateRun(const RunRef& ref, const std::vector<Field>& fields,
                                            absl::Time deadline) = 0;

  // Writes `fields` to an existing run. NotFound if the run was never created. Safe to repeat.
  virtual absl::Status Write(const RunRef& ref, const std::vector<Field>& fields, absl::Time deadline) = 0;

  // A link that leads to the run even before it exists or when the backend is unreachable (e.g. a runs table
  // filtered by custom id). Makes no calls.
  virtual std::string FallbackLink(const RunRef& ref) const = 0;
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_TRACKER_H_
