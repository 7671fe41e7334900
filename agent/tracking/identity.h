#ifndef FNA_AGENT_TRACKING_IDENTITY_H_
#define FNA_AGENT_TRACKING_IDENTITY_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace fna::tracking {

// The two names of one task attempt (design.md §3.2). Both are deterministic functions of the attempt, so a
// repeated CreateTask, another replica or a restarted agent derive the same ones.
//
// (project, domain, execution, node id, attempt) is not unique: nested, dynamic and array nodes reuse node
// ids. `output_prefix` is unique per attempt, so both names end in a hash of it.
struct AttemptIdentity {
  // The Pod-style name: executor identity, flyte/execution_id, default sys/name. A DNS-1123 label of at most
  // kMaxExecutionIdLength characters: readable "<execution>-<node>-<attempt>", shortened, then "-<hash>".
  std::string execution_id;
  // The Neptune custom run id: at most kMaxCustomRunIdLength characters of [a-z0-9-] (the neptune 1.x client
  // silently ignores longer ones, so user code would attach to a different run).
  std::string custom_run_id;
};

inline constexpr size_t kMaxExecutionIdLength = 50;
inline constexpr size_t kMaxCustomRunIdLength = 36;

AttemptIdentity DeriveIdentity(absl::string_view execution_name, absl::string_view node_id,
                               uint32_t retry_attempt, absl::string_view output_prefix);

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_IDENTITY_H_
