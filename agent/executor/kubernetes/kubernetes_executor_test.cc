// The Kubernetes executor against the fake API server (tests/fake_kube_apiserver), over real HTTP: Pods
// created once however often CreateTask comes, real status sequences, the agent's annotations, abort, and
// the sweeper.

#include "agent/executor/kubernetes/kubernetes_executor.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/executor/kubernetes/testing/manifest_validator.h"
#include "agent/kube/kube_client.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/flyte_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

namespace fna::executor::kubernetes {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kNamespace[] = "flytesnacks-development";
constexpr char kToken[] = "kube-token-9f8e7d6c";
constexpr char kNeptuneToken[] = "neptune-token-value-must-never-appear";

std::string Rfc3339(absl::Time t) { return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()); }

class KubernetesExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_kube::FakeKubeApiServer::Options server_options;
    server_options.clock = &clock_;
    auto server = fake_kube::FakeKubeApiServer::Start(server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AcceptToken(kToken);
    ASSERT_TRUE(server_
                    ->PutObject(absl::StrCat("/apis/flyte.lyft.com/v1alpha1/namespaces/", kNamespace,
                                             "/flyteworkflows/f6c5d2a1b9e8a4c3d2b1"),
                                Json{{"apiVersion", "flyte.lyft.com/v1alpha1"}, {"kind", "FlyteWorkflow"}})
                    .ok());
    options_.pod.token_namespaces = {kNamespace};
    options_.cleanup_delay = absl::Hours(1);
    NewExecutor();
  }

  // Every Pod the executor created in the test passes the offline validators (types and unknown fields,
  // kubernetes-executor.md §5).
  void TearDown() override {
    std::set<std::string> bodies;
    for (const fake_kube::RequestRecord& request : server_->Requests()) {
      if (request.verb == "create" && request.resource == "pods") bodies.insert(request.body);
    }
    for (const std::string& body : bodies) {
      const absl::Status valid = testing::ValidateManifest(nlohmann::ordered_json::parse(body));
      if (valid.code() == absl::StatusCode::kUnavailable) break;  // validators not installed here
      EXPECT_TRUE(valid.ok()) << valid.message() << "\n" << body;
    }
    executor_.reset();
    client_.reset();
    server_.reset();
  }

  // A new executor and client, as a restarted agent (or another replica) has.
  void NewExecutor(const std::string& agent_name = "neptune-agent") {
    kube::ClusterConnection connection;
    connection.server = server_->url();
    connection.token = Secret(kToken);
    kube::KubeClientOptions client_options;
    client_options.random = [] { return 0.5; };
    auto client = kube::KubeClient::Create(connection, client_options, &clock_);
    ASSERT_TRUE(client.ok()) << client.status();
    executor_.reset();
    client_ = *std::move(client);
    KubernetesExecutorOptions options = options_;
    options.agent_name = agent_name;
    executor_ = std::make_unique<KubernetesExecutor>(client_.get(), options, &clock_);
  }

  // The spec the lifecycle hands over for attempt `node_id`.
  TaskSpec Spec(const std::string& node_id = "n0", bool tracked = true) {
    requests_.push_back(std::make_unique<flyteidl::admin::CreateTaskRequest>(MakeCreateRequest(node_id, 0)));
    TaskSpec spec;
    spec.name = absl::StrCat("f6c5d2a1b9e8a4c3d2b1-", node_id, "-0");
    spec.k8s_namespace = kNamespace;
    spec.request = requests_.back().get();
    if (tracked) {
      spec.neptune_project = "ml-team/flyte";
      spec.custom_run_id = absl::StrCat("run-", node_id);
    }
    return spec;
  }

  Json StoredPod(const std::string& name) {
    auto pod = server_->GetPod(kNamespace, name);
    EXPECT_TRUE(pod.has_value()) << name;
    return pod.value_or(Json());
  }

  void SetStatus(const std::string& name, const Json& status) {
    ASSERT_TRUE(server_->SetPodStatus(kNamespace, name, status).ok());
  }

  Json RunningStatus(const std::string& name) {
    const std::string started = Rfc3339(clock_.Now());
    return {{"phase", "Running"},
            {"startTime", started},
            {"conditions",
             Json::array({{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", started}}})},
            {"containerStatuses", Json::array({{{"name", name},
                                                {"ready", true},
                                                {"restartCount", 0},
                                                {"image", "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"},
                                                {"imageID", ""},
                                                {"state", {{"running", {{"startedAt", started}}}}}}})}};
  }

  Json TerminatedStatus(const std::string& name, const std::string& phase, int exit_code,
                        const std::string& reason) {
    const std::string started = Rfc3339(clock_.Now() - absl::Minutes(5));
    const std::string finished = Rfc3339(clock_.Now());
    return {{"phase", phase},
            {"startTime", started},
            {"conditions", Json::array({{{"type", "Ready"},
                                         {"status", "False"},
                                         {"reason", "PodCompleted"},
                                         {"lastTransitionTime", finished}}})},
            {"containerStatuses", Json::array({{{"name", name},
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

  Json ImagePullBackOffStatus(const std::string& name, absl::Time since) {
    return {{"phase", "Pending"},
            {"conditions",
             Json::array(
                 {{{"type", "Ready"},
                   {"status", "False"},
                   {"reason", "ContainersNotReady"},
                   {"message", absl::StrCat("containers with unready status: [", name, "]")},
                   {"lastTransitionTime", Rfc3339(since)}},
                  {{"type", "PodScheduled"}, {"status", "True"}, {"lastTransitionTime", Rfc3339(since)}}})},
            {"containerStatuses",
             Json::array(
                 {{{"name", name},
                   {"ready", false},
                   {"restartCount", 0},
                   {"image", "ghcr.io/flyteorg/no-such-image:1"},
                   {"imageID", ""},
                   {"state",
                    {{"waiting",
                      {{"reason", "ImagePullBackOff"},
                       {"message", "Back-off pulling image \"ghcr.io/flyteorg/no-such-image:1\""}}}}}}})}};
  }

  TaskStatus Status(const TaskSpec& spec) {
    auto status = executor_->GetStatus(spec.ref());
    EXPECT_TRUE(status.ok()) << status.status();
    return status.value_or(TaskStatus());
  }

  FakeClock clock_;
  std::unique_ptr<fake_kube::FakeKubeApiServer> server_;
  std::unique_ptr<kube::KubeClient> client_;
  KubernetesExecutorOptions options_;
  std::unique_ptr<KubernetesExecutor> executor_;
  std::vector<std::unique_ptr<flyteidl::admin::CreateTaskRequest>> requests_;
};

TEST_F(KubernetesExecutorTest, StartCreatesTheAttemptsPodOnceHoweverOftenCreateTaskComes) {
  ::setenv("NEPTUNE_API_TOKEN", kNeptuneToken, 1);
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  NewExecutor();  // another replica
  ASSERT_TRUE(executor_->Start(spec).ok());
  ASSERT_TRUE(executor_->Start(spec).ok());
  ::unsetenv("NEPTUNE_API_TOKEN");

  EXPECT_EQ(server_->RequestCount("create", "pods"), 3);
  EXPECT_EQ(server_->RequestCount("list", "pods"), 0);
  const Json pod = StoredPod(spec.name);
  EXPECT_EQ(pod["metadata"]["labels"][kManagedByLabel], kManagedByValue);
  EXPECT_EQ(pod["metadata"]["labels"][kAgentLabel], "neptune-agent");
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(pod["spec"]["serviceAccountName"], "default");
  // The workflow's ownerReference, with the CR's uid.
  const auto workflow = server_->GetObject(absl::StrCat("/apis/flyte.lyft.com/v1alpha1/namespaces/",
                                                        kNamespace, "/flyteworkflows/f6c5d2a1b9e8a4c3d2b1"));
  ASSERT_TRUE(workflow.has_value());
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["uid"], (*workflow)["metadata"]["uid"]);
  // The token is a Secret reference, never a value, anywhere in what was sent.
  EXPECT_THAT(pod.dump(), HasSubstr("secretKeyRef"));
  for (const fake_kube::RequestRecord& request : server_->Requests()) {
    EXPECT_THAT(request.body, Not(HasSubstr(kNeptuneToken)));
  }
  EXPECT_THAT(pod.dump(), Not(HasSubstr(kNeptuneToken)));
}

TEST_F(KubernetesExecutorTest, AForeignPodOfTheSameNameIsNotAdopted) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  NewExecutor("other-agent");
  const absl::Status started = executor_->Start(spec);
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("was not created by agent \"other-agent\""));
}

TEST_F(KubernetesExecutorTest, WithoutReadAccessToWorkflowsPodsHaveNoOwnerAndTheAgentStopsAsking) {
  server_->Forbid("get", "flyteworkflows");
  ASSERT_TRUE(executor_->Start(Spec("n0")).ok());
  ASSERT_TRUE(executor_->Start(Spec("n1")).ok());
  EXPECT_FALSE(StoredPod(Spec("n0").name)["metadata"].contains("ownerReferences"));
  EXPECT_EQ(server_->RequestCount("get", "flyteworkflows"), 1);
}

TEST_F(KubernetesExecutorTest, ARejectedPodIsAnErrorNamingTheCause) {
  server_->Forbid("create", "pods", std::string(kNamespace));
  const absl::Status started = executor_->Start(Spec());
  EXPECT_EQ(started.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(started.message(), HasSubstr("create pods in namespace \"flytesnacks-development\""));
}

TEST_F(KubernetesExecutorTest, StatusFollowsThePodFromPendingToSucceeded) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  EXPECT_EQ(Status(spec).state, TaskState::kPending);

  SetStatus(spec.name, RunningStatus(spec.name));
  EXPECT_EQ(Status(spec).state, TaskState::kRunning);

  clock_.Advance(absl::Minutes(5));
  SetStatus(spec.name, TerminatedStatus(spec.name, "Succeeded", 0, "Completed"));
  const TaskStatus done = Status(spec);
  EXPECT_EQ(done.state, TaskState::kSucceeded);
  EXPECT_EQ(done.exit_code, 0);
  ASSERT_TRUE(done.started_at.has_value() && done.finished_at.has_value());
  EXPECT_EQ(*done.finished_at - *done.started_at, absl::Minutes(5));
  EXPECT_FALSE(done.run_finalized);
}

TEST_F(KubernetesExecutorTest, FailuresMapAsThePodPluginMapsThem) {
  const TaskSpec exit1 = Spec("n1");
  const TaskSpec oom = Spec("n2");
  const TaskSpec evicted = Spec("n3");
  for (const TaskSpec* spec : {&exit1, &oom, &evicted}) ASSERT_TRUE(executor_->Start(*spec).ok());
  SetStatus(exit1.name, TerminatedStatus(exit1.name, "Failed", 1, "Error"));
  SetStatus(oom.name, TerminatedStatus(oom.name, "Failed", 137, "OOMKilled"));
  SetStatus(
      evicted.name,
      {{"phase", "Failed"}, {"reason", "Evicted"}, {"message", "The node was low on resource: memory."}});

  const TaskStatus failed = Status(exit1);
  EXPECT_EQ(failed.state, TaskState::kRetryableFailed);
  EXPECT_EQ(failed.exit_code, 1);
  const TaskStatus killed = Status(oom);
  EXPECT_EQ(killed.state, TaskState::kRetryableFailed);
  EXPECT_THAT(killed.message, HasSubstr("OOMKilled"));
  const TaskStatus eviction = Status(evicted);
  EXPECT_EQ(eviction.state, TaskState::kRetryableFailed);
  EXPECT_THAT(eviction.message, HasSubstr("The node was low on resource: memory."));
}

TEST_F(KubernetesExecutorTest, AnImagePullBackOffFailsOnlyAfterItsGracePeriod) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  SetStatus(spec.name, ImagePullBackOffStatus(spec.name, clock_.Now()));
  EXPECT_EQ(Status(spec).state, TaskState::kPending);
  clock_.Advance(absl::Minutes(3));
  const TaskStatus failed = Status(spec);
  EXPECT_EQ(failed.state, TaskState::kRetryableFailed);  // propeller: RetryableFailureWithCleanup
  EXPECT_THAT(failed.message, HasSubstr("ImagePullBackOff"));
}

TEST_F(KubernetesExecutorTest, UnschedulableStaysPendingWithTheSchedulersReason) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  SetStatus(spec.name,
            {{"phase", "Pending"},
             {"conditions", Json::array({{{"type", "PodScheduled"},
                                          {"status", "False"},
                                          {"reason", "Unschedulable"},
                                          {"message", "0/3 nodes are available: 3 Insufficient cpu."},
                                          {"lastTransitionTime", Rfc3339(clock_.Now())}}})}});
  const TaskStatus pending = Status(spec);
  EXPECT_EQ(pending.state, TaskState::kPending);
  EXPECT_THAT(pending.message, HasSubstr("Insufficient cpu"));
}

TEST_F(KubernetesExecutorTest, APodDeletedFromOutsideIsNotFound) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  ASSERT_TRUE(server_->DeletePodFromOutside(kNamespace, spec.name).ok());
  EXPECT_EQ(executor_->GetStatus(spec.ref()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KubernetesExecutorTest, AbortDeletesThePodAndATerminatingPodReadsAborted) {
  server_->SetDeletionMode(fake_kube::DeletionMode::kKeepTerminating);
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  SetStatus(spec.name, RunningStatus(spec.name));
  ASSERT_TRUE(executor_->Abort(spec.ref()).ok());
  EXPECT_EQ(server_->RequestCount("delete", "pods"), 1);
  EXPECT_EQ(Status(spec).state, TaskState::kAborted);
  ASSERT_TRUE(server_->FinalizeDeletion(kNamespace, spec.name).ok());
  EXPECT_FALSE(server_->GetPod(kNamespace, spec.name).has_value());
  // Again, and for a Pod that never existed: nothing to do.
  EXPECT_TRUE(executor_->Abort(spec.ref()).ok());
  EXPECT_TRUE(executor_->Abort(Spec("never").ref()).ok());
}

TEST_F(KubernetesExecutorTest, PendingFinalWritesLiveOnThePodForAnyReplica) {
  const TaskSpec one = Spec("n1");
  const TaskSpec two = Spec("n2");
  const TaskSpec other_namespace = [&] {
    TaskSpec spec = Spec("n3");
    spec.k8s_namespace = "flytesnacks-production";
    requests_.back()->mutable_task_execution_metadata()->set_namespace_("flytesnacks-production");
    return spec;
  }();
  for (const TaskSpec* spec : {&one, &two, &other_namespace}) ASSERT_TRUE(executor_->Start(*spec).ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite(one.ref(), std::string("record\0one", 10)).ok());
  ASSERT_TRUE(executor_->RecordPendingFinalWrite(other_namespace.ref(), "record three").ok());

  NewExecutor();  // a restarted agent
  auto records = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_THAT(*records, ::testing::UnorderedElementsAre(std::string("record\0one", 10), "record three"));
  EXPECT_EQ(Status(one).pending_final_write, std::string("record\0one", 10));
  EXPECT_FALSE(Status(two).pending_final_write.has_value());

  ASSERT_TRUE(executor_->MarkRunFinalized(one.ref()).ok());
  const TaskStatus finalized = Status(one);
  EXPECT_TRUE(finalized.run_finalized);
  EXPECT_FALSE(finalized.pending_final_write.has_value());
  records = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(records.ok());
  EXPECT_THAT(*records, ::testing::ElementsAre("record three"));
  EXPECT_FALSE(StoredPod(one.name)["metadata"]["labels"].contains(kPendingLabel));
}

TEST_F(KubernetesExecutorTest, ListsStayInTheConfiguredNamespaces) {
  options_.namespaces = {kNamespace};
  NewExecutor();
  ASSERT_TRUE(executor_->Start(Spec()).ok());
  server_->Forbid("list", "pods", std::string(""));  // no cluster-wide list in this RBAC mode
  ASSERT_TRUE(executor_->ListPendingFinalWrites().ok());
  ASSERT_TRUE(executor_->Sweep().ok());
  EXPECT_EQ(server_->RequestCount("list", "pods", std::string(kNamespace)), 2);
  EXPECT_EQ(server_->RequestCount("list", "pods", std::string("")), 0);
}

TEST_F(KubernetesExecutorTest, TheSweeperRemovesFinishedPodsByTheAgentsAnnotationsOnly) {
  const TaskSpec finished = Spec("n1");     // succeeded, finalized: goes after the delay
  const TaskSpec running = Spec("n2");      // finalized but running: never
  const TaskSpec unfinalized = Spec("n3");  // succeeded, run not final yet: kept
  const TaskSpec stuck = Spec("n4");        // image pull failure past its grace, finalized: at once
  const TaskSpec untracked = Spec("n5", /*tracked=*/false);  // no run: goes after the delay from its end
  for (const TaskSpec* spec : {&finished, &running, &unfinalized, &stuck, &untracked}) {
    ASSERT_TRUE(executor_->Start(*spec).ok());
  }
  SetStatus(stuck.name, ImagePullBackOffStatus(stuck.name, clock_.Now()));
  SetStatus(running.name, RunningStatus(running.name));
  clock_.Advance(absl::Minutes(5));
  for (const TaskSpec* spec : {&finished, &unfinalized, &untracked}) {
    SetStatus(spec->name, TerminatedStatus(spec->name, "Succeeded", 0, "Completed"));
  }
  for (const TaskSpec* spec : {&finished, &running, &stuck})
    ASSERT_TRUE(executor_->MarkRunFinalized(spec->ref()).ok());

  auto swept = executor_->Sweep();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 1);
  EXPECT_FALSE(server_->GetPod(kNamespace, stuck.name).has_value());

  clock_.Advance(absl::Minutes(59));
  swept = executor_->Sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 0);

  clock_.Advance(absl::Minutes(1));
  swept = executor_->Sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 2);
  EXPECT_FALSE(server_->GetPod(kNamespace, finished.name).has_value());
  EXPECT_FALSE(server_->GetPod(kNamespace, untracked.name).has_value());
  EXPECT_TRUE(server_->GetPod(kNamespace, running.name).has_value());
  EXPECT_TRUE(server_->GetPod(kNamespace, unfinalized.name).has_value());

  clock_.Advance(absl::Hours(24));
  swept = executor_->Sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 0);
  EXPECT_TRUE(server_->GetPod(kNamespace, running.name).has_value());
}

TEST_F(KubernetesExecutorTest, TheSweeperLeavesOtherAgentsPodsAlone) {
  NewExecutor("other-agent");
  const TaskSpec theirs = Spec("n1");
  ASSERT_TRUE(executor_->Start(theirs).ok());
  SetStatus(theirs.name, TerminatedStatus(theirs.name, "Succeeded", 0, "Completed"));
  ASSERT_TRUE(executor_->MarkRunFinalized(theirs.ref()).ok());
  NewExecutor();
  clock_.Advance(absl::Hours(2));
  auto swept = executor_->Sweep();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 0);
  EXPECT_TRUE(server_->GetPod(kNamespace, theirs.name).has_value());
}

std::vector<std::string> Messages(const LogBatch& batch) {
  std::vector<std::string> messages;
  for (const LogLine& line : batch.lines) messages.push_back(line.message);
  return messages;
}

TEST_F(KubernetesExecutorTest, LogsContinueFromTheirTokenWithoutRepeatsOrGaps) {
  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  // Not started yet: no lines, no error.
  auto batch = executor_->ReadLogs(spec.ref(), LogQuery());
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(batch->lines.empty());
  EXPECT_FALSE(batch->complete);

  SetStatus(spec.name, RunningStatus(spec.name));
  const absl::Time t0 = absl::FromUnixSeconds(1767225600) + absl::Milliseconds(250);
  server_->AppendPodLog(kNamespace, spec.name, spec.name,
                        {{t0, "epoch 1"}, {t0, "epoch 1 again"}, {t0 + absl::Milliseconds(900), "epoch 2"}});
  batch = executor_->ReadLogs(spec.ref(), LogQuery());
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Messages(*batch), ::testing::ElementsAre("epoch 1", "epoch 1 again", "epoch 2"));
  EXPECT_EQ(batch->lines[0].timestamp, t0);
  EXPECT_FALSE(batch->complete);

  // Two more lines, one in the same second as the last one read: only the new ones come back.
  server_->AppendPodLog(kNamespace, spec.name, spec.name,
                        {{t0 + absl::Milliseconds(900), "epoch 3"}, {t0 + absl::Seconds(2), "done"}});
  LogQuery next;
  next.token = batch->next_token;
  batch = executor_->ReadLogs(spec.ref(), next);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(Messages(*batch), ::testing::ElementsAre("epoch 3", "done"));

  // Finished and read to the end: complete; the last line again with tail_lines.
  SetStatus(spec.name, TerminatedStatus(spec.name, "Succeeded", 0, "Completed"));
  next.token = batch->next_token;
  batch = executor_->ReadLogs(spec.ref(), next);
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->lines.empty());
  EXPECT_TRUE(batch->complete);
  LogQuery tail;
  tail.tail_lines = 1;
  batch = executor_->ReadLogs(spec.ref(), tail);
  ASSERT_TRUE(batch.ok());
  EXPECT_THAT(Messages(*batch), ::testing::ElementsAre("done"));

  // A byte limit that cuts a line: the cut line comes whole in the next batch.
  LogQuery small;
  small.max_bytes = 70;
  batch = executor_->ReadLogs(spec.ref(), small);
  ASSERT_TRUE(batch.ok());
  EXPECT_THAT(Messages(*batch), ::testing::ElementsAre("epoch 1"));
  EXPECT_FALSE(batch->complete);
  small.token = batch->next_token;
  small.max_bytes = 1 << 20;
  batch = executor_->ReadLogs(spec.ref(), small);
  ASSERT_TRUE(batch.ok());
  EXPECT_THAT(Messages(*batch), ::testing::ElementsAre("epoch 1 again", "epoch 2", "epoch 3", "done"));

  LogQuery bad;
  bad.token = "not a token";
  EXPECT_EQ(executor_->ReadLogs(spec.ref(), bad).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(server_->DeletePodFromOutside(kNamespace, spec.name).ok());
  EXPECT_EQ(executor_->ReadLogs(spec.ref(), LogQuery()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KubernetesExecutorTest, ARotatedServiceAccountTokenIsPickedUpMidRun) {
  // A token file, as in cluster; the kubelet rewrites it and the API server stops accepting the old one.
  const std::string token_file = absl::StrCat(::testing::TempDir(), "/fna-kube-token-", getpid());
  {
    std::FILE* f = std::fopen(token_file.c_str(), "w");
    std::fputs(kToken, f);
    std::fclose(f);
  }
  kube::ClusterConnection connection;
  connection.server = server_->url();
  connection.token_file = token_file;
  auto client = kube::KubeClient::Create(connection, {}, &clock_);
  ASSERT_TRUE(client.ok()) << client.status();
  executor_.reset();
  client_ = *std::move(client);
  executor_ = std::make_unique<KubernetesExecutor>(client_.get(), options_, &clock_);

  const TaskSpec spec = Spec();
  ASSERT_TRUE(executor_->Start(spec).ok());
  {
    std::FILE* f = std::fopen(token_file.c_str(), "w");
    std::fputs("kube-token-rotated", f);
    std::fclose(f);
  }
  server_->AcceptToken("kube-token-rotated");
  server_->RevokeToken(kToken);
  SetStatus(spec.name, RunningStatus(spec.name));
  EXPECT_EQ(Status(spec).state, TaskState::kRunning);
  EXPECT_EQ(client_->stats().auth_retries, 1);
  std::remove(token_file.c_str());
}

}  // namespace
}  // namespace fna::executor::kubernetes
