// The agent binary with the Kubernetes executor: a kubeconfig pointing at the fake API server
// (tests/fake_kube_apiserver), runs in the Neptune emulator, error.pb in the fake S3 endpoint. The test plays
// the kubelet (Pod status sequences) and propeller (CreateTask at least once, GetTask polls, DeleteTask).

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/executor/kubernetes/testing/manifest_validator.h"
#include "agent/testing/flyte_requests.h"
#include "flyteidl/core/errors.pb.h"
#include "fna/resource_meta.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/agent_process.h"
#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"
#include "tests/fake_s3/fake_s3.h"
#include "tests/neptune_emulator/emulator.h"

namespace fna::e2e {
namespace {

using flyteidl::core::TaskExecution;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kProject[] = "ml/flyte";
constexpr char kNamespace[] = "flytesnacks-development";
constexpr char kKubeToken[] = "kube-e2e-token-5c4b3a";
constexpr char kAccessKey[] = "AKIDFLYTENEPTUNEE2E";
constexpr char kSecretKey[] = "s3-secret-e2e-must-not-leak";
constexpr char kBucket[] = "flyte-metadata";

std::string Rfc3339(absl::Time t) { return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone()); }

class AgentKubernetesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kube = fake_kube::FakeKubeApiServer::Start({});
    ASSERT_TRUE(kube.ok()) << kube.status();
    kube_ = *std::move(kube);
    kube_->AcceptToken(kKubeToken);
    ASSERT_TRUE(kube_
                    ->PutObject(absl::StrCat("/apis/flyte.lyft.com/v1alpha1/namespaces/", kNamespace,
                                             "/flyteworkflows/f6c5d2a1b9e8a4c3d2b1"),
                                Json{{"apiVersion", "flyte.lyft.com/v1alpha1"}, {"kind", "FlyteWorkflow"}})
                    .ok());
    WriteFile(dir_.path() + "/kubeconfig", absl::StrCat(R"(apiVersion: v1
kind: Config
current-context: fake
contexts:
  - name: fake
    context: {cluster: fake, user: agent, namespace: flyte}
clusters:
  - name: fake
    cluster: {server: ")",
                                                        kube_->url(), R"("}
users:
  - name: agent
    user: {token: ")",
                                                        kKubeToken, "\"}\n"));

    neptune_emulator::NeptuneEmulator::Options options;
    options.projects = {{kProject, "FLY"}};
    auto emulator = neptune_emulator::NeptuneEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    WriteFile(dir_.path() + "/token", emulator_->api_token() + "\n");

    auto s3 = fake_s3::FakeS3::Start({});
    ASSERT_TRUE(s3.ok()) << s3.status();
    s3_ = *std::move(s3);
    s3_->AddKey(kAccessKey, kSecretKey);
    s3_->AddBucket(kBucket);
    // The agent process inherits these: the AWS_* credentials the S3 store reads.
    ::setenv("AWS_ACCESS_KEY_ID", kAccessKey, 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", kSecretKey, 1);
    ::setenv("AWS_REGION", "us-east-1", 1);
  }

  void TearDown() override {
    // Every call the agent made is one its role grants: the RBAC table of docs/kubernetes.md, which
    // tests/deploy/chart_test.py holds the Helm chart's rules equal to.
    const std::set<std::pair<std::string, std::string>> granted = {
        {"create", "pods"}, {"get", "pods"},   {"list", "pods"},    {"watch", "pods"},
        {"delete", "pods"}, {"patch", "pods"}, {"get", "pods/log"}, {"get", "flyteworkflows"},
    };
    for (const auto& request : kube_->Requests()) {
      EXPECT_TRUE(granted.count({request.verb, request.resource}))
          << request.verb << " " << request.resource << ": " << request.method << " " << request.path;
      // Every Pod the agent created passes the offline validators (types and unknown fields).
      if (request.verb != "create" || request.resource != "pods") continue;
      const absl::Status valid =
          executor::kubernetes::testing::ValidateManifest(nlohmann::ordered_json::parse(request.body));
      if (valid.code() != absl::StatusCode::kUnavailable) {
        EXPECT_TRUE(valid.ok()) << valid.message();
      }
    }
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_REGION");
  }

  std::unique_ptr<AgentProcess> StartAgent(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--executor.kind=kubernetes",
        "--executor.kubernetes.kubeconfig=" + dir_.path() + "/kubeconfig",
        "--executor.kubernetes.token_namespaces=" + std::string(kNamespace),
        "--tracker.kind=neptune",
        "--tracker.neptune.api_token_file=" + dir_.path() + "/token",
        "--tracking.default_project=" + std::string(kProject),
        "--storage.s3.endpoint=" + s3_->endpoint(),
    };
    args.insert(args.end(), extra.begin(), extra.end());
    auto agent = std::make_unique<AgentProcess>(dir_.path(), args);
    EXPECT_TRUE(agent->ok()) << agent->Logs();
    return agent;
  }

  static std::string OutputPrefix(const std::string& node) {
    return absl::StrCat("s3://", kBucket, "/metadata/propeller/flytesnacks-development-f6c5d2a1b9e8a4c3d2b1/",
                        node, "/data/0");
  }

  // The Pod's name: the attempt's execution id (design.md §3.2), from the resource_meta.
  static std::string PodName(const std::string& meta) {
    ResourceMeta decoded;
    EXPECT_TRUE(decoded.ParseFromString(meta));
    return decoded.execution_id();
  }

  static std::string Create(AgentProcess& agent, const std::string& node) {
    return agent.CreateTask(MakeCreateRequest(node, 0, OutputPrefix(node)));
  }

  void SetStatus(const std::string& meta, const Json& status) {
    const auto set = kube_->SetPodStatus(kNamespace, PodName(meta), status);
    ASSERT_TRUE(set.ok()) << set.status();
  }

  static Json Running(const std::string& meta) {
    const std::string now = Rfc3339(absl::Now());
    return {
        {"phase", "Running"},
        {"startTime", now},
        {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", now}}})},
        {"containerStatuses", Json::array({{{"name", PodName(meta)},
                                            {"ready", true},
                                            {"restartCount", 0},
                                            {"image", "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"},
                                            {"imageID", ""},
                                            {"state", {{"running", {{"startedAt", now}}}}}}})}};
  }

  static Json Terminated(const std::string& meta, const std::string& phase, int exit_code,
                         const std::string& reason) {
    const std::string started = Rfc3339(absl::Now() - absl::Seconds(30));
    const std::string finished = Rfc3339(absl::Now());
    return {{"phase", phase},
            {"startTime", started},
            {"containerStatuses", Json::array({{{"name", PodName(meta)},
                                                {"ready", false},
                                                {"restartCount", 0},
                                                {"image", "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"},
                                                {"imageID", ""},
                                                {"state",
                                                 {{"terminated",
                                                   {{"exitCode", exit_code},
                                                    {"reason", reason},
                                                    {"startedAt", started},
                                                    {"finishedAt", finished}}}}}}})}};
  }

  std::string RunField(const std::string& custom_id, const std::string& path) {
    auto run = emulator_->RunByCustomId(kProject, custom_id);
    if (!run.has_value() || run->attributes.count(path) == 0) return "<none>";
    const auto& value = run->attributes.at(path).value;
    return value.is_string() ? value.get<std::string>() : value.dump();
  }

  std::string Annotation(const std::string& meta, const std::string& key) {
    auto pod = kube_->GetPod(kNamespace, PodName(meta));
    if (!pod.has_value()) return "<no pod>";
    return (*pod)["metadata"].value("annotations", Json::object()).value(key, "");
  }

  TempDir dir_;
  std::unique_ptr<fake_kube::FakeKubeApiServer> kube_;
  std::unique_ptr<neptune_emulator::NeptuneEmulator> emulator_;
  std::unique_ptr<fake_s3::FakeS3> s3_;
};

TEST_F(AgentKubernetesTest, APodRunsTheTaskAndItsRunRecordsTheOutcome) {
  auto agent = StartAgent();
  const std::string meta = Create(*agent, "n0");
  // CreateTask delivered at least once: the same attempt, the same Pod.
  EXPECT_EQ(PodName(Create(*agent, "n0")), PodName(meta));
  EXPECT_EQ(PodName(Create(*agent, "n0")), PodName(meta));
  EXPECT_EQ(kube_->RequestCount("create", "pods"), 3);
  ASSERT_TRUE(kube_->GetPod(kNamespace, PodName(meta)).has_value());

  flyteidl::admin::Resource resource = agent->GetTask(meta);
  EXPECT_EQ(resource.phase(), TaskExecution::QUEUED);
  SetStatus(meta, Running(meta));
  resource = agent->PollPhase(meta, TaskExecution::RUNNING);
  const std::string custom_id = CustomRunId(resource);
  EXPECT_EQ(RunField(custom_id, "sys/failed"), "false");

  SetStatus(meta, Terminated(meta, "Succeeded", 0, "Completed"));
  resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  EXPECT_EQ(RunField(custom_id, "flyte/phase"), "SUCCEEDED");
  EXPECT_EQ(RunField(custom_id, "flyte/exit_code"), "0");
  EXPECT_NE(Annotation(meta, "flyte-neptune-agent/run-finalized-at"), "");
  // error.pb was looked for, signed, in the fake S3.
  EXPECT_GE(s3_->RequestCount("s3"), 1);
  EXPECT_EQ(RunField(custom_id, "flyte/error"), "<none>");
  EXPECT_EQ(RunField(custom_id, "flyte/error_file_checked"), "true");

  // The Neptune token reaches the Pod only as a Secret reference; no secret in any log line.
  const std::string pod = kube_->GetPod(kNamespace, PodName(meta))->dump();
  EXPECT_THAT(pod, HasSubstr("secretKeyRef"));
  EXPECT_THAT(pod, Not(HasSubstr(emulator_->api_token())));
  for (const std::string& secret :
       {std::string(kKubeToken), std::string(kSecretKey), emulator_->api_token()}) {
    EXPECT_THAT(agent->Logs(), Not(HasSubstr(secret)));
  }
  EXPECT_EQ(agent->Stop(), 0);
}

TEST_F(AgentKubernetesTest, ErrorPbInS3MakesTheRunFailedWhileTheTaskSucceeds) {
  flyteidl::core::ErrorDocument document;
  document.mutable_error()->set_code("USER:ZeroDivisionError");
  document.mutable_error()->set_message("division by zero");
  const std::string prefix = OutputPrefix("n0");
  s3_->PutObject(kBucket, prefix.substr(prefix.find('/', 5) + 1) + "/error.pb", document.SerializeAsString());
  auto agent = StartAgent();
  const std::string meta = Create(*agent, "n0");
  SetStatus(meta, Terminated(meta, "Succeeded", 0, "Completed"));
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  const std::string custom_id = CustomRunId(resource);
  EXPECT_EQ(RunField(custom_id, "flyte/phase"), "FAILED");
  EXPECT_EQ(RunField(custom_id, "flyte/error"), "USER:ZeroDivisionError: division by zero");
  EXPECT_EQ(RunField(custom_id, "flyte/error_file_checked"), "true");
  EXPECT_EQ(RunField(custom_id, "sys/failed"), "true");
}

TEST_F(AgentKubernetesTest, UnderAnUnreadableSchemeTheRunSaysErrorPbWasNotChecked) {
  auto agent = StartAgent();
  const std::string meta = agent->CreateTask(MakeCreateRequest("n0", 0, "gs://bucket/metadata/n0/data/0"));
  SetStatus(meta, Terminated(meta, "Succeeded", 0, "Completed"));
  const std::string custom_id = CustomRunId(agent->PollPhase(meta, TaskExecution::SUCCEEDED));
  EXPECT_EQ(RunField(custom_id, "flyte/phase"), "SUCCEEDED");
  EXPECT_EQ(RunField(custom_id, "flyte/error_file_checked"), "false");
  EXPECT_EQ(s3_->RequestCount("s3"), 0);
}

TEST_F(AgentKubernetesTest, AnOomKilledPodIsARetryableFailure) {
  auto agent = StartAgent();
  const std::string meta = Create(*agent, "n0");
  SetStatus(meta, Terminated(meta, "Failed", 137, "OOMKilled"));
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::RETRYABLE_FAILED);
  EXPECT_THAT(resource.message(), HasSubstr("OOMKilled"));
  EXPECT_EQ(RunField(CustomRunId(resource), "flyte/phase"), "RETRYABLE_FAILED");
}

TEST_F(AgentKubernetesTest, DeleteTaskDeletesThePodAndMarksTheRunAborted) {
  auto agent = StartAgent();
  const std::string meta = Create(*agent, "n0");
  SetStatus(meta, Running(meta));
  const std::string custom_id = CustomRunId(agent->PollPhase(meta, TaskExecution::RUNNING));
  grpc::ClientContext context;
  flyteidl::admin::DeleteTaskRequest request;
  request.set_resource_meta(meta);
  request.mutable_task_category()->set_name("neptune");
  flyteidl::admin::DeleteTaskResponse response;
  ASSERT_TRUE(agent->agent().DeleteTask(&context, request, &response).ok());
  EXPECT_FALSE(kube_->GetPod(kNamespace, PodName(meta)).has_value());
  EXPECT_EQ(RunField(custom_id, "flyte/phase"), "ABORTED");
}

TEST_F(AgentKubernetesTest, ARestartedAgentResumesAPendingFinalWrite) {
  auto agent = StartAgent({"--tracking.finalize_grace=0s"});
  const std::string meta = Create(*agent, "n0");
  SetStatus(meta, Running(meta));
  const std::string custom_id = CustomRunId(agent->PollPhase(meta, TaskExecution::RUNNING));

  // Neptune goes down as the task ends: the phase is reported, the write is recorded on the Pod.
  emulator_->SetOutage(neptune_emulator::Outage::kUnavailable);
  SetStatus(meta, Terminated(meta, "Succeeded", 0, "Completed"));
  const flyteidl::admin::Resource resource = agent->PollPhase(meta, TaskExecution::SUCCEEDED);
  EXPECT_THAT(resource.message(), HasSubstr("retrying in the background"));
  EXPECT_NE(Annotation(meta, "flyte-neptune-agent/pending-final-write"), "");
  agent->Kill();

  // A new agent, Neptune back: the write lands without any GetTask.
  emulator_->SetOutage(neptune_emulator::Outage::kNone);
  auto restarted = StartAgent();
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (RunField(custom_id, "flyte/phase") != "SUCCEEDED" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(RunField(custom_id, "flyte/phase"), "SUCCEEDED") << restarted->Logs();
  while (Annotation(meta, "flyte-neptune-agent/run-finalized-at").empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(Annotation(meta, "flyte-neptune-agent/run-finalized-at"), "");
  EXPECT_EQ(Annotation(meta, "flyte-neptune-agent/pending-final-write"), "");
}

TEST_F(AgentKubernetesTest, GetTaskLogsFollowsThePodUntilItFinishes) {
  auto agent = StartAgent();
  const std::string meta = Create(*agent, "n0");
  SetStatus(meta, Running(meta));
  const absl::Time t0 = absl::Now();
  kube_->AppendPodLog(kNamespace, PodName(meta), PodName(meta),
                      {{t0, "epoch 1 loss=0.9"}, {t0, "epoch 2 loss=0.5"}});

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  flyteidl::admin::GetTaskLogsRequest request;
  request.set_resource_meta(meta);
  request.mutable_task_category()->set_name("neptune");
  auto reader = agent->agent().GetTaskLogs(&context, request);
  std::vector<std::string> lines;
  std::string token;
  flyteidl::admin::GetTaskLogsResponse part;
  // The first two lines arrive while the Pod runs; then more lines and the end of the Pod end the stream.
  while (lines.size() < 2 && reader->Read(&part)) {
    if (part.has_header()) token = part.header().token();
    for (const auto& line : part.body().structured_lines()) {
      lines.push_back(line.message());
      EXPECT_EQ(line.timestamp().seconds(), absl::ToUnixSeconds(t0));
    }
  }
  kube_->AppendPodLog(kNamespace, PodName(meta), PodName(meta), {{t0 + absl::Seconds(1), "done"}});
  SetStatus(meta, Terminated(meta, "Succeeded", 0, "Completed"));
  while (reader->Read(&part)) {
    if (part.has_header()) token = part.header().token();
    for (const auto& line : part.body().structured_lines()) lines.push_back(line.message());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(lines, ::testing::ElementsAre("epoch 1 loss=0.9", "epoch 2 loss=0.5", "done"));
  EXPECT_FALSE(token.empty());
}

TEST_F(AgentKubernetesTest, AKubeconfigThatCannotBeReadStopsTheAgentWithAClearError) {
  AgentProcess agent(dir_.path(), {"--executor.kind=kubernetes",
                                   "--executor.kubernetes.kubeconfig=" + dir_.path() + "/missing"});
  EXPECT_FALSE(agent.ok());
  EXPECT_EQ(agent.WaitExit(), 1);
  EXPECT_THAT(agent.Logs(), HasSubstr("cannot set up the Kubernetes executor"));
  EXPECT_THAT(agent.Logs(), HasSubstr(dir_.path() + "/missing"));
}

}  // namespace
}  // namespace fna::e2e
