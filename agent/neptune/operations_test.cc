#include "agent/neptune/operations.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

using Json = nlohmann::ordered_json;

std::vector<Json> Build(const std::vector<Field>& fields, size_t max = kMaxOperationsPerRequest) {
  auto batches = BuildOperationBatches(fields, max);
  EXPECT_TRUE(batches.ok()) << batches.status();
  return batches.ok() ? *batches : std::vector<Json>{};
}

TEST(OperationsTest, EveryTypeOnTheWire) {
  const std::vector<Json> batches = Build({
      {"flyte/project", std::string("flytesnacks")},
      {"flyte/retry_attempt", int64_t{2}},
      {"flyte/duration_seconds", 1.5},
      {"sys/failed", false},
      {"flyte/started_at", absl::FromUnixMillis(1767225600123)},
      {"sys/tags", StringSet{{"flyte", "agent"}}},
  });
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(SerializeBatch(batches[0]),
            R"([{"path":"flyte/duration_seconds","assignFloat":{"value":1.5}},)"
            R"({"path":"flyte/project","assignString":{"value":"flytesnacks"}},)"
            R"({"path":"flyte/retry_attempt","assignInt":{"value":2}},)"
            R"({"path":"flyte/started_at","assignDatetime":{"valueMilliseconds":1767225600123}},)"
            R"({"path":"sys/failed","assignBool":{"value":false}},)"
            R"({"path":"sys/tags","insertStrings":{"values":["flyte","agent"]}}])");
}

TEST(OperationsTest, SortsBySegmentsAndNormalizesPaths) {
  const std::vector<Json> batches = Build({
      {"a-c", std::string("1")},
      {"/a//b/", std::string("2")},
      {"a", std::string("3")},
  });
  ASSERT_EQ(batches.size(), 1u);
  // Segment order (as the Python client sorts path lists): ["a"] < ["a","b"] < ["a-c"], unlike "a-c" < "a/b".
  EXPECT_EQ(batches[0][0]["path"], "a");
  EXPECT_EQ(batches[0][1]["path"], "a/b");
  EXPECT_EQ(batches[0][2]["path"], "a-c");
}

TEST(OperationsTest, MergesConsecutiveOperationsOnOnePath) {
  const std::vector<Json> batches = Build({
      {"sys/name", std::string("first")},
      {"sys/tags", StringSet{{"a", "b"}}},
      {"flyte/phase", std::string("RUNNING")},
      {"sys/name", std::string("last")},
      {"sys/tags", StringSet{{"b", "c"}}},
      {"flyte/phase", int64_t{3}},  // another kind on the same path: kept, in order
  });
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(SerializeBatch(batches[0]), R"([{"path":"flyte/phase","assignString":{"value":"RUNNING"}},)"
                                        R"({"path":"flyte/phase","assignInt":{"value":3}},)"
                                        R"({"path":"sys/name","assignString":{"value":"last"}},)"
                                        R"({"path":"sys/tags","insertStrings":{"values":["a","b","c"]}}])");
}

TEST(OperationsTest, AppliesTheClientLimits) {
  std::string long_string(16384, 'x');
  long_string += "\xC3\xA9tail";  // the 16385th character is a two-byte one
  const std::vector<Json> batches = Build({
      {"s", long_string},
      {"big", int64_t{std::numeric_limits<int32_t>::max()} + 1},
      {"small", int64_t{std::numeric_limits<int32_t>::min()} - 1},
      {"edge", int64_t{std::numeric_limits<int32_t>::min()}},
      {"nan", std::nan("")},
      {"inf", std::numeric_limits<double>::infinity()},
      {"never", absl::InfiniteFuture()},
      {"empty_set", StringSet{}},
  });
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].size(), 2u);
  EXPECT_EQ(batches[0][0]["path"], "edge");
  EXPECT_EQ(batches[0][1]["assignString"]["value"].get<std::string>(), std::string(16384, 'x'));
}

TEST(OperationsTest, SplitsIntoRequestsOfAtMostTheLimit) {
  std::vector<Field> fields;
  for (int i = 0; i < 2500; ++i) fields.push_back({absl::StrCat("m/", 10000 + i), int64_t{i}});
  const std::vector<Json> batches = Build(fields);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].size(), 1000u);
  EXPECT_EQ(batches[1].size(), 1000u);
  EXPECT_EQ(batches[2].size(), 500u);
  EXPECT_EQ(batches[1][0]["path"], "m/11000");
  EXPECT_EQ(Build(fields, 0).size(), 2500u);  // a limit below 1 means 1
}

TEST(OperationsTest, PathWithoutSegmentsIsInvalid) {
  auto batches = BuildOperationBatches({{"ok", true}, {"//", true}});
  EXPECT_EQ(batches.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Build({}).empty());
}

TEST(OperationsTest, InvalidUtf8IsReplacedNotThrown) {
  const std::vector<Json> batches = Build({{"s", std::string("a\xFF"
                                                             "b")}});
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(SerializeBatch(batches[0]),
            "[{\"path\":\"s\",\"assignString\":{\"value\":\"a\xEF\xBF\xBD"
            "b\"}}]");
}

}  // namespace
}  // namespace fna::neptune
