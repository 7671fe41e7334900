#include "agent/tracking/settings.h"

#include <string>

#include "agent/testing/flyte_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::tracking {
namespace {

using ::testing::ElementsAre;

class SettingsTest : public ::testing::Test {
 protected:
  absl::StatusOr<RunSettings> Resolve() {
    return ResolveSettings(request_.template_(), request_.task_execution_metadata(), config_);
  }
  void SetCustom(const std::string& key, const std::string& value) {
    auto& neptune = (*request_.mutable_template_()->mutable_custom()->mutable_fields())["neptune"];
    (*neptune.mutable_struct_value()->mutable_fields())[key].set_string_value(value);
  }
  void SetConfig(const std::string& key, const std::string& value) {
    (*request_.mutable_template_()->mutable_config())[key] = value;
  }
  void SetAnnotation(const std::string& key, const std::string& value) {
    (*request_.mutable_task_execution_metadata()->mutable_annotations())[key] = value;
  }

  flyteidl::admin::CreateTaskRequest request_ = MakeCreateRequest();
  AgentConfig config_;
};

TEST_F(SettingsTest, DefaultsComeFromTheAgent) {
  config_.default_tags = {"team-ml"};
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_FALSE(settings->disabled());
  EXPECT_EQ(settings->project(), "local/flyte");
  EXPECT_EQ(settings->name(), "");
  EXPECT_EQ(settings->routing_rule(), -1);
  EXPECT_THAT(settings->tags(), ElementsAre("team-ml", "flyte"));
}

TEST_F(SettingsTest, TemplateCustomBeatsConfigBeatsAnnotations) {
  config_.allowed_projects = {"*"};
  SetAnnotation("neptune.ai/project", "ws/annotated");
  SetAnnotation("neptune.ai/name", "annotated name");
  SetAnnotation("neptune.ai/description", "annotated description");
  SetAnnotation("neptune.ai/tags", "a1, a2");
  SetConfig("neptune.project", "ws/configured");
  SetConfig("neptune.tags", "c1,c2");
  SetCustom("project", "ws/custom");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->project(), "ws/custom");
  EXPECT_EQ(settings->name(), "annotated name");
  EXPECT_EQ(settings->description(), "annotated description");
  EXPECT_THAT(settings->tags(), ElementsAre("c1", "c2", "flyte"));
}

TEST_F(SettingsTest, CustomTagsMayBeAList) {
  auto& neptune = (*request_.mutable_template_()->mutable_custom()->mutable_fields())["neptune"];
  auto* tags = (*neptune.mutable_struct_value()->mutable_fields())["tags"].mutable_list_value();
  tags->add_values()->set_string_value("x");
  tags->add_values()->set_string_value("flyte");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->tags(), ElementsAre("x", "flyte"));
}

TEST_F(SettingsTest, TrackingDisabledByLabel) {
  (*request_.mutable_task_execution_metadata()->mutable_labels())["neptune.ai/tracking"] = "disabled";
  SetCustom("project", "ws/not-allowed-but-irrelevant");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->disabled());
}

TEST_F(SettingsTest, ProjectOutsideTheRuleIsRefused) {
  config_.routing_rules = {RoutingRule{"flytesnacks", "*", {"ml/allowed"}, "ml/default", {"ml"}, ""}};
  SetCustom("project", "other/secret-project");
  auto settings = Resolve();
  ASSERT_EQ(settings.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(settings.status().message(),
            "Neptune project other/secret-project (custom.neptune.project) is not allowed for Flyte project "
            "flytesnacks/development; allowed: ml/default, ml/allowed");
}

TEST_F(SettingsTest, MatchingRuleGivesDefaultProjectAndTags) {
  config_.routing_rules = {
      RoutingRule{"other", "*", {"x/y"}, "", {}, ""},
      RoutingRule{"flytesnacks", "development", {"ml/allowed"}, "ml/default", {"ml"}, ""}};
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->project(), "ml/default");
  EXPECT_EQ(settings->routing_rule(), 1);
  EXPECT_THAT(settings->tags(), ElementsAre("ml", "flyte"));
  SetCustom("project", "ml/allowed");
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->project(), "ml/allowed");
}

TEST_F(SettingsTest, NoRuleMatchedUsesAgentAllowList) {
  config_.routing_rules = {RoutingRule{"other", "*", {"x/y"}, "", {}, ""}};
  SetAnnotation("neptune.ai/project", "ws/annotated");
  auto settings = Resolve();
  ASSERT_EQ(settings.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(settings.status().message().find("(annotation neptune.ai/project)"), std::string::npos)
      << settings.status();
}

TEST_F(SettingsTest, BoundsAreInvalidArgumentNamingTheField) {
  SetCustom("name", std::string(257, 'n'));
  EXPECT_EQ(Resolve().status().message(),
            "neptune name (custom.neptune.name) is 257 characters; the limit is 256");
  SetCustom("name", "ok");
  SetConfig("neptune.description", std::string(1025, 'd'));
  EXPECT_EQ(Resolve().status().message(),
            "neptune description (config neptune.description) is 1025 bytes; the limit is 1024");
  SetConfig("neptune.description", "ok");
  std::string tags;
  for (int i = 0; i < 33; ++i) tags += "t" + std::to_string(i) + ",";
  SetAnnotation("neptune.ai/tags", tags);
  EXPECT_EQ(Resolve().status().message(),
            "neptune tags (annotation neptune.ai/tags) has 33 tags; the limit is 32");
  SetAnnotation("neptune.ai/tags", std::string(129, 'x'));
  EXPECT_EQ(Resolve().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SettingsTest, MalformedSettingsAreInvalidArgument) {
  SetCustom("projekt", "ws/p");
  EXPECT_EQ(
      Resolve().status().message(),
      "task template has unknown setting custom.neptune.projekt; known: project, name, description, tags");
  request_ = MakeCreateRequest();
  config_.allowed_projects = {"*"};
  SetCustom("project", "no-slash");
  EXPECT_EQ(Resolve().status().message(),
            "neptune project \"no-slash\" (custom.neptune.project) is not of the form workspace/project");
  request_ = MakeCreateRequest();
  (*request_.mutable_template_()->mutable_custom()->mutable_fields())["neptune"].set_string_value("ws/p");
  EXPECT_EQ(Resolve().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SettingsTest, NoProjectAnywhereIsFailedPrecondition) {
  config_.default_project = "";
  EXPECT_EQ(Resolve().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fna::tracking
