#ifndef FNA_AGENT_TRACKING_SETTINGS_H_
#define FNA_AGENT_TRACKING_SETTINGS_H_

#include "absl/status/statusor.h"
#include "agent/config/config.h"
#include "flyteidl/admin/agent.pb.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// Bounds on what a task may set (design.md §3.1).
inline constexpr size_t kMaxRunNameLength = 256;
inline constexpr size_t kMaxDescriptionLength = 1024;
inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagLength = 128;

// The tag every run carries.
inline constexpr char kFlyteTag[] = "flyte";

// Resolves a task's Neptune settings (design.md §5), highest first:
//   1. the task template: `custom.neptune` {project, name, description, tags (list or comma-separated)}, then
//      `config` keys neptune.project, neptune.name, neptune.description, neptune.tags (comma-separated);
//   2. the execution's annotations neptune.ai/project, neptune.ai/name, neptune.ai/description,
//   neptune.ai/tags;
//   3. the first routing rule matching the execution's Flyte project and domain (its default project and
//   tags),
//      else the agent's defaults.
// The label `neptune.ai/tracking: disabled` opts the execution out (settings.disabled()).
//
// Errors: InvalidArgument naming the field for a malformed or over-long value; PermissionDenied when the
// chosen Neptune project is not allowed for the task's Flyte project/domain (never silently replaced).
absl::StatusOr<RunSettings> ResolveSettings(const flyteidl::core::TaskTemplate& task_template,
                                            const flyteidl::admin::TaskExecutionMetadata& metadata,
                                            const AgentConfig& config);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_SETTINGS_H_
