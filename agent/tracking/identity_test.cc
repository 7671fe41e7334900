#include "agent/tracking/identity.h"

#include <regex>
#include <string>

#include "gtest/gtest.h"

namespace fna::tracking {
namespace {

bool IsDns1123Label(const std::string& s) {
  return s.size() <= 63 && std::regex_match(s, std::regex("[a-z0-9]([-a-z0-9]*[a-z0-9])?"));
}

TEST(IdentityTest, IsDeterministic) {
  const auto a = DeriveIdentity("f6c5d2a1b9e8a4c3d2b1", "n0", 0, "s3://bucket/meta/p-d-f6c5/n0/data/0");
  const auto b = DeriveIdentity("f6c5d2a1b9e8a4c3d2b1", "n0", 0, "s3://bucket/meta/p-d-f6c5/n0/data/0");
  EXPECT_EQ(a.execution_id, b.execution_id);
  EXPECT_EQ(a.custom_run_id, b.custom_run_id);
}

TEST(IdentityTest, ReadablePrefixAndShape) {
  const auto id = DeriveIdentity("f6c5d2a1b9e8a4c3d2b1", "n0", 2, "s3://bucket/meta/p-d-f6c5/n0/data/2");
  EXPECT_EQ(id.execution_id.rfind("f6c5d2a1b9e8a4c3d2b1-n0-2-", 0), 0u) << id.execution_id;
  EXPECT_EQ(id.execution_id.size(), std::string("f6c5d2a1b9e8a4c3d2b1-n0-2-").size() + 10);
  EXPECT_TRUE(IsDns1123Label(id.execution_id));
  EXPECT_EQ(id.custom_run_id.rfind("f6c5d2a1b9e8a4c3d2b1-", 0), 0u) << id.custom_run_id;
  EXPECT_EQ(id.custom_run_id.size(), 36u);
}

TEST(IdentityTest, CollidingNodeIdsWithDifferentOutputPrefixesDiffer) {
  // A dynamic task's children reuse node ids; only output_prefix tells them apart.
  const auto a = DeriveIdentity("exec", "dn0", 0, "s3://b/m/p-d-exec/n1/data/0/dn0/data/0");
  const auto b = DeriveIdentity("exec", "dn0", 0, "s3://b/m/p-d-exec/n2/data/0/dn0/data/0");
  EXPECT_NE(a.execution_id, b.execution_id);
  EXPECT_NE(a.custom_run_id, b.custom_run_id);
}

TEST(IdentityTest, LongestRealisticIdsStayWithinLimits) {
  // Execution names are at most 63 characters, node ids (and unique sub-node ids) long, attempts large.
  const std::string execution(63, 'e');
  const std::string node = "very-long-node-id-from-a-deeply-nested-subworkflow-node-" + std::string(40, 'n');
  const std::string prefix = "s3://a-bucket-name-that-is-quite-long/metadata/propeller/project-domain-" +
                             execution + "/" + node + "/data/4294967295/" + node + "/data/0";
  const auto id = DeriveIdentity(execution, node, 4294967295u, prefix);
  EXPECT_LE(id.execution_id.size(), kMaxExecutionIdLength);
  EXPECT_TRUE(IsDns1123Label(id.execution_id)) << id.execution_id;
  EXPECT_LE(id.custom_run_id.size(), kMaxCustomRunIdLength);
  EXPECT_TRUE(std::regex_match(id.custom_run_id, std::regex("[a-z0-9-]+"))) << id.custom_run_id;
}

TEST(IdentityTest, UnsafeCharactersAreReplaced) {
  const auto id = DeriveIdentity("Exec_Name.With.Dots", "Node_ID", 1, "file:///tmp/x");
  EXPECT_EQ(id.execution_id.rfind("exec-name-with-dots-node-id-1-", 0), 0u) << id.execution_id;
  EXPECT_TRUE(IsDns1123Label(id.execution_id));
  EXPECT_TRUE(std::regex_match(id.custom_run_id, std::regex("[a-z0-9-]{1,36}"))) << id.custom_run_id;
}

TEST(IdentityTest, NoReadableCharactersStillGivesAValidLabel) {
  const auto id = DeriveIdentity("___", "...", 0, "prefix");
  EXPECT_TRUE(IsDns1123Label(id.execution_id)) << id.execution_id;
  EXPECT_EQ(id.custom_run_id.size(), 15u);
}

}  // namespace
}  // namespace fna::tracking
