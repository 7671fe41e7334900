// The agent end to end: the real binary, its offline tracker and process executor, driven over gRPC as
// propeller drives it (flyte-agent-protocol.md §2).

#include <signal.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/testing/flyte_requests.h"
#include "flyteidl/core/errors.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/agent_process.h"
#include "tests/e2e/offline_run.h"

namespace fna::e2e {
namespace {

using flyteidl::core::TaskExecution;
using ::testing::HasSubstr;

constexpr char kExecution[] = "f6c5d2a1b9e8a4c3d2b1";

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    neptune_dir_ = dir_.path() + "/neptune";
    state_dir_ = dir_.path() + "/state";
    outputs_ = dir_.path() + "/outputs";
    std::filesystem::create_directories(outputs_);
  }

  std::vector<std::string> Args(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"--tracker.offline.directory=" + neptune_dir_,
                                     "--executor.process.state_directory=" + state_dir_,
                                     "--flyte.console_url=https://flyte.example.com/console"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::unique_ptr<AgentProcess> StartAgent(std::vector<std::string> extra = {}) {
    auto agent = std::make_unique<AgentProcess>(dir_.path(), Args(std::move(extra)));
    EXPECT_TRUE(agent->ok()) << agent->Logs();
    return agent;
  }

  std::string OutputPrefix(const std::string& node, int attempt = 0) const {
    return absl::StrCat("file://", outputs_, "/flytesnacks-development-", kExecution, "/", node, "/data/",
                        attempt);
  }

  // The sample request (agent/testing/flyte_requests.h) running `script` under /bin/sh.
  flyteidl::admin::CreateTaskRequest Request(const std::string& script, const std::string& node = "n0",
                                             int attempt = 0) const {
    flyteidl::admin::CreateTaskRequest request =
        MakeCreateRequest(node, attempt, OutputPrefix(node, attempt));
    auto* container = request.mutable_template_()->mutable_container();
    container->clear_command();
    container->clear_args();
    container->add_command("/bin/sh");
    container->add_command("-c");
    container->add_args(script);
    container->add_args("--raw-output-data-prefix");
    container->add_args("s3://my-bucket/raw/" + node);
    return request;
  }

  grpc::Status TryGet(AgentProcess& agent, const std::string& meta, flyteidl::admin::Resource* resource) {
    grpc::ClientContext context;
    flyteidl::admin::GetTaskRequest request;
    request.set_resource_meta(meta);
    request.mutable_task_category()->set_name("neptune");
    request.set_task_type("neptune");
    flyteidl::admin::GetTaskResponse response;
    grpc::Status status = agent.agent().GetTask(&context, request, &response);
    *resource = response.resource();
    return status;
  }

  // Polls GetTask (every 50 ms, at most 30 s) until `done` holds.
  flyteidl::admin::Resource PollUntil(AgentProcess& agent, const std::string& meta,
                                      const std::function<bool(const flyteidl::admin::Resource&)>& done) {
    flyteidl::admin::Resource resource;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      grpc::Status status = TryGet(agent, meta, &resource);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() || done(resource)) return resource;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "GetTask did not reach the expected state; last phase " << resource.phase() << ": "
                  << resource.message();
    return resource;
  }

  flyteidl::admin::Resource PollTerminal(AgentProcess& agent, const std::string& meta) {
    return PollUntil(agent, meta, [](const flyteidl::admin::Resource& r) {
      return r.phase() == TaskExecution::SUCCEEDED || r.phase() == TaskExecution::FAILED ||
             r.phase() == TaskExecution::ABORTED || r.phase() == TaskExecution::RETRYABLE_FAILED;
    });
  }

  grpc::Status Delete(AgentProcess& agent, const std::string& meta) {
    grpc::ClientContext context;
    flyteidl::admin::DeleteTaskRequest request;
    request.set_resource_meta(meta);
    request.mutable_task_category()->set_name("neptune");
    flyteidl::admin::DeleteTaskResponse response;
    return agent.agent().DeleteTask(&context, request, &response);
  }

  std::map<std::string, OfflineRun> Runs() {
    std::vector<std::string> errors;
    auto runs = ReadOfflineRuns(neptune_dir_, &errors);
    EXPECT_THAT(errors, ::testing::IsEmpty());
    return runs;
  }

  OfflineRun OnlyRun() {
    auto runs = Runs();
    EXPECT_EQ(runs.size(), 1u);
    return runs.empty() ? OfflineRun() : runs.begin()->second;
  }

  // Every log line is JSON, and none contains `secret`.
  void ExpectCleanLogs(const AgentProcess& agent, const std::string& secret = "") {
    for (absl::string_view line : absl::StrSplit(agent.Logs(), '\n', absl::SkipEmpty())) {
      EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
      if (!secret.empty()) {
        EXPECT_EQ(line.find(secret), absl::string_view::npos) << line;
      }
    }
  }

  TempDir dir_;
  std::string neptune_dir_, state_dir_, outputs_;
};

TEST_F(AgentE2eTest, SucceedingTaskIsTrackedFieldByField) {
  auto agent = StartAgent();
  const std::string meta =
      agent->CreateTask(Request("echo hello; echo \"$NEPTUNE_CUSTOM_RUN_ID\" > " + dir_.path() + "/run_id"));
  flyteidl::admin::Resource resource = PollTerminal(*agent, meta);
  EXPECT_EQ(resource.phase(), TaskExecution::SUCCEEDED) << resource.message();
  ASSERT_EQ(resource.log_links_size(), 1);
  EXPECT_EQ(resource.log_links(0).name(), "Neptune run");
  EXPECT_TRUE(resource.log_links(0).showwhilepending());

  const OfflineRun run = OnlyRun();
  EXPECT_EQ(resource.log_links(0).uri(), "file://" + run.directory);
  EXPECT_EQ(run.project, "local/flyte");
  EXPECT_EQ(run.metadata["mode"], "offline");
  EXPECT_EQ(run.metadata["containerType"], "run");
  EXPECT_EQ(run.metadata["structureVersion"], 3);
  EXPECT_EQ(run.last_put_version, static_cast<long>(run.records.size()));
  EXPECT_THAT(ReadFile(dir_.path() + "/run_id"), HasSubstr(run.custom_run_id));
  const auto& custom = resource.custom_info().fields().at("neptune").struct_value().fields();
  EXPECT_EQ(custom.at("custom_run_id").string_value(), run.custom_run_id);

  auto field = [&](const std::string& path) {
    return run.fields.count(path) ? run.fields.at(path) : OfflineField{};
  };
  const std::string execution_id = field("flyte/execution_id").value;
  EXPECT_EQ(execution_id.rfind(std::string(kExecution) + "-n0-0-", 0), 0u) << execution_id;
  const std::map<std::string, std::pair<std::string, nlohmann::json>> expected = {
      {"sys/name", {"AssignString", execution_id}},
      {"sys/description", {"AssignString", ""}},
      {"sys/tags", {"AddStrings", {"flyte"}}},
      {"sys/group_tags", {"AddStrings", {kExecution}}},
      {"sys/failed", {"AssignBool", false}},
      {"flyte/execution_id", {"AssignString", execution_id}},
      {"flyte/project", {"AssignString", "flytesnacks"}},
      {"flyte/domain", {"AssignString", "development"}},
      {"flyte/name", {"AssignString", kExecution}},
      {"flyte/raw_output_prefix", {"AssignString", "s3://my-bucket/raw/n0"}},
      {"flyte/output_metadata_prefix", {"AssignString", OutputPrefix("n0")}},
      {"flyte/working_directory", {"AssignString", state_dir_ + "/" + execution_id + "/work"}},
      {"flyte/execution_url",
       {"AssignString",
        absl::StrCat("https://flyte.example.com/console/projects/flytesnacks/domains/development/"
                     "executions/",
                     kExecution)}},
      {"flyte/task/name", {"AssignString", "workflows.train.train_model"}},
      {"flyte/task/project", {"AssignString", "flytesnacks"}},
      {"flyte/task/domain", {"AssignString", "development"}},
      {"flyte/task/version", {"AssignString", "v1"}},
      {"flyte/node_id", {"AssignString", "n0"}},
      {"flyte/retry_attempt", {"AssignInt", 0}},
      {"flyte/workflow", {"AssignString", "workflows-train-training-wf"}},
      {"flyte/namespace", {"AssignString", "flytesnacks-development"}},
      {"flyte/service_account", {"AssignString", "default"}},
      {"flyte/image", {"AssignString", "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"}},
      {"flyte/task/type", {"AssignString", "neptune"}},
      {"flyte/phase", {"AssignString", "SUCCEEDED"}},
      {"flyte/exit_code", {"AssignInt", 0}},
  };
  for (const auto& [path, type_value] : expected) {
    EXPECT_EQ(field(path).type, type_value.first) << path;
    EXPECT_EQ(field(path).value, type_value.second) << path;
  }
  EXPECT_EQ(field("flyte/started_at").type, "AssignDatetime");
  EXPECT_EQ(field("flyte/finished_at").type, "AssignDatetime");
  EXPECT_LE(field("flyte/started_at").value.get<int64_t>(), field("flyte/finished_at").value.get<int64_t>());
  EXPECT_EQ(field("flyte/duration_seconds").type, "AssignFloat");
  EXPECT_GE(field("flyte/duration_seconds").value.get<double>(), 0.0);
  EXPECT_EQ(field("flyte/error").type, "");  // none
  EXPECT_EQ(agent->Stop(), 0);
  ExpectCleanLogs(*agent);
}

TEST_F(AgentE2eTest, FailingProcessIsRetryableAndTheRunRecordsIt) {
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(Request("echo boom >&2; exit 3"));
  flyteidl::admin::Resource resource = PollTerminal(*agent, meta);
  EXPECT_EQ(resource.phase(), TaskExecution::RETRYABLE_FAILED);
  EXPECT_THAT(resource.message(), HasSubstr("exit code (3)"));
  const OfflineRun run = OnlyRun();
  EXPECT_EQ(run.fields.at("flyte/phase").value, "RETRYABLE_FAILED");
  EXPECT_EQ(run.fields.at("flyte/exit_code").value, 3);
  EXPECT_EQ(run.fields.at("sys/failed").value, true);
  EXPECT_THAT(run.fields.at("flyte/error").value.get<std::string>(), HasSubstr("exit code (3)"));
}

TEST_F(AgentE2eTest, RetryableFailureAsStateForOlderPropellers) {
  auto agent = StartAgent({"--agent.retryable_failure=state"});
  const std::string meta = agent->CreateTask(Request("exit 1"));
  flyteidl::admin::Resource resource = PollUntil(*agent, meta, [](const flyteidl::admin::Resource& r) {
    return r.state() == flyteidl::admin::RETRYABLE_FAILURE;
  });
  EXPECT_EQ(resource.phase(), TaskExecution::UNDEFINED);
}

TEST_F(AgentE2eTest, ExitZeroWithErrorFileSucceedsButTheRunFails) {
  flyteidl::core::ErrorDocument document;
  document.mutable_error()->set_code("USER:ZeroDivisionError");
  document.mutable_error()->set_message("division by zero");
  const std::string error_file = dir_.path() + "/error.pb";
  WriteFile(error_file, document.SerializeAsString());
  const std::string out_dir = OutputPrefix("n0").substr(7);
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(
      Request("mkdir -p " + out_dir + " && cp " + error_file + " " + out_dir + "/error.pb"));
  EXPECT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::SUCCEEDED);
  const OfflineRun run = OnlyRun();
  EXPECT_EQ(run.fields.at("flyte/phase").value, "FAILED");
  EXPECT_EQ(run.fields.at("flyte/error").value, "USER:ZeroDivisionError: division by zero");
  EXPECT_EQ(run.fields.at("sys/failed").value, true);
}

bool ProcessAlive(pid_t pid) { return kill(pid, 0) == 0; }

TEST_F(AgentE2eTest, AbortKillsTheProcessGroupAndMarksTheRunAborted) {
  auto agent = StartAgent();
  const std::string pids = dir_.path() + "/pids";
  const std::string meta = agent->CreateTask(Request("sleep 1000 & echo $! > " + pids + ".tmp; echo $$ >> " +
                                                     pids + ".tmp; mv " + pids + ".tmp " + pids + "; wait"));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!std::filesystem::exists(pids) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  std::vector<pid_t> processes;
  for (absl::string_view line : absl::StrSplit(ReadFile(pids), '\n', absl::SkipEmpty())) {
    processes.push_back(std::stoi(std::string(line)));
  }
  ASSERT_EQ(processes.size(), 2u);
  EXPECT_EQ(
      PollUntil(*agent, meta, [](const auto& r) { return r.phase() == TaskExecution::RUNNING; }).phase(),
      TaskExecution::RUNNING);

  ASSERT_TRUE(Delete(*agent, meta).ok());
  EXPECT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::ABORTED);
  for (pid_t pid : processes) {
    const absl::Time gone_by = absl::Now() + absl::Seconds(10);
    while (ProcessAlive(pid) && absl::Now() < gone_by) absl::SleepFor(absl::Milliseconds(20));
    EXPECT_FALSE(ProcessAlive(pid)) << pid;
  }
  const OfflineRun run = OnlyRun();
  EXPECT_EQ(run.fields.at("flyte/phase").value, "ABORTED");
  EXPECT_EQ(run.fields.at("sys/failed").value, true);
  // Idempotent: a repeated abort changes nothing.
  const size_t records = run.records.size();
  ASSERT_TRUE(Delete(*agent, meta).ok());
  EXPECT_EQ(OnlyRun().records.size(), records);
}

TEST_F(AgentE2eTest, CreateDeliveredThreeTimesIsOneRunAndOneProcess) {
  auto agent = StartAgent();
  const std::string starts = dir_.path() + "/starts";
  const auto request = Request("echo started >> " + starts);
  const std::string meta = agent->CreateTask(request);
  agent->CreateTask(request);
  agent->CreateTask(request);
  EXPECT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(ReadFile(starts), "started\n");
  EXPECT_EQ(Runs().size(), 1u);
}

TEST_F(AgentE2eTest, HundredConcurrentCreatesAreHundredRuns) {
  auto agent = StartAgent();
  std::vector<std::string> metas(100);
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] { metas[i] = agent->CreateTask(Request("true", "n" + std::to_string(i))); });
  }
  for (auto& thread : threads) thread.join();
  for (const std::string& meta : metas)
    EXPECT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::SUCCEEDED);
  auto runs = Runs();
  EXPECT_EQ(runs.size(), 100u);
  for (const auto& [id, run] : runs) EXPECT_EQ(run.fields.at("flyte/phase").value, "SUCCEEDED") << id;
}

TEST_F(AgentE2eTest, CollidingNodeIdsWithDifferentOutputPrefixesAreTwoRuns) {
  auto agent = StartAgent();
  auto a = Request("true", "dn0");
  a.set_output_prefix(OutputPrefix("n1") + "/dn0/data/0");
  auto b = Request("true", "dn0");
  b.set_output_prefix(OutputPrefix("n2") + "/dn0/data/0");
  EXPECT_EQ(PollTerminal(*agent, agent->CreateTask(a)).phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(PollTerminal(*agent, agent->CreateTask(b)).phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(Runs().size(), 2u);
}

TEST_F(AgentE2eTest, RestartsLoseNothingAndStartNothingTwice) {
  const std::string starts = dir_.path() + "/starts";
  const std::string go = dir_.path() + "/go";
  const auto request =
      Request("echo started >> " + starts + "; while [ ! -e " + go + " ]; do sleep 0.05; done; exit 0");
  std::string meta;
  {
    auto agent = StartAgent();
    meta = agent->CreateTask(request);
    agent->Kill();  // crash right after CreateTask
  }
  {
    auto agent = StartAgent();
    agent->CreateTask(request);  // propeller re-sends CreateTask if its state write was lost
    EXPECT_EQ(
        PollUntil(*agent, meta, [](const auto& r) { return r.phase() == TaskExecution::RUNNING; }).phase(),
        TaskExecution::RUNNING);
    agent->Kill();  // and again while the task runs
  }
  auto agent = StartAgent();
  WriteFile(go, "");
  EXPECT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(ReadFile(starts), "started\n");
  const OfflineRun run = OnlyRun();
  EXPECT_EQ(run.fields.at("flyte/phase").value, "SUCCEEDED");
  EXPECT_EQ(run.fields.at("flyte/name").value, kExecution);
}

TEST_F(AgentE2eTest, BadRequestsGetActionableStatusCodes) {
  auto agent = StartAgent({"--tracking.allowed_projects=ml/allowed"});
  auto expect_code = [&](flyteidl::admin::CreateTaskRequest request, grpc::StatusCode code,
                         const std::string& text) {
    grpc::ClientContext context;
    flyteidl::admin::CreateTaskResponse response;
    grpc::Status status = agent->agent().CreateTask(&context, request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(text));
  };
  auto request = Request("true");
  request.mutable_template_()->set_type("python-task");
  expect_code(request, grpc::StatusCode::NOT_FOUND, "does not serve task type \"python-task\"");
  request = Request("true");
  request.mutable_template_()->clear_container();
  expect_code(request, grpc::StatusCode::INVALID_ARGUMENT, "has no container");
  request = Request("true");
  (*request.mutable_template_()->mutable_config())["neptune.project"] = "other/project";
  expect_code(request, grpc::StatusCode::PERMISSION_DENIED,
              "not allowed for Flyte project flytesnacks/development");
  request = Request("true");
  (*request.mutable_template_()->mutable_config())["neptune.description"] = std::string(1025, 'd');
  expect_code(request, grpc::StatusCode::INVALID_ARGUMENT, "the limit is 1024");

  flyteidl::admin::Resource resource;
  grpc::Status status = TryGet(*agent, "not a resource meta", &resource);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Delete(*agent, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Runs().empty());
}

TEST_F(AgentE2eTest, ListsOnlyTheConfiguredTaskTypes) {
  auto agent = StartAgent({"--agent.task_types=neptune,neptune_run"});
  grpc::ClientContext context;
  flyteidl::admin::ListAgentsResponse response;
  ASSERT_TRUE(agent->metadata().ListAgents(&context, {}, &response).ok());
  ASSERT_EQ(response.agents_size(), 1);
  const auto& listed = response.agents(0);
  EXPECT_FALSE(listed.is_sync());
  EXPECT_THAT(listed.supported_task_types(), ::testing::ElementsAre("neptune", "neptune_run"));
  ASSERT_EQ(listed.supported_task_categories_size(), 2);
  EXPECT_EQ(listed.supported_task_categories(1).name(), "neptune_run");
  EXPECT_EQ(listed.supported_task_categories(1).version(), 0);
}

TEST_F(AgentE2eTest, GetTaskLogsTailsTheOutput) {
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(Request("for i in 1 2 3 4 5; do echo line $i; done"));
  ASSERT_EQ(PollTerminal(*agent, meta).phase(), TaskExecution::SUCCEEDED);
  grpc::ClientContext context;
  flyteidl::admin::GetTaskLogsRequest request;
  request.set_resource_meta(meta);
  request.set_lines(2);
  auto reader = agent->agent().GetTaskLogs(&context, request);
  flyteidl::admin::GetTaskLogsResponse part;
  std::vector<std::string> lines;
  std::string token;
  while (reader->Read(&part)) {
    if (part.has_header()) token = part.header().token();
    for (const auto& line : part.body().structured_lines()) lines.push_back(line.message());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(lines, ::testing::ElementsAre("line 4", "line 5"));
  EXPECT_FALSE(token.empty());
}

TEST_F(AgentE2eTest, ProcessExecutorRefusesANonLoopbackListener) {
  AgentProcess agent(dir_.path(), Args({"--server.listen_address=0.0.0.0:0"}));
  EXPECT_FALSE(agent.ok());
  EXPECT_NE(agent.WaitExit(), 0);
  const std::string logs = agent.Logs();
  EXPECT_THAT(logs, HasSubstr("executor.process.allow_non_loopback"));
  EXPECT_EQ(std::count(logs.begin(), logs.end(), '\n'), 1) << logs;  // one line
}

TEST_F(AgentE2eTest, TokenNeverLeavesTheAgent) {
  const std::string secret = "eyJhcGlfYWRkcmVzcyI6Imh0dHBzOi8vbmVwdHVuZS5leGFtcGxlLmNvbSJ9-secret-value";
  WriteFile(dir_.path() + "/token", secret);
  WriteFile(dir_.path() + "/agent.yaml",
            "tracking:\n  routing_rules:\n    - flyte_project: flytesnacks\n      allowed_projects: [ml/a]\n"
            "      default_project: ml/a\n      token_file: " +
                dir_.path() + "/token\n");
  auto agent = StartAgent({"--config=" + dir_.path() + "/agent.yaml"});
  const std::string meta = agent->CreateTask(Request("env; exit 3"));
  EXPECT_EQ(meta.find(secret), std::string::npos);
  flyteidl::admin::Resource resource = PollTerminal(*agent, meta);
  EXPECT_EQ(resource.DebugString().find(secret), std::string::npos);
  auto request = Request("true", "n1");
  (*request.mutable_template_()->mutable_config())["neptune.project"] = "other/x";
  grpc::ClientContext context;
  flyteidl::admin::CreateTaskResponse response;
  grpc::Status refused = agent->agent().CreateTask(&context, request, &response);
  EXPECT_EQ(refused.error_message().find(secret), std::string::npos);
  for (const auto& [id, run] : Runs()) {
    for (const auto& record : run.records) EXPECT_EQ(record.dump().find(secret), std::string::npos);
  }
  EXPECT_EQ(agent->Stop(), 0);
  ExpectCleanLogs(*agent, secret);
}

}  // namespace
}  // namespace fna::e2e
