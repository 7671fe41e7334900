#ifndef FNA_AGENT_NEPTUNE_OPERATIONS_H_
#define FNA_AGENT_NEPTUNE_OPERATIONS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/neptune/client_limits.h"
#include "agent/neptune/tracker.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {

// Limits the neptune 1.x client applies before anything reaches the server (neptune-protocol.md §3.13, §10).
inline constexpr size_t kMaxOperationsPerRequest = 1000;

// Turns `fields` into the bodies of `executeOperations` requests (JSON arrays, neptune-protocol.md §3.8), as
// the Python client's preprocessor does:
//   - each path is split on '/' and empty segments removed; a path with no segment left is InvalidArgument
//     (and nothing is returned);
//   - string -> assignString {value}, cut to kMaxStringCharacters Unicode characters; int -> assignInt,
//   dropped
//     outside int32; double -> assignFloat, dropped when NaN or infinite; bool -> assignBool; absl::Time ->
//     assignDatetime {valueMilliseconds} (epoch ms, floored), dropped when infinite; StringSet ->
//     insertStrings {values} (dropped when empty); every drop and cut is logged as a warning naming the path;
//   - operations are sorted by path, segment by segment (a stable sort: one path keeps its order);
//     consecutive operations of the same kind on one path are merged: the last assign wins, insertStrings
//     values are unioned in order of first appearance;
//   - the result is split into arrays of at most `max_per_request` operations (at least 1).
// Returns no array when nothing is left to send. Pure apart from the warnings; deterministic.
absl::StatusOr<std::vector<nlohmann::ordered_json>> BuildOperationBatches(
    const std::vector<Field>& fields, size_t max_per_request = kMaxOperationsPerRequest);

// `batch` as a request body: compact JSON, invalid UTF-8 replaced by U+FFFD (never throws).
std::string SerializeBatch(const nlohmann::ordered_json& batch);

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_OPERATIONS_H_
