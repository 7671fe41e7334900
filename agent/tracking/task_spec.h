#ifndef FNA_AGENT_TRACKING_TASK_SPEC_H_
#define FNA_AGENT_TRACKING_TASK_SPEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/executor/executor.h"
#include "flyteidl/admin/agent.pb.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The value of the rendered `--raw-output-data-prefix` argument ("--flag value" or "--flag=value"), else "".
std::string RawOutputPrefixFromArgs(const flyteidl::core::Container& container);

// What the executor runs for a task: the container's command and rendered args, and its environment, in order
// (later entries win): the template's env, the execution's env, the FLYTE_INTERNAL_* ids pyflyte-execute
// reads, FLYTE_ATTEMPT_NUMBER, and, unless tracking is disabled, NEPTUNE_PROJECT and NEPTUNE_CUSTOM_RUN_ID so
// that neptune.init_run() in user code attaches to the agent's run. Never a token. Pure; the spec points to
// `request`, which must outlive its use. InvalidArgument for
// a container with nothing to run.
absl::StatusOr<executor::TaskSpec> BuildTaskSpec(const flyteidl::admin::CreateTaskRequest& request,
                                                 const ResourceMeta& meta);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_TASK_SPEC_H_
