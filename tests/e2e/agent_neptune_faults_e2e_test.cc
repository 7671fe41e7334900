// The agent binary against the Neptune emulator while Neptune misbehaves: 503s and dropped connections on the
// final write, a 429 storm at CreateTask, dropped pings, and access tokens expiring mid-task. Tracking never
// loses the outcome: every run ends with all its final fields. The agent runs on real time, so the test polls
// GetTask (bounded) as propeller would.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/testing/flyte_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/agent_process.h"
#include "tests/neptune_emulator/emulator.h"

namespace fna::e2e {
namespace {

using flyteidl::core::TaskExecution;
using neptune_emulator::Fault;
using neptune_emulator::NeptuneEmulator;
using neptune_emulator::RequestRecord;
using neptune_emulator::RunSnapshot;

constexpr char kProject[] = "ml/flyte";
constexpr char kOperations[] = "/api/leaderboard/v1/attributes/operations";
constexpr char kExperiments[] = "/api/leaderboard/v1/experiments";
constexpr char kPing[] = "/api/leaderboard/v1/attributes/ping";
constexpr char kRefresh[] = "/auth/realms/neptune/protocol/openid-connect/token";

class AgentNeptuneFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NeptuneEmulator::Options options;
    options.projects = {{kProject, "FLY"}};
    auto emulator = NeptuneEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    WriteFile(dir_.path() + "/token", emulator_->api_token() + "\n");
    go_ = dir_.path() + "/go";
  }

  std::unique_ptr<AgentProcess> StartAgent(std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {"--tracker.kind=neptune",
                                     "--tracker.neptune.api_token_file=" + dir_.path() + "/token",
                                     "--tracking.default_project=" + std::string(kProject),
                                     "--executor.process.state_directory=" + dir_.path() + "/state"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    auto agent = std::make_unique<AgentProcess>(dir_.path(), args);
    EXPECT_TRUE(agent->ok()) << agent->Logs();
    return agent;
  }

  // A task that runs until the test creates the `go` file.
  flyteidl::admin::CreateTaskRequest WaitingTask() {
    auto request = MakeCreateRequest("n0", 0, "file://" + dir_.path() + "/outputs/n0/data/0");
    auto* container = request.mutable_template_()->mutable_container();
    container->clear_command();
    container->clear_args();
    container->add_command("/bin/sh");
    container->add_command("-c");
    container->add_args("while [ ! -e " + go_ + " ]; do sleep 0.05; done");
    return request;
  }

  // Waits (bounded) until the emulator has seen at least `count` requests to `path`.
  bool WaitForRequests(absl::string_view method, absl::string_view path, int count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (emulator_->RequestCount(method, path) < count) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  int CountRecords(absl::string_view path, int status) const {
    int count = 0;
    for (const RequestRecord& record : emulator_->Requests()) {
      if (record.path == path && record.status == status) ++count;
    }
    return count;
  }

  // The request log, for failure messages.
  std::string RequestLog() const {
    std::string log;
    for (const RequestRecord& record : emulator_->Requests()) {
      absl::StrAppend(&log, absl::FormatTime("%H:%M:%E3S", record.time, absl::UTCTimeZone()), " ",
                      record.method, " ", record.path, " ", record.status, " ", record.fault, "\n");
    }
    return log;
  }

  // The only run, with every final field of a task that succeeded.
  void ExpectFinalized(const flyteidl::admin::Resource& resource) {
    const std::vector<RunSnapshot> runs = emulator_->Runs();
    ASSERT_EQ(runs.size(), 1u);
    const RunSnapshot& run = runs[0];
    EXPECT_EQ(run.custom_id, CustomRunId(resource));
    ASSERT_EQ(resource.log_links_size(), 1);
    EXPECT_THAT(resource.log_links(0).uri(), ::testing::EndsWith("/ml/flyte/e/" + run.short_id));
    const std::map<std::string, std::pair<std::string, nlohmann::json>> expected = {
        {"flyte/phase", {"string", "SUCCEEDED"}}, {"flyte/exit_code", {"int", 0}},
        {"sys/failed", {"bool", false}},          {"flyte/name", {"string", "f6c5d2a1b9e8a4c3d2b1"}},
        {"flyte/node_id", {"string", "n0"}},
    };
    for (const auto& [path, type_value] : expected) {
      ASSERT_EQ(run.attributes.count(path), 1u) << path;
      EXPECT_EQ(run.attributes.at(path).type, type_value.first) << path;
      EXPECT_EQ(run.attributes.at(path).value, type_value.second) << path;
    }
    for (const auto& [path, type] : std::map<std::string, std::string>{{"flyte/started_at", "datetime"},
                                                                       {"flyte/finished_at", "datetime"},
                                                                       {"flyte/duration_seconds", "float"},
                                                                       {"sys/name", "string"}}) {
      ASSERT_EQ(run.attributes.count(path), 1u) << path;
      EXPECT_EQ(run.attributes.at(path).type, type) << path;
    }
    EXPECT_GE(run.attributes.at("flyte/finished_at").value.get<int64_t>(),
              run.attributes.at("flyte/started_at").value.get<int64_t>());
  }

  TempDir dir_;
  std::string go_;
  std::unique_ptr<NeptuneEmulator> emulator_;
};

TEST_F(AgentNeptuneFaultsTest, FinalWriteRetriedThrough503s) {
  // A budget the three jittered backoffs (1.75 s +- 20%) always fit in, so that one call makes every attempt.
  // With the default 2 s the last attempt may go out just before the deadline and have its answer cut off:
  // the next poll then repeats the (idempotent) write, and the count below would be 6.
  auto agent = StartAgent({"--tracking.create_budget=10s"});
  const std::string meta = agent->CreateTask(WaitingTask());
  ASSERT_EQ(emulator_->Runs().size(), 1u);                     // created at CreateTask
  ASSERT_EQ(emulator_->RequestCount("POST", kOperations), 1);  // the initial fields
  agent->PollPhase(meta, TaskExecution::RUNNING);

  emulator_->FailNext(kOperations, 3, 503);
  WriteFile(go_, "");
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  ExpectFinalized(resource);
  // Three refused, one accepted, all within the GetTask that saw the task finished.
  EXPECT_EQ(emulator_->RequestCount("POST", kOperations), 5) << RequestLog() << agent->Logs();
  EXPECT_EQ(CountRecords(kOperations, 503), 3);
  EXPECT_EQ(CountRecords(kOperations, 200), 2);
  EXPECT_TRUE(emulator_->PendingFaults().empty());
  EXPECT_EQ(agent->Stop(), 0);
}

TEST_F(AgentNeptuneFaultsTest, TooManyRequestsAtCreateTaskDefersTheRun) {
  constexpr int kStorm = 6;
  auto agent = StartAgent();
  emulator_->FailNext(kExperiments, kStorm, 429, "1");
  const absl::Time before = absl::Now();
  const std::string meta = agent->CreateTask(WaitingTask());
  EXPECT_LT(absl::Now() - before, absl::Seconds(3));  // within propeller's CreateTask deadline
  EXPECT_FALSE(meta.empty());
  EXPECT_TRUE(emulator_->Runs().empty());

  // GetTask polls retry the creation until the storm is over.
  flyteidl::admin::Resource resource;
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (emulator_->Runs().empty() && absl::Now() < deadline) {
    resource = agent->GetTask(meta);
    EXPECT_EQ(resource.phase(), TaskExecution::RUNNING);
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(emulator_->Runs().size(), 1u) << resource.message();
  resource = agent->GetTask(meta);
  EXPECT_THAT(resource.message(), ::testing::Not(::testing::HasSubstr("not created yet")));

  WriteFile(go_, "");
  resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  ExpectFinalized(resource);
  EXPECT_EQ(CountRecords(kExperiments, 429), kStorm);
  EXPECT_EQ(emulator_->RequestCount("POST", kExperiments), kStorm + 1);
  EXPECT_EQ(agent->Stop(), 0);
}

TEST_F(AgentNeptuneFaultsTest, DroppedConnectionsLoseNothing) {
  auto agent = StartAgent({"--tracker.neptune.ping_interval=1s"});
  Fault drop_pings;
  drop_pings.path_prefix = kPing;
  drop_pings.action = Fault::Action::kDrop;
  drop_pings.count = 2;
  emulator_->AddFault(drop_pings);
  const std::string meta = agent->CreateTask(WaitingTask());
  agent->PollPhase(meta, TaskExecution::RUNNING);
  // Two pings dropped; the next intervals' pings get through (a request is logged before it is answered, so
  // wait for the answered ones).
  const absl::Time pinged_by = absl::Now() + absl::Seconds(20);
  while (CountRecords(kPing, 200) < 2 && absl::Now() < pinged_by) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(CountRecords(kPing, 0), 2);
  EXPECT_GE(CountRecords(kPing, 200), 2);

  const int operations_before = emulator_->RequestCount("POST", kOperations);
  Fault drop_write;
  drop_write.path_prefix = kOperations;
  drop_write.action = Fault::Action::kDrop;
  emulator_->AddFault(drop_write);
  Fault lost_answer = drop_write;  // applied, but the answer never arrives
  lost_answer.after_processing = true;
  emulator_->AddFault(lost_answer);
  WriteFile(go_, "");
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  ExpectFinalized(resource);
  EXPECT_EQ(emulator_->RequestCount("POST", kOperations) - operations_before, 3);
  EXPECT_EQ(CountRecords(kOperations, 0), 2);
  EXPECT_TRUE(emulator_->PendingFaults().empty());
  EXPECT_EQ(agent->Stop(), 0);
}

TEST_F(AgentNeptuneFaultsTest, ExpiredAccessTokenIsRefreshedForTheFinalWrite) {
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(WaitingTask());
  agent->PollPhase(meta, TaskExecution::RUNNING);
  ASSERT_TRUE(WaitForRequests("POST", kPing, 1));  // the first ping; the next one is 10 s away
  emulator_->ExpireAccessTokens();
  WriteFile(go_, "");
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  ExpectFinalized(resource);
  EXPECT_EQ(emulator_->RequestCount("POST", kRefresh), 1);
  EXPECT_EQ(CountRecords(kRefresh, 200), 1);
  EXPECT_EQ(CountRecords(kOperations, 401), 1);  // refused once, repeated after the refresh
  EXPECT_EQ(emulator_->RequestCount("GET", "/api/backend/v1/authorization/oauth-token"), 1);
  EXPECT_EQ(agent->Stop(), 0);
}

}  // namespace
}  // namespace fna::e2e
