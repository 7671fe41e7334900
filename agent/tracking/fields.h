#ifndef FNA_AGENT_TRACKING_FIELDS_H_
#define FNA_AGENT_TRACKING_FIELDS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/neptune/tracker.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The run's name: the task's setting, else flyte/execution_id.
std::string RunName(const ResourceMeta& meta);

// What a run holds from its creation (design.md §4): sys/name, sys/description, sys/tags, sys/group_tags,
// sys/failed=false, the seed plugin's flyte/* strings and the agent's additional ids. flyte/execution_url
// only with a `console_url`, flyte/working_directory only with a `working_directory`. Pure; deterministic.
std::vector<neptune::Field> InitialFields(const ResourceMeta& meta, absl::string_view console_url,
                                          absl::string_view working_directory);

// What the final write holds: the outcome (flyte/phase, flyte/started_at, flyte/finished_at,
// flyte/duration_seconds, flyte/exit_code, flyte/error, flyte/error_file_checked after an exit 0,
// flyte/working_directory, sys/failed) and,
// re-asserted, sys/name and sys/description, which a client attaching from user code resets to its defaults.
// Plain assigns: writing them twice is harmless.
std::vector<neptune::Field> FinalFields(const ResourceMeta& meta, const RunOutcome& outcome);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_FIELDS_H_
