// The agent binary against a Neptune 2.x server (the strict emulator): the run's typed fields, the link, and
// Neptune being down while tasks are created, with the agent restarted in between.

#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "agent/testing/flyte_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/agent_process.h"
#include "tests/neptune_emulator/emulator.h"

namespace fna::e2e {
namespace {

using flyteidl::core::TaskExecution;
using neptune_emulator::NeptuneEmulator;

class AgentNeptuneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NeptuneEmulator::Options options;
    options.projects = {{"ml/flyte", "FLY"}};
    auto emulator = NeptuneEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    WriteFile(dir_.path() + "/token", emulator_->api_token() + "\n");
  }

  std::unique_ptr<AgentProcess> StartAgent() {
    auto agent = std::make_unique<AgentProcess>(
        dir_.path(),
        std::vector<std::string>{
            "--tracker.kind=neptune", "--tracker.neptune.api_token_file=" + dir_.path() + "/token",
            "--tracking.default_project=ml/flyte", "--tracking.finalize_grace=" + finalize_grace_,
            "--flyte.console_url=https://flyte.example.com/console",
            "--executor.process.state_directory=" + dir_.path() + "/state"});
    EXPECT_TRUE(agent->ok()) << agent->Logs();
    return agent;
  }

  flyteidl::admin::CreateTaskRequest Request(const std::string& script) {
    auto request = MakeCreateRequest("n0", 0, "file://" + dir_.path() + "/outputs/n0/data/0");
    auto* container = request.mutable_template_()->mutable_container();
    container->clear_command();
    container->clear_args();
    container->add_command("/bin/sh");
    container->add_command("-c");
    container->add_args(script);
    return request;
  }

  TempDir dir_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::string finalize_grace_ = "2m";
};

TEST_F(AgentNeptuneTest, SucceedingTaskIsRecordedWithTypedFields) {
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(Request("echo hello"));
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  ASSERT_EQ(resource.log_links_size(), 1);
  auto run = emulator_->RunByCustomId("ml/flyte", CustomRunId(resource));
  ASSERT_TRUE(run.has_value());
  EXPECT_THAT(resource.log_links(0).uri(), ::testing::EndsWith("/ml/flyte/e/" + run->short_id));
  // Every field of design.md §4 with its type (flyte/execution_url needs a console URL; flyte/error a
  // failure).
  const std::string execution_id = run->attributes.at("flyte/execution_id").value;
  const std::map<std::string, std::pair<std::string, nlohmann::json>> expected = {
      {"sys/name", {"string", execution_id}},
      {"sys/description", {"string", ""}},
      {"sys/tags", {"stringSet", {"flyte"}}},
      {"sys/group_tags", {"stringSet", {"f6c5d2a1b9e8a4c3d2b1"}}},
      {"sys/failed", {"bool", false}},
      {"flyte/execution_id", {"string", execution_id}},
      {"flyte/project", {"string", "flytesnacks"}},
      {"flyte/domain", {"string", "development"}},
      {"flyte/name", {"string", "f6c5d2a1b9e8a4c3d2b1"}},
      {"flyte/raw_output_prefix", {"string", ""}},
      {"flyte/output_metadata_prefix", {"string", "file://" + dir_.path() + "/outputs/n0/data/0"}},
      {"flyte/working_directory", {"string", dir_.path() + "/state/" + execution_id + "/work"}},
      {"flyte/execution_url",
       {"string",
        "https://flyte.example.com/console/projects/flytesnacks/domains/development/executions/"
        "f6c5d2a1b9e8a4c3d2b1"}},
      {"flyte/task/name", {"string", "workflows.train.train_model"}},
      {"flyte/task/project", {"string", "flytesnacks"}},
      {"flyte/task/domain", {"string", "development"}},
      {"flyte/task/version", {"string", "v1"}},
      {"flyte/task/type", {"string", "neptune"}},
      {"flyte/node_id", {"string", "n0"}},
      {"flyte/retry_attempt", {"int", 0}},
      {"flyte/workflow", {"string", "workflows-train-training-wf"}},
      {"flyte/namespace", {"string", "flytesnacks-development"}},
      {"flyte/service_account", {"string", "default"}},
      {"flyte/image", {"string", "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"}},
      {"flyte/phase", {"string", "SUCCEEDED"}},
      {"flyte/exit_code", {"int", 0}},
  };
  for (const auto& [path, type_value] : expected) {
    ASSERT_EQ(run->attributes.count(path), 1u) << path;
    EXPECT_EQ(run->attributes.at(path).type, type_value.first) << path;
    EXPECT_EQ(run->attributes.at(path).value, type_value.second) << path;
  }
  for (const char* path : {"flyte/started_at", "flyte/finished_at"}) {
    EXPECT_EQ(run->attributes.at(path).type, "datetime") << path;
  }
  EXPECT_LE(run->attributes.at("flyte/started_at").value, run->attributes.at("flyte/finished_at").value);
  EXPECT_EQ(run->attributes.at("flyte/duration_seconds").type, "float");
  EXPECT_EQ(agent->Stop(), 0);
  EXPECT_EQ(agent->Logs().find(emulator_->api_token()), std::string::npos);
}

TEST_F(AgentNeptuneTest, NeptuneDownAtCreateAndAgentRestartedLosesNothing) {
  const std::string go = dir_.path() + "/go";
  const auto request = Request("while [ ! -e " + go + " ]; do sleep 0.05; done");
  emulator_->SetOutage(neptune_emulator::Outage::kUnavailable);
  std::string meta;
  {
    auto agent = StartAgent();
    const absl::Time before = absl::Now();
    meta = agent->CreateTask(request);  // the task starts anyway, within CreateTask's budget
    EXPECT_LT(absl::Now() - before, absl::Seconds(5));
    const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::RUNNING);
    EXPECT_THAT(resource.message(), ::testing::HasSubstr("Neptune run not created yet"));
    EXPECT_EQ(resource.log_links_size(), 1);  // the fallback link, from the first response
    agent->Kill();
  }
  emulator_->SetOutage(neptune_emulator::Outage::kNone);
  auto agent = StartAgent();
  WriteFile(go, "");
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  const auto runs = emulator_->Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].custom_id, CustomRunId(resource));
  EXPECT_EQ(runs[0].attributes.at("flyte/phase").value, "SUCCEEDED");
  EXPECT_EQ(runs[0].attributes.at("flyte/name").value, "f6c5d2a1b9e8a4c3d2b1");
}

TEST_F(AgentNeptuneTest, NeptuneDownAtTheEndHoldsThePhaseThenFinishesInTheBackground) {
  finalize_grace_ = "1s";
  const std::string go = dir_.path() + "/go";
  auto agent = StartAgent();
  const std::string meta =
      agent->CreateTask(Request("while [ ! -e " + go + " ]; do sleep 0.05; done; exit 3"));
  const std::string custom_id = CustomRunId(agent->PollPhase(meta, TaskExecution::RUNNING));
  emulator_->SetOutage(neptune_emulator::Outage::kUnavailable);
  WriteFile(go, "");
  // Held back while the final write fails, then reported once the grace has passed.
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::RETRYABLE_FAILED);
  EXPECT_THAT(resource.message(), ::testing::HasSubstr("retrying in the background"));
  auto run = emulator_->RunByCustomId("ml/flyte", custom_id);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->attributes.count("flyte/phase"), 0u);
  // Neptune comes back: the background writer finishes the run without any further GetTask.
  emulator_->SetOutage(neptune_emulator::Outage::kNone);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    run = emulator_->RunByCustomId("ml/flyte", custom_id);
    if (run.has_value() && run->attributes.count("flyte/phase") == 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(run->attributes.count("flyte/phase"), 1u);
  EXPECT_EQ(run->attributes.at("flyte/phase").value, "RETRYABLE_FAILED");
  EXPECT_EQ(run->attributes.at("flyte/exit_code").value, 3);
  EXPECT_EQ(run->attributes.at("sys/failed").value, true);
  EXPECT_EQ(agent->Stop(), 0);
}

TEST_F(AgentNeptuneTest, RoutingRuleTokenIsUsedForItsProjects) {
  // A second workspace token accepted by the emulator; the default token is not used for the rule's project.
  NeptuneEmulator::Options options;
  options.projects = {{"research/exp", "EXP"}};
  options.api_keys = {"research-api-key"};
  auto research = NeptuneEmulator::Start(options);
  ASSERT_TRUE(research.ok()) << research.status();
  WriteFile(dir_.path() + "/research-token", (*research)->api_token());
  WriteFile(dir_.path() + "/agent.yaml",
            "tracking:\n  routing_rules:\n    - flyte_project: flytesnacks\n"
            "      default_project: research/exp\n      token_file: " +
                dir_.path() + "/research-token\n");
  auto agent = std::make_unique<AgentProcess>(
      dir_.path(),
      std::vector<std::string>{"--config=" + dir_.path() + "/agent.yaml", "--tracker.kind=neptune",
                               "--tracker.neptune.api_token_file=" + dir_.path() + "/token",
                               "--tracking.default_project=ml/flyte",
                               "--executor.process.state_directory=" + dir_.path() + "/state"});
  ASSERT_TRUE(agent->ok()) << agent->Logs();
  const std::string meta = agent->CreateTask(Request("true"));
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  auto run = (*research)->RunByCustomId("research/exp", CustomRunId(resource));
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->attributes.at("flyte/phase").value, "SUCCEEDED");
  EXPECT_TRUE(emulator_->Runs().empty());
  EXPECT_EQ(agent->Stop(), 0);
  EXPECT_EQ(agent->Logs().find((*research)->api_token()), std::string::npos);
}

}  // namespace
}  // namespace fna::e2e
