#include "agent/tracking/resource_meta.h"

#include <string>

#include "agent/tracking/identity.h"
#include "agent/tracking/settings.h"
#include "gtest/gtest.h"
#include "testdata/resource_meta_next.pb.h"

namespace fna::tracking {
namespace {

ResourceMeta SampleMeta() {
  ResourceMeta meta;
  meta.set_execution_id("f6c5d2a1b9e8a4c3d2b1-n0-0-abcdefghij");
  meta.set_custom_run_id("f6c5d2a1b9e8a4c3d2b1-abcdefghijklmno");
  meta.set_output_prefix("s3://bucket/metadata/flytesnacks-development-f6c5d2a1b9e8a4c3d2b1/n0/data/0");
  meta.mutable_ids()->set_project("flytesnacks");
  meta.mutable_ids()->set_retry_attempt(3);
  meta.mutable_settings()->set_project("ws/proj");
  meta.mutable_settings()->add_tags("flyte");
  meta.mutable_settings()->set_routing_rule(-1);
  meta.set_timeout_ms(3600000);
  meta.set_created_at_ms(1767225600000);
  return meta;
}

TEST(ResourceMetaTest, RoundTripsAndSetsVersion) {
  auto bytes = EncodeResourceMeta(SampleMeta());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto meta = DecodeResourceMeta(*bytes);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->version(), kResourceMetaVersion);
  EXPECT_EQ(meta->execution_id(), SampleMeta().execution_id());
  EXPECT_EQ(meta->ids().retry_attempt(), 3u);
  EXPECT_EQ(meta->settings().routing_rule(), -1);
  EXPECT_EQ(meta->timeout_ms(), 3600000);
}

TEST(ResourceMetaTest, MaximalSettingsAndLongestIdsFitTheBudget) {
  ResourceMeta meta = SampleMeta();
  const std::string long_id(63, 'x');
  meta.set_output_prefix("s3://" + std::string(63, 'b') + "/metadata/propeller/" + long_id + "-" + long_id +
                         "-" + long_id + "/" + std::string(63, 'n') + "/data/0/" + std::string(63, 'n') +
                         "/data/0");
  FlyteIds* ids = meta.mutable_ids();
  for (auto* field : {ids->mutable_project(), ids->mutable_domain(), ids->mutable_execution_name(),
                      ids->mutable_task_project(), ids->mutable_task_domain(), ids->mutable_task_version(),
                      ids->mutable_workflow(), ids->mutable_namespace_(), ids->mutable_service_account()}) {
    *field = long_id;
  }
  ids->set_node_id(std::string(63, 'n'));
  ids->set_task_name(std::string(200, 't'));
  ids->set_task_type(std::string(32, 'y'));
  ids->set_image("registry.example.com/team/images/training-image:" + std::string(128, 'v'));
  ids->set_raw_output_prefix("s3://" + std::string(63, 'b') + "/data/" + std::string(100, 'r'));
  RunSettings* settings = meta.mutable_settings();
  settings->set_project(std::string(60, 'w') + "/" + std::string(60, 'p'));
  settings->set_name(std::string(kMaxRunNameLength, 'n'));
  settings->set_description(std::string(kMaxDescriptionLength, 'd'));
  settings->clear_tags();
  for (int i = 0; i < 10; ++i) settings->add_tags(std::string(64, static_cast<char>('a' + i)));
  auto bytes = EncodeResourceMeta(meta);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_LE(bytes->size(), kResourceMetaBudgetBytes);
}

TEST(ResourceMetaTest, OverBudgetIsInvalidArgumentNamingTheSettings) {
  ResourceMeta meta = SampleMeta();
  meta.mutable_settings()->set_description(std::string(kMaxDescriptionLength, 'd'));
  for (size_t i = 0; i < kMaxTags; ++i) meta.mutable_settings()->add_tags(std::string(kMaxTagLength, 't'));
  auto bytes = EncodeResourceMeta(meta);
  ASSERT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bytes.status().message().find("4096-byte budget"), std::string::npos) << bytes.status();
  EXPECT_NE(bytes.status().message().find("description 1024 bytes, tags 4101 bytes"), std::string::npos)
      << bytes.status();
}

TEST(ResourceMetaTest, MalformedBytesAreInvalidArgument) {
  for (const std::string& bad : {std::string(), std::string("{\"job_id\": \"123\"}"),
                                 std::string("\xff\xff\xff", 3), std::string("\x0a\x03", 2)}) {
    auto meta = DecodeResourceMeta(bad);
    EXPECT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // Valid protobuf, but not ours: required ids missing.
  ResourceMeta other;
  other.set_version(1);
  other.set_output_prefix("s3://x");
  EXPECT_EQ(DecodeResourceMeta(other.SerializeAsString()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResourceMetaTest, OlderAgentReadsNewerAgentsBytes) {
  testdata::ResourceMetaNext next;
  next.set_version(2);
  next.set_execution_id("exec-n0-0-abcdefghij");
  next.set_custom_run_id("exec-abcdefghijklmnop");
  next.set_output_prefix("s3://bucket/x/n0/data/0");
  next.mutable_ids()->set_project("flytesnacks");
  next.mutable_ids()->set_cluster("us-east");
  next.mutable_settings()->set_project("ws/proj");
  next.mutable_settings()->set_mode("scale");
  next.set_timeout_ms(60000);
  next.set_scale_run_id("abc");
  next.add_extra("e1");
  auto meta = DecodeResourceMeta(next.SerializeAsString());
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->version(), 2u);
  EXPECT_EQ(meta->execution_id(), "exec-n0-0-abcdefghij");
  EXPECT_EQ(meta->ids().project(), "flytesnacks");
  EXPECT_EQ(meta->settings().project(), "ws/proj");
  EXPECT_EQ(meta->timeout_ms(), 60000);
}

TEST(ResourceMetaTest, NewerAgentReadsOlderAgentsBytes) {
  auto bytes = EncodeResourceMeta(SampleMeta());
  ASSERT_TRUE(bytes.ok());
  testdata::ResourceMetaNext next;
  ASSERT_TRUE(next.ParseFromString(*bytes));
  EXPECT_EQ(next.version(), kResourceMetaVersion);
  EXPECT_EQ(next.execution_id(), SampleMeta().execution_id());
  EXPECT_EQ(next.settings().project(), "ws/proj");
  EXPECT_EQ(next.settings().routing_rule(), -1);
  EXPECT_EQ(next.scale_run_id(), "");  // absent in old bytes: the default
  EXPECT_EQ(next.ids().cluster(), "");
}

}  // namespace
}  // namespace fna::tracking
