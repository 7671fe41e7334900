#include "agent/tracking/fields.h"

#include <map>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fna::tracking {
namespace {

using neptune::FieldValue;
using neptune::StringSet;

std::map<std::string, FieldValue> AsMap(const std::vector<neptune::Field>& fields) {
  std::map<std::string, FieldValue> map;
  for (const auto& field : fields) {
    EXPECT_TRUE(map.emplace(field.path, field.value).second) << "duplicate " << field.path;
  }
  return map;
}

ResourceMeta Meta() {
  ResourceMeta meta;
  meta.set_execution_id("f6c5-n0-0-abcdefghij");
  meta.set_custom_run_id("f6c5-abcdefghijklmnop");
  meta.set_output_prefix("s3://b/m/flytesnacks-development-f6c5/n0/data/0");
  FlyteIds* ids = meta.mutable_ids();
  ids->set_project("flytesnacks");
  ids->set_domain("development");
  ids->set_execution_name("f6c5");
  ids->set_node_id("n0");
  ids->set_retry_attempt(1);
  ids->set_task_project("flytesnacks");
  ids->set_task_domain("development");
  ids->set_task_name("wf.train");
  ids->set_task_version("v1");
  ids->set_task_type("neptune");
  ids->set_workflow("wf");
  ids->set_namespace_("flytesnacks-development");
  ids->set_service_account("default");
  ids->set_image("img:1");
  ids->set_raw_output_prefix("s3://b/raw");
  meta.mutable_settings()->set_project("ws/p");
  meta.mutable_settings()->set_description("desc");
  meta.mutable_settings()->add_tags("flyte");
  return meta;
}

TEST(FieldsTest, InitialFieldsHaveExactNamesAndTypes) {
  auto fields = AsMap(InitialFields(Meta(), "https://flyte.example.com/console", "/work/dir"));
  const std::map<std::string, FieldValue> expected = {
      {"sys/name", std::string("f6c5-n0-0-abcdefghij")},
      {"sys/description", std::string("desc")},
      {"sys/tags", StringSet{{"flyte"}}},
      {"sys/group_tags", StringSet{{"f6c5"}}},
      {"sys/failed", false},
      {"flyte/execution_id", std::string("f6c5-n0-0-abcdefghij")},
      {"flyte/project", std::string("flytesnacks")},
      {"flyte/domain", std::string("development")},
      {"flyte/name", std::string("f6c5")},
      {"flyte/raw_output_prefix", std::string("s3://b/raw")},
      {"flyte/output_metadata_prefix", std::string("s3://b/m/flytesnacks-development-f6c5/n0/data/0")},
      {"flyte/working_directory", std::string("/work/dir")},
      {"flyte/execution_url",
       std::string(
           "https://flyte.example.com/console/projects/flytesnacks/domains/development/executions/f6c5")},
      {"flyte/task/name", std::string("wf.train")},
      {"flyte/task/project", std::string("flytesnacks")},
      {"flyte/task/domain", std::string("development")},
      {"flyte/task/version", std::string("v1")},
      {"flyte/node_id", std::string("n0")},
      {"flyte/retry_attempt", int64_t{1}},
      {"flyte/workflow", std::string("wf")},
      {"flyte/namespace", std::string("flytesnacks-development")},
      {"flyte/service_account", std::string("default")},
      {"flyte/image", std::string("img:1")},
      {"flyte/task/type", std::string("neptune")},
  };
  EXPECT_EQ(fields, expected);
}

TEST(FieldsTest, ExecutionUrlAndWorkingDirectoryOmittedWhenUnknown) {
  auto fields = AsMap(InitialFields(Meta(), "", ""));
  EXPECT_EQ(fields.count("flyte/execution_url"), 0u);
  EXPECT_EQ(fields.count("flyte/working_directory"), 0u);
}

TEST(FieldsTest, NameSettingWins) {
  ResourceMeta meta = Meta();
  meta.mutable_settings()->set_name("my run");
  EXPECT_EQ(std::get<std::string>(AsMap(InitialFields(meta, "", ""))["sys/name"]), "my run");
}

TEST(FieldsTest, FinalFieldsOfAFailure) {
  RunOutcome outcome;
  outcome.set_phase("RETRYABLE_FAILED");
  outcome.set_error("[x] terminated with exit code (3)");
  outcome.set_has_exit_code(true);
  outcome.set_exit_code(3);
  outcome.set_started_at_ms(1767225600000);
  outcome.set_finished_at_ms(1767225612500);
  outcome.set_working_directory("/w");
  const std::map<std::string, FieldValue> expected = {
      {"sys/name", std::string("f6c5-n0-0-abcdefghij")},
      {"sys/description", std::string("desc")},
      {"sys/failed", true},
      {"flyte/phase", std::string("RETRYABLE_FAILED")},
      {"flyte/started_at", absl::FromUnixMillis(1767225600000)},
      {"flyte/finished_at", absl::FromUnixMillis(1767225612500)},
      {"flyte/duration_seconds", 12.5},
      {"flyte/exit_code", int64_t{3}},
      {"flyte/error", std::string("[x] terminated with exit code (3)")},
      {"flyte/working_directory", std::string("/w")},
  };
  EXPECT_EQ(AsMap(FinalFields(Meta(), outcome)), expected);
}

TEST(FieldsTest, FinalFieldsOfASuccessHaveNoErrorNorExitCodeWhenUnknown) {
  RunOutcome outcome;
  outcome.set_phase("SUCCEEDED");
  auto fields = AsMap(FinalFields(Meta(), outcome));
  EXPECT_EQ(std::get<bool>(fields["sys/failed"]), false);
  EXPECT_EQ(fields.count("flyte/error"), 0u);
  EXPECT_EQ(fields.count("flyte/exit_code"), 0u);
  EXPECT_EQ(fields.count("flyte/duration_seconds"), 0u);
  EXPECT_EQ(std::get<bool>(fields["flyte/error_file_checked"]), false);
}

TEST(FieldsTest, ErrorFileCheckedIsRecordedAfterAnExitZeroOnly) {
  RunOutcome from_error_file;
  from_error_file.set_phase("FAILED");
  from_error_file.set_error("USER:ValueError: boom");
  from_error_file.set_error_file_checked(true);
  EXPECT_EQ(std::get<bool>(AsMap(FinalFields(Meta(), from_error_file))["flyte/error_file_checked"]), true);
  RunOutcome checked_success;
  checked_success.set_phase("SUCCEEDED");
  checked_success.set_error_file_checked(true);
  EXPECT_EQ(std::get<bool>(AsMap(FinalFields(Meta(), checked_success))["flyte/error_file_checked"]), true);
  RunOutcome aborted;
  aborted.set_phase("ABORTED");
  EXPECT_EQ(AsMap(FinalFields(Meta(), aborted)).count("flyte/error_file_checked"), 0u);
}

}  // namespace
}  // namespace fna::tracking
