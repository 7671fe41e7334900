#include "agent/neptune/operations.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/neptune/client_limits.h"

namespace fna::neptune {
namespace {

constexpr absl::string_view kComponent = "neptune";

// One operation before serialization.
struct Op {
  std::vector<std::string> segments;
  std::string path;  // segments joined with '/'
  std::string kind;  // the API key: "assignString", ..., "insertStrings"
  nlohmann::ordered_json payload;
};

void WarnDropped(absl::string_view path, absl::string_view why) {
  Log(LogLevel::kWarning, kComponent, absl::StrCat("field not sent to Neptune: ", why),
      {{"field", std::string(path)}});
}

std::optional<Op> ToOp(const Field& field, std::vector<std::string> segments) {
  Op op;
  op.path = absl::StrJoin(segments, "/");
  op.segments = std::move(segments);
  const bool keep = std::visit(
      [&op](const auto& value) -> bool {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          bool truncated = false;
          const absl::string_view kept = TruncateCharacters(value, kMaxStringCharacters, &truncated);
          if (truncated) {
            Log(LogLevel::kWarning, kComponent,
                absl::StrCat("string value truncated to ", kMaxStringCharacters, " characters"),
                {{"field", op.path}});
          }
          op.kind = "assignString";
          op.payload = {{"value", std::string(kept)}};
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!FitsInt32(value)) {
            WarnDropped(op.path, absl::StrCat("integer ", value, " is outside the 32-bit range"));
            return false;
          }
          op.kind = "assignInt";
          op.payload = {{"value", value}};
        } else if constexpr (std::is_same_v<T, double>) {
          if (!std::isfinite(value)) {
            WarnDropped(op.path, "float is NaN or infinite");
            return false;
          }
          op.kind = "assignFloat";
          op.payload = {{"value", value}};
        } else if constexpr (std::is_same_v<T, bool>) {
          op.kind = "assignBool";
          op.payload = {{"value", value}};
        } else if constexpr (std::is_same_v<T, absl::Time>) {
          if (value == absl::InfiniteFuture() || value == absl::InfinitePast()) {
            WarnDropped(op.path, "datetime is infinite");
            return false;
          }
          op.kind = "assignDatetime";
          op.payload = {{"valueMilliseconds", absl::ToUnixMillis(value)}};
        } else {
          static_assert(std::is_same_v<T, StringSet>);
          if (value.values.empty()) return false;  // a union with nothing changes nothing
          op.kind = "insertStrings";
          op.payload = {{"values", value.values}};
        }
        return true;
      },
      field.value);
  if (!keep) return std::nullopt;
  return op;
}

// Merges `next` into `into` (same path and kind): the last assign wins; sets are unioned.
void Merge(Op& into, Op&& next) {
  if (into.kind != "insertStrings") {
    into.payload = std::move(next.payload);
    return;
  }
  nlohmann::ordered_json& values = into.payload["values"];
  std::set<std::string> seen;
  for (const auto& value : values) seen.insert(value.get<std::string>());
  for (auto& value : next.payload["values"]) {
    if (seen.insert(value.get<std::string>()).second) values.push_back(std::move(value));
  }
}

}  // namespace

absl::StatusOr<std::vector<nlohmann::ordered_json>> BuildOperationBatches(const std::vector<Field>& fields,
                                                                          size_t max_per_request) {
  std::vector<Op> ops;
  ops.reserve(fields.size());
  for (const Field& field : fields) {
    std::vector<std::string> segments = absl::StrSplit(field.path, '/', absl::SkipEmpty());
    if (segments.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field path \"", field.path, "\" has no segments; nothing was written"));
    }
    if (std::optional<Op> op = ToOp(field, std::move(segments)); op.has_value()) {
      ops.push_back(*std::move(op));
    }
  }
  std::stable_sort(ops.begin(), ops.end(), [](const Op& a, const Op& b) { return a.segments < b.segments; });

  std::vector<Op> merged;
  merged.reserve(ops.size());
  for (Op& op : ops) {
    if (!merged.empty() && merged.back().path == op.path && merged.back().kind == op.kind) {
      Merge(merged.back(), std::move(op));
    } else {
      merged.push_back(std::move(op));
    }
  }

  std::vector<nlohmann::ordered_json> batches;
  const size_t per_request = std::max<size_t>(max_per_request, 1);
  for (size_t i = 0; i < merged.size(); ++i) {
    if (i % per_request == 0) batches.push_back(nlohmann::ordered_json::array());
    Op& op = merged[i];
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["path"] = op.path;
    entry[op.kind] = std::move(op.payload);
    batches.back().push_back(std::move(entry));
  }
  return batches;
}

std::string SerializeBatch(const nlohmann::ordered_json& batch) {
  return batch.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace fna::neptune
