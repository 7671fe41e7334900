// The agent operated as a production service, end to end with the real binary and the Neptune emulator:
// metrics moved by exactly what a scripted workload did, readiness that Neptune and the token files cannot
// take away, the drain on SIGTERM, TLS with certificate rotation, start-up errors, --version and
// --print-config. Every log line of every agent is JSON and holds no token.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/testing/flyte_requests.h"
#include "agent/testing/test_pki.h"
#include "agent/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/agent_process.h"
#include "tests/e2e/operations.h"
#include "tests/neptune_emulator/emulator.h"

namespace fna::e2e {
namespace {

using flyteidl::core::TaskExecution;
using neptune_emulator::Fault;
using neptune_emulator::NeptuneEmulator;
using neptune_emulator::Outage;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kProject[] = "ml/flyte";
constexpr char kExperiments[] = "/api/leaderboard/v1/experiments";
constexpr char kOperations[] = "/api/leaderboard/v1/attributes/operations";
constexpr char kPing[] = "/api/leaderboard/v1/attributes/ping";
constexpr int kServing = 1;

// The families whose every series must move by exactly the expected delta.
const std::vector<std::string>& ExactFamilies() {
  static const auto* const families = new std::vector<std::string>{
      "flyte_neptune_agent_grpc_requests_total",
      "flyte_connector_requests_success_total",
      "flyte_connector_requests_failure_total",
      "flyte_connector_input_literal_bytes_bucket",
      "flyte_connector_input_literal_bytes_count",
      "flyte_neptune_agent_neptune_requests_total",
      "flyte_neptune_agent_neptune_retries_total",
      "flyte_neptune_agent_neptune_pings_total",
      "flyte_neptune_agent_neptune_pings_skipped_total",
      "flyte_neptune_agent_neptune_pings_postponed_total",
      "flyte_neptune_agent_runs_created_total",
      "flyte_neptune_agent_runs_created_late_total",
      "flyte_neptune_agent_runs_finalized_total",
      "flyte_neptune_agent_runs_finalized_late_total",
      "flyte_neptune_agent_final_writes_handed_off_total",
      "flyte_neptune_agent_final_writes_abandoned_total",
      "flyte_neptune_agent_tracking_errors_total",
      "flyte_neptune_agent_token_file_read_errors_total",
      "flyte_neptune_agent_executor_calls_total",
  };
  return *families;
}

// Latency histograms and the counter each one's _count must follow (same labels, minus `code` for some).
const std::vector<std::string>& LatencyHistograms() {
  static const auto* const histograms = new std::vector<std::string>{
      "flyte_neptune_agent_grpc_request_duration_seconds",
      "flyte_connector_request_latency_seconds",
      "flyte_neptune_agent_neptune_request_duration_seconds",
      "flyte_neptune_agent_executor_call_duration_seconds",
  };
  return *histograms;
}

std::string FamilyOf(const std::string& series) { return series.substr(0, series.find('{')); }

double ValueOr0(const Metrics& metrics, const std::string& series) {
  auto it = metrics.find(series);
  return it == metrics.end() ? 0 : it->second;
}

class AgentOperationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NeptuneEmulator::Options options;
    options.projects = {{kProject, "FLY"}};
    auto emulator = NeptuneEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    token_file_ = dir_.path() + "/token";
    WriteFile(token_file_, emulator_->api_token() + "\n");
  }

  void TearDown() override {
    for (const auto& agent : agents_) ExpectCleanLogs(agent->Logs());
  }

  std::vector<std::string> NeptuneArgs() const {
    return {"--tracker.kind=neptune", "--tracker.neptune.api_token_file=" + token_file_,
            absl::StrCat("--tracking.default_project=", kProject),
            "--executor.process.state_directory=" + dir_.path() + "/state"};
  }

  AgentProcess& StartAgent(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = NeptuneArgs();
    args.insert(args.end(), extra.begin(), extra.end());
    agents_.push_back(std::make_unique<AgentProcess>(dir_.path(), args));
    EXPECT_TRUE(agents_.back()->ok()) << agents_.back()->Logs();
    return *agents_.back();
  }

  // Every line is one JSON object, and none holds a token: the API token itself, its api_key, or anything
  // base64-JSON shaped (an API token or a JWT starts with "eyJ").
  void ExpectCleanLogs(const std::string& logs) {
    for (const std::string& line : Lines(logs)) {
      const auto record = nlohmann::json::parse(line, nullptr, false);
      EXPECT_TRUE(!record.is_discarded() && record.is_object()) << line;
      EXPECT_THAT(line, ::testing::Not(HasSubstr(emulator_->api_token()))) << line;
      EXPECT_THAT(line, ::testing::Not(HasSubstr(neptune_emulator::kDefaultApiKey))) << line;
      EXPECT_THAT(line, ::testing::Not(HasSubstr("eyJ"))) << line;
    }
  }

  // A task running `script` under /bin/sh, on node `node`.
  flyteidl::admin::CreateTaskRequest Task(const std::string& node, const std::string& script) {
    auto request = MakeCreateRequest(node, 0, "file://" + dir_.path() + "/outputs/" + node + "/data/0");
    auto* container = request.mutable_template_()->mutable_container();
    container->clear_command();
    container->clear_args();
    container->add_command("/bin/sh");
    container->add_command("-c");
    container->add_args(script);
    return request;
  }

  // A task that runs until the test creates the file `go`.
  flyteidl::admin::CreateTaskRequest WaitingTask(const std::string& node, const std::string& go) {
    return Task(node, "while [ ! -e " + go + " ]; do sleep 0.05; done");
  }

  static grpc::Status Create(AgentProcess& agent, const flyteidl::admin::CreateTaskRequest& request,
                             std::string* meta) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    flyteidl::admin::CreateTaskResponse response;
    grpc::Status status = agent.agent().CreateTask(&context, request, &response);
    if (meta != nullptr) *meta = response.resource_meta();
    return status;
  }

  static grpc::Status Get(AgentProcess& agent, const std::string& meta, flyteidl::admin::Resource* resource) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    flyteidl::admin::GetTaskRequest request;
    request.set_resource_meta(meta);
    request.mutable_task_category()->set_name("neptune");
    flyteidl::admin::GetTaskResponse response;
    grpc::Status status = agent.agent().GetTask(&context, request, &response);
    *resource = response.resource();
    return status;
  }

  // Polls GetTask until `phase`; returns the number of calls made.
  static int PollUntil(AgentProcess& agent, const std::string& meta, TaskExecution::Phase phase,
                       flyteidl::admin::Resource* resource) {
    int calls = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    do {
      ++calls;
      EXPECT_TRUE(Get(agent, meta, resource).ok());
      if (resource->phase() == phase) return calls;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "phase " << resource->phase() << ": " << resource->message();
    return calls;
  }

  Metrics Scrape(AgentProcess& agent) {
    const HttpAnswer answer = HttpGet(agent.metrics_port(), "/metrics");
    EXPECT_EQ(answer.status, 200);
    EXPECT_EQ(answer.content_type, "text/plain; version=0.0.4; charset=utf-8");
    return ParseMetrics(answer.body);
  }

  bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // The number of finished tasks of the process executor (their status.json exists).
  int FinishedTasks() const {
    int finished = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path() + "/state", error)) {
      finished += std::filesystem::exists(entry.path() / "status.json") ? 1 : 0;
    }
    return finished;
  }

  TempDir dir_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::string token_file_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(AgentOperationsTest, AScriptedWorkloadMovesEveryMetricByExactlyWhatItDid) {
  AgentProcess& agent = StartAgent({"--tracker.neptune.ping_interval=10m", "--tracking.finalize_grace=0s"});
  const Metrics before = Scrape(agent);
  EXPECT_EQ(
      ValueOr0(before, absl::StrCat("flyte_neptune_agent_build_info{version=\"", kVersion, "\",commit=\"",
                                    BuildCommit(), "\",flyteidl_version=\"", kFlyteidlVersion, "\"}")),
      1);
  std::map<std::string, double> expected;
  const auto grpc_call = [&expected](const std::string& type, const std::string& operation,
                                     const std::string& code, int http, int n = 1) {
    expected[absl::StrCat("flyte_neptune_agent_grpc_requests_total{task_type=\"", type, "\",operation=\"",
                          operation, "\",code=\"", code, "\"}")] += n;
    if (operation != "create" && operation != "get" && operation != "delete") return;
    if (code == "OK") {
      expected[absl::StrCat("flyte_connector_requests_success_total{task_type=\"", type, "\",operation=\"",
                            operation, "\"}")] += n;
    } else {
      expected[absl::StrCat("flyte_connector_requests_failure_total{task_type=\"", type, "\",operation=\"",
                            operation, "\",error_code=\"", http, "\"}")] += n;
    }
  };
  const auto neptune = [&expected](const std::string& endpoint, const std::string& status, int n = 1) {
    expected[absl::StrCat("flyte_neptune_agent_neptune_requests_total{endpoint=\"", endpoint, "\",status=\"",
                          status, "\"}")] += n;
  };
  const auto executor = [&expected](const std::string& operation, int n = 1) {
    expected[absl::StrCat("flyte_neptune_agent_executor_calls_total{operation=\"", operation,
                          "\",code=\"OK\"}")] += n;
  };
  const auto count = [&expected](const std::string& series, int n = 1) { expected[series] += n; };

  // ListAgents.
  {
    grpc::ClientContext context;
    flyteidl::admin::ListAgentsResponse response;
    ASSERT_TRUE(agent.metadata().ListAgents(&context, {}, &response).ok());
    grpc_call("", "list_agents", "OK", 200);
  }

  // Task 1, with inputs: created with its run (the first Neptune session), then pinged once.
  const std::string go1 = dir_.path() + "/go1";
  auto request1 = WaitingTask("n0", go1);
  (*request1.mutable_inputs()->mutable_literals())["x"]
      .mutable_scalar()
      ->mutable_primitive()
      ->set_string_value(std::string(2000, 'x'));
  const double input_bytes = static_cast<double>(request1.inputs().ByteSizeLong());
  std::string meta1;
  ASSERT_TRUE(Create(agent, request1, &meta1).ok());
  grpc_call("neptune", "create", "OK", 200);
  for (const char* endpoint :
       {"clients/config", "oauth-token", "projects/get", "experiments", "attributes/operations"}) {
    neptune(endpoint, "200");
  }
  count("flyte_neptune_agent_runs_created_total");
  executor("start");
  executor("get_status");
  ASSERT_TRUE(WaitFor([&] { return emulator_->RequestCount("POST", kPing) == 1; }));
  neptune("attributes/ping", "200");
  count("flyte_neptune_agent_neptune_pings_total{result=\"ok\"}");
  flyteidl::admin::Resource resource;
  const int polls_running = PollUntil(agent, meta1, TaskExecution::RUNNING, &resource);
  grpc_call("neptune", "get", "OK", 200, polls_running);
  executor("get_status", polls_running);

  // Refused calls: an unserved task type, malformed resource_meta, GetTaskMetrics.
  auto unserved = Task("n9", "true");
  unserved.mutable_template_()->set_type("python-task");
  EXPECT_EQ(Create(agent, unserved, nullptr).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc_call("other", "create", "NOT_FOUND", 404);
  EXPECT_EQ(Get(agent, "not a resource meta", &resource).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc_call("neptune", "get", "INVALID_ARGUMENT", 400);
  {
    grpc::ClientContext context;
    flyteidl::admin::GetTaskMetricsRequest metrics_request;
    metrics_request.mutable_task_category()->set_name("neptune");
    flyteidl::admin::GetTaskMetricsResponse response;
    EXPECT_EQ(agent.agent().GetTaskMetrics(&context, metrics_request, &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
    grpc_call("neptune", "get_metrics", "UNIMPLEMENTED", 501);
  }

  // Task 2: Neptune answers 503 once at creation (one retry), then it is aborted.
  Fault busy;
  busy.path_prefix = kExperiments;
  busy.method = "POST";
  busy.status = 503;
  emulator_->AddFault(busy);
  std::string meta2;
  ASSERT_TRUE(Create(agent, WaitingTask("n1", dir_.path() + "/go2"), &meta2).ok());
  grpc_call("neptune", "create", "OK", 200);
  neptune("experiments", "503");
  count("flyte_neptune_agent_neptune_retries_total{endpoint=\"experiments\"}");
  neptune("experiments", "200");
  neptune("attributes/operations", "200");
  count("flyte_neptune_agent_runs_created_total");
  executor("start");
  executor("get_status");
  ASSERT_TRUE(WaitFor([&] { return emulator_->RequestCount("POST", kPing) == 2; }));
  neptune("attributes/ping", "200");
  count("flyte_neptune_agent_neptune_pings_total{result=\"ok\"}");
  {
    grpc::ClientContext context;
    flyteidl::admin::DeleteTaskRequest delete_request;
    delete_request.set_resource_meta(meta2);
    delete_request.mutable_task_category()->set_name("neptune");
    flyteidl::admin::DeleteTaskResponse response;
    ASSERT_TRUE(agent.agent().DeleteTask(&context, delete_request, &response).ok());
    grpc_call("neptune", "delete", "OK", 200);
    executor("get_status");
    executor("abort");
    neptune("attributes/operations", "200");  // ABORTED
    executor("mark_run_finalized");
    count("flyte_neptune_agent_runs_finalized_total");
  }

  // Task 1 succeeds: the GetTask that sees it finished writes the final fields.
  WriteFile(go1, "");
  const int polls_done = PollUntil(agent, meta1, TaskExecution::SUCCEEDED, &resource);
  grpc_call("neptune", "get", "OK", 200, polls_done);
  executor("get_status", polls_done);
  neptune("attributes/operations", "200");
  executor("mark_run_finalized");
  count("flyte_neptune_agent_runs_finalized_total");
  ASSERT_TRUE(Get(agent, meta1, &resource).ok());  // finalized: nothing more to write
  grpc_call("neptune", "get", "OK", 200);
  executor("get_status");
  {
    grpc::ClientContext context;
    flyteidl::admin::GetTaskLogsRequest logs_request;
    logs_request.set_resource_meta(meta1);
    logs_request.mutable_task_category()->set_name("neptune");
    auto reader = agent.agent().GetTaskLogs(&context, logs_request);
    flyteidl::admin::GetTaskLogsResponse part;
    while (reader->Read(&part)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
    grpc_call("neptune", "get_logs", "OK", 200);
    executor("read_logs");
  }

  // The input size lands in its bucket (and every larger one).
  for (double bound :
       {1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0}) {
    if (input_bytes <= bound) {
      count(absl::StrCat("flyte_connector_input_literal_bytes_bucket{task_type=\"neptune\",le=\"",
                         static_cast<int64_t>(bound), "\"}"));
    }
  }
  count("flyte_connector_input_literal_bytes_bucket{task_type=\"neptune\",le=\"+Inf\"}");
  count("flyte_connector_input_literal_bytes_count{task_type=\"neptune\"}");

  const Metrics after = Scrape(agent);
  std::set<std::string> series;
  for (const auto& [name, value] : after) {
    for (const std::string& family : ExactFamilies()) {
      if (FamilyOf(name) == family) series.insert(name);
    }
  }
  for (const auto& [name, delta] : expected) series.insert(name);
  for (const std::string& name : series) {
    EXPECT_EQ(ValueOr0(after, name) - ValueOr0(before, name), ValueOr0(expected, name)) << name;
  }
  // Latency histograms: every call observed once, buckets cumulative.
  for (const std::string& histogram : LatencyHistograms()) {
    double total = 0;
    for (const auto& [name, value] : after) {
      if (FamilyOf(name) != histogram + "_count") continue;
      const std::string labels = name.substr(name.find('{'));
      const double count_delta = value - ValueOr0(before, name);
      total += count_delta;
      const std::string open = labels.substr(0, labels.size() - 1);
      EXPECT_EQ(ValueOr0(after, absl::StrCat(histogram, "_bucket", open, ",le=\"+Inf\"}")) -
                    ValueOr0(before, absl::StrCat(histogram, "_bucket", open, ",le=\"+Inf\"}")),
                count_delta)
          << name;
      for (const auto& [bucket, bucket_value] : after) {
        if (!absl::StartsWith(bucket, absl::StrCat(histogram, "_bucket", open, ",le="))) continue;
        EXPECT_LE(bucket_value - ValueOr0(before, bucket), count_delta) << bucket;
      }
    }
    // The calls of each kind made above.
    double calls = 0;
    const std::string counter = histogram == "flyte_neptune_agent_grpc_request_duration_seconds"
                                    ? "flyte_neptune_agent_grpc_requests_total"
                                : histogram == "flyte_connector_request_latency_seconds" ? ""
                                : histogram == "flyte_neptune_agent_neptune_request_duration_seconds"
                                    ? "flyte_neptune_agent_neptune_requests_total"
                                    : "flyte_neptune_agent_executor_calls_total";
    for (const auto& [name, delta] : expected) {
      if (counter.empty() ? (FamilyOf(name) == "flyte_connector_requests_success_total" ||
                             FamilyOf(name) == "flyte_connector_requests_failure_total")
                          : FamilyOf(name) == counter) {
        calls += delta;
      }
    }
    EXPECT_EQ(total, calls) << histogram;
  }
  EXPECT_EQ(ValueOr0(after, "flyte_neptune_agent_active_tasks"), 0);
  EXPECT_EQ(ValueOr0(after, "flyte_neptune_agent_final_writes_pending"), 0);
  EXPECT_EQ(ValueOr0(after, "flyte_neptune_agent_grpc_requests_in_flight"), 0);
  EXPECT_EQ(ValueOr0(after, "flyte_neptune_agent_token_files_unreadable"), 0);
  EXPECT_EQ(ValueOr0(after, "flyte_neptune_agent_neptune_pinged_runs"), 0);
  // No run or execution id is a label.
  for (const auto& [name, value] : after) {
    EXPECT_THAT(name, ::testing::Not(HasSubstr("f6c5d2a1b9e8a4c3d2b1"))) << name;
  }
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentOperationsTest, NeitherANeptuneOutageNorAnUnreadableTokenFileMakesTheAgentUnready) {
  AgentProcess& agent = StartAgent();
  const auto ready = [&agent] {
    const HttpAnswer readyz = HttpGet(agent.metrics_port(), "/readyz");
    return readyz.status == 200 && readyz.body == "ok\n" && HealthStatus(agent.channel()) == kServing;
  };
  ASSERT_TRUE(ready());

  // Neptune down: tasks start anyway, their runs later.
  emulator_->SetOutage(Outage::kUnavailable);
  std::string meta1;
  ASSERT_TRUE(Create(agent, WaitingTask("n0", dir_.path() + "/go"), &meta1).ok());
  flyteidl::admin::Resource resource;
  ASSERT_TRUE(Get(agent, meta1, &resource).ok());
  EXPECT_THAT(resource.message(), HasSubstr("Neptune run not created yet"));
  EXPECT_TRUE(ready());
  emulator_->SetOutage(Outage::kNone);

  // The token file disappears (a broken Secret mount): tracking is degraded, readiness is not.
  ASSERT_EQ(std::rename(token_file_.c_str(), (token_file_ + ".away").c_str()), 0);
  std::string meta2;
  ASSERT_TRUE(Create(agent, WaitingTask("n1", dir_.path() + "/go"), &meta2).ok());
  ASSERT_TRUE(Get(agent, meta2, &resource).ok());
  EXPECT_THAT(resource.message(), HasSubstr("Neptune API token file " + token_file_));
  EXPECT_TRUE(ready());
  Metrics metrics = Scrape(agent);
  EXPECT_EQ(ValueOr0(metrics, "flyte_neptune_agent_token_files_unreadable"), 1);
  EXPECT_GE(ValueOr0(metrics, "flyte_neptune_agent_token_file_read_errors_total"), 2);
  EXPECT_GE(ValueOr0(metrics,
                     "flyte_neptune_agent_tracking_errors_total{stage=\"create_run\",code=\"FAILED_"
                     "PRECONDITION\"}"),
            2);
  EXPECT_GE(ValueOr0(metrics,
                     "flyte_neptune_agent_tracking_errors_total{stage=\"create_run\",code=\"UNAVAILABLE\"}"),
            1);

  // Back: the next polls create both runs, late.
  ASSERT_EQ(std::rename((token_file_ + ".away").c_str(), token_file_.c_str()), 0);
  ASSERT_TRUE(Get(agent, meta1, &resource).ok());
  EXPECT_THAT(resource.message(), ::testing::Not(HasSubstr("Neptune")));
  ASSERT_TRUE(Get(agent, meta2, &resource).ok());
  metrics = Scrape(agent);
  EXPECT_EQ(ValueOr0(metrics, "flyte_neptune_agent_token_files_unreadable"), 0);
  EXPECT_EQ(ValueOr0(metrics, "flyte_neptune_agent_runs_created_late_total"), 2);
  EXPECT_EQ(ValueOr0(metrics, "flyte_neptune_agent_active_tasks"), 2);
  EXPECT_EQ(emulator_->Runs().size(), 2u);
  const std::string logs = agent.Logs();
  EXPECT_EQ(std::vector<absl::string_view>(absl::StrSplit(logs, "tracking with it is degraded")).size(), 2u)
      << logs;
  EXPECT_THAT(logs, HasSubstr("Neptune API token file readable again"));
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentOperationsTest, SigtermLetsInFlightCreateAndGetTaskFinishAndExitsZeroWithinTheDeadline) {
  AgentProcess& agent = StartAgent({"--server.drain_timeout=10s"});
  // Task 1 runs, then finishes: its next GetTask writes the run's final fields.
  const std::string go = dir_.path() + "/go";
  std::string meta1;
  ASSERT_TRUE(Create(agent, WaitingTask("n0", go), &meta1).ok());
  flyteidl::admin::Resource resource;
  PollUntil(agent, meta1, TaskExecution::RUNNING, &resource);
  WriteFile(go, "");
  ASSERT_TRUE(WaitFor([this] { return FinishedTasks() == 1; }));

  // Neptune is slow for one final write and one run creation: both calls are in flight at SIGTERM.
  for (const char* path : {kOperations, kExperiments}) {
    Fault slow;
    slow.path_prefix = path;
    slow.method = "POST";
    slow.action = Fault::Action::kDelay;
    slow.delay = absl::Seconds(1);
    emulator_->AddFault(slow);
  }
  const int operations_before = emulator_->RequestCount("POST", kOperations);
  const int experiments_before = emulator_->RequestCount("POST", kExperiments);
  grpc::Status got;
  grpc::Status created;
  std::thread get([&] { got = Get(agent, meta1, &resource); });
  std::thread create([&] { created = Create(agent, WaitingTask("n1", go), nullptr); });
  ASSERT_TRUE(WaitFor([&] {
    return emulator_->RequestCount("POST", kOperations) > operations_before &&
           emulator_->RequestCount("POST", kExperiments) > experiments_before;
  }));
  const absl::Time signalled = absl::Now();
  agent.Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&agent] { return absl::StrContains(agent.Logs(), "\"msg\":\"draining\""); }));
  // Draining: not ready, but alive (a liveness probe must not kill it).
  const HttpAnswer readyz = HttpGet(agent.metrics_port(), "/readyz");
  EXPECT_EQ(readyz.status, 503);
  EXPECT_EQ(readyz.body, "draining\n");
  EXPECT_EQ(HttpGet(agent.metrics_port(), "/healthz").status, 200);
  get.join();
  create.join();
  EXPECT_TRUE(got.ok()) << got.error_message();
  EXPECT_EQ(resource.phase(), TaskExecution::SUCCEEDED) << resource.message();
  EXPECT_TRUE(created.ok()) << created.error_message();
  EXPECT_EQ(agent.WaitExit(), 0);
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(10));
  auto run = emulator_->RunByCustomId(kProject, resource.custom_info()
                                                    .fields()
                                                    .at("neptune")
                                                    .struct_value()
                                                    .fields()
                                                    .at("custom_run_id")
                                                    .string_value());
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->attributes.at("flyte/phase").value, "SUCCEEDED");
  EXPECT_THAT(agent.Logs(), HasSubstr("\"msg\":\"stopped\""));
}

TEST_F(AgentOperationsTest, ASecondSignalExitsAtOnce) {
  AgentProcess& agent = StartAgent({"--server.drain_timeout=60s", "--tracking.finalize_grace=0s"});
  // A final write pending while Neptune is down: the drain would retry it for the call budget (10 s).
  const std::string go = dir_.path() + "/go";
  std::string meta;
  ASSERT_TRUE(Create(agent, WaitingTask("n0", go), &meta).ok());
  flyteidl::admin::Resource resource;
  PollUntil(agent, meta, TaskExecution::RUNNING, &resource);
  emulator_->SetOutage(Outage::kUnavailable);
  WriteFile(go, "");
  PollUntil(agent, meta, TaskExecution::SUCCEEDED, &resource);
  EXPECT_THAT(resource.message(), HasSubstr("retrying in the background"));
  agent.Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&agent] { return absl::StrContains(agent.Logs(), "\"msg\":\"draining\""); }));
  const absl::Time second = absl::Now();
  agent.Signal(SIGINT);
  EXPECT_EQ(agent.WaitExit(), 128 + SIGINT);
  EXPECT_LT(absl::Now() - second, absl::Seconds(3));
  EXPECT_THAT(agent.Logs(), HasSubstr("second signal: exiting without draining"));
}

TEST_F(AgentOperationsTest, EachStartUpErrorIsOneLineNamingWhatIsWrong) {
  testing::TestPki pki;
  ASSERT_TRUE(testing::WriteTestPki(dir_.path(), &pki));
  WriteFile(dir_.path() + "/unknown.yaml", "server:\n  listen_adress: 127.0.0.1:1\n");
  // A port another program listens on (without SO_REUSEPORT, so no one may share it).
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  absl::Cleanup close_listener = [listener] { close(listener); };
  WriteFile(dir_.path() + "/wrong-type.yaml", "agent:\n  task_types: {neptune: 1}\n");
  struct Case {
    std::vector<std::string> args;
    std::string named;  // in the one line
  };
  const std::vector<Case> cases = {
      {{"--config=" + dir_.path() + "/unknown.yaml"}, "unknown key \"server.listen_adress\""},
      {{"--config=" + dir_.path() + "/wrong-type.yaml"},
       "agent.task_types: expected list of names, got a map"},
      {{"--server.drain_timeout=2h"}, "--server.drain_timeout: 2h is out of range (0, 1h]"},
      {{"--tracker.kind=neptune", "--tracker.neptune.api_token_file=" + dir_.path() + "/missing-token"},
       "tracker.neptune.api_token_file: Neptune API token file " + dir_.path() + "/missing-token"},
      {{"--tracker.kind=neptune", "--tracker.neptune.api_token_file=" + token_file_,
        "--tracker.neptune.ca_file=" + dir_.path() + "/missing-ca.pem"},
       "tracker.neptune.ca_file \"" + dir_.path() + "/missing-ca.pem\": cannot read"},
      {{"--server.tls_cert_file=" + pki.server_cert_file, "--server.tls_key_file=" + pki.server_key_file,
        "--server.tls_client_ca_file=" + dir_.path() + "/missing-ca.pem"},
       "server.tls_client_ca_file \"" + dir_.path() + "/missing-ca.pem\": cannot read"},
      {{"--server.listen_address=localhost"}, "--server.listen_address: \"localhost\" is not host:port"},
      {{"--server.listen_address=" + taken}, "server.listen_address \"" + taken + "\": cannot listen"},
      {{"--server.metrics_address=999.1.1.1:1"}, "server.metrics_address"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinDir() + "/flyte-neptune-agent", "--server.listen_address=127.0.0.1:0",
                                     "--server.metrics_address=127.0.0.1:0", "--logging.format=json",
                                     "--executor.process.state_directory=" + dir_.path() + "/state"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const CommandResult result = RunCommand(argv, dir_.path());
    const std::string joined = absl::StrJoin(c.args, " ");
    EXPECT_NE(result.exit_code, 0) << joined;
    EXPECT_EQ(Lines(result.err).size(), 1u) << joined << "\n" << result.err;
    // A JSON log line (after start-up) or the plain line of a configuration error.
    const auto record = nlohmann::json::parse(result.err, nullptr, false);
    const std::string message =
        record.is_object() ? record.value("msg", "") : std::string(absl::StripSuffix(result.err, "\n"));
    EXPECT_THAT(message, HasSubstr(c.named)) << joined;
    EXPECT_EQ(result.out, "") << joined;
  }
}

// A channel to the agent over TLS, trusting `ca_file` (and presenting a client certificate when given).
std::shared_ptr<grpc::Channel> TlsChannel(int port, const std::string& ca_file,
                                          const std::string& client_cert_file = "",
                                          const std::string& client_key_file = "") {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(ca_file);
  if (!client_cert_file.empty()) {
    options.pem_cert_chain = ReadFile(client_cert_file);
    options.pem_private_key = ReadFile(client_key_file);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a new connection, a new handshake
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(options), args);
}

TEST_F(AgentOperationsTest, TlsServesTheRotatedCertificateWithoutARestart) {
  testing::TestPki pki;
  ASSERT_TRUE(testing::WriteTestPki(dir_.path(), &pki));
  const std::string cert = dir_.path() + "/tls.crt";
  const std::string key = dir_.path() + "/tls.key";
  std::filesystem::copy_file(pki.server_cert_file, cert);
  std::filesystem::copy_file(pki.server_key_file, key);
  AgentProcess& agent = StartAgent(
      {"--server.tls_cert_file=" + cert, "--server.tls_key_file=" + key, "--server.tls_refresh_interval=1s"});
  EXPECT_EQ(HealthStatus(TlsChannel(agent.port(), pki.ca_file)), kServing);
  EXPECT_EQ(HealthStatus(TlsChannel(agent.port(), pki.other_ca_file)), -grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(HealthStatus(grpc::CreateChannel(absl::StrCat("127.0.0.1:", agent.port()),
                                             grpc::InsecureChannelCredentials())),
            -grpc::StatusCode::UNAVAILABLE);

  // A new key and certificate from another CA, each file replaced at once.
  const std::string rotated_dir = dir_.path() + "/rotated";
  std::filesystem::create_directories(rotated_dir);
  testing::TestPki rotated;
  ASSERT_TRUE(testing::WriteTestPki(rotated_dir, &rotated));
  ASSERT_EQ(std::rename(rotated.server_key_file.c_str(), key.c_str()), 0);
  ASSERT_EQ(std::rename(rotated.server_cert_file.c_str(), cert.c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return HealthStatus(TlsChannel(agent.port(), rotated.ca_file)) == kServing; }));
  EXPECT_EQ(HealthStatus(TlsChannel(agent.port(), pki.ca_file)), -grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentOperationsTest, MutualTlsRequiresAClientCertificateFromTheClientCa) {
  testing::TestPki pki;
  ASSERT_TRUE(testing::WriteTestPki(dir_.path(), &pki));
  AgentProcess& agent = StartAgent({"--server.tls_cert_file=" + pki.server_cert_file,
                                    "--server.tls_key_file=" + pki.server_key_file,
                                    "--server.tls_client_ca_file=" + pki.ca_file});
  EXPECT_EQ(HealthStatus(TlsChannel(agent.port(), pki.ca_file, pki.client_cert_file, pki.client_key_file)),
            kServing);
  EXPECT_EQ(HealthStatus(TlsChannel(agent.port(), pki.ca_file)), -grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentOperationsTest, VersionAndPrintConfig) {
  const std::string version_line =
      absl::StrCat(" ", kVersion, " (commit ", BuildCommit(), ", flyteidl ", kFlyteidlVersion, ")\n");
  CommandResult version = RunCommand({BinDir() + "/flyte-neptune-agent", "--version"}, dir_.path());
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "flyte-neptune-agent" + version_line);
  version = RunCommand({BinDir() + "/flyte-agent-client", "--version"}, dir_.path());
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "flyte-agent-client" + version_line);
  EXPECT_THAT(BuildCommit(), ::testing::MatchesRegex("unknown|[0-9a-f]{12}(-dirty)?"));

  // The configuration names token files, never tokens; the token in the environment is not configuration.
  const std::string env_token = "env-token-" + emulator_->api_token();
  const CommandResult printed =
      RunCommand({BinDir() + "/flyte-neptune-agent", "--print-config", "--tracker.kind=neptune",
                  "--tracker.neptune.api_token_file=" + token_file_},
                 dir_.path(), {"NEPTUNE_API_TOKEN=" + env_token});
  EXPECT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_THAT(printed.out, HasSubstr("api_token_file: " + token_file_ + "\n"));
  EXPECT_THAT(printed.out, ::testing::Not(HasSubstr(emulator_->api_token())));
  EXPECT_EQ(printed.err, "");
}

}  // namespace
}  // namespace fna::e2e
