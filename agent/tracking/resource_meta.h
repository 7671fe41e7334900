#ifndef FNA_AGENT_TRACKING_RESOURCE_META_H_
#define FNA_AGENT_TRACKING_RESOURCE_META_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/executor/executor.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The schema version this agent writes (proto/fna/resource_meta.proto). Bumped with each additive change.
inline constexpr uint32_t kResourceMetaVersion = 1;

// resource_meta lives in the FlyteWorkflow object in etcd, once per running task (design.md §3.1).
inline constexpr size_t kResourceMetaBudgetBytes = 4096;

// Serializes `meta` (setting its version). InvalidArgument when it exceeds the budget, naming the largest
// task-chosen settings so the user knows what to shorten.
absl::StatusOr<std::string> EncodeResourceMeta(ResourceMeta meta);

// Parses bytes written by any version of this agent. InvalidArgument, with a message a Flyte user can act on,
// for bytes that are not a resource_meta of this agent (corrupt, or from another agent).
absl::StatusOr<ResourceMeta> DecodeResourceMeta(absl::string_view bytes);

// The executor's handle on the attempt: its execution id, in the execution's namespace.
executor::TaskRef TaskRefOf(const ResourceMeta& meta);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_RESOURCE_META_H_
