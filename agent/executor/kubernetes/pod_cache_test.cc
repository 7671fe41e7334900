// The Pod cache and the executor reading from it, against the fake API server over real HTTP: the request
// rate stays flat however many tasks are polled and however often, and the cache survives streams cut
// mid-event, 410 Gone and a restarted agent without a wrong phase, a second Pod or a missed finished one.
// Watch events arrive asynchronously, so tests wait (bounded) for them; backoffs run on the fake clock.

#include "agent/executor/kubernetes/pod_cache.h"

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/executor/kubernetes/kubernetes_executor.h"
#include "agent/kube/kube_client.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/flyte_requests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

namespace fna::executor::kubernetes {
namespace {

using Json = nlohmann::json;

constexpr char kNamespace[] = "flytesnacks-development";
constexpr char kToken[] = "kube-token-cache";

// Polls `done` every 5 ms for at most 20 s of real time: watch events travel over a real connection.
bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

Json Succeeded(const std::string& name) {
  return {{"phase", "Succeeded"},
          {"containerStatuses", Json::array({{{"name", name},
                                              {"ready", false},
                                              {"restartCount", 0},
                                              {"image", "i"},
                                              {"imageID", ""},
                                              {"state",
                                               {{"terminated",
                                                 {{"exitCode", 0},
                                                  {"reason", "Completed"},
                                                  {"startedAt", "2026-01-01T00:00:00Z"},
                                                  {"finishedAt", "2026-01-01T00:01:00Z"}}}}}}})}};
}

Json Running(const std::string& name) {
  return {{"phase", "Running"},
          {"containerStatuses",
           Json::array({{{"name", name},
                         {"ready", true},
                         {"restartCount", 0},
                         {"image", "i"},
                         {"imageID", ""},
                         {"state", {{"running", {{"startedAt", "2026-01-01T00:00:00Z"}}}}}}})}};
}

class PodCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_kube::FakeKubeApiServer::Options options;
    options.clock = &clock_;
    options.worker_threads = 32;
    auto server = fake_kube::FakeKubeApiServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AcceptToken(kToken);
    Restart();
  }

  void TearDown() override {
    executor_.reset();
    if (cache_ != nullptr) cache_->Stop();
    cache_.reset();
    client_.reset();
    server_.reset();
  }

  // A new client, cache and executor: another replica, or the agent after a restart.
  void Restart() {
    executor_.reset();
    if (cache_ != nullptr) cache_->Stop();
    cache_.reset();
    kube::ClusterConnection connection;
    connection.server = server_->url();
    connection.token = Secret(kToken);
    kube::KubeClientOptions client_options;
    client_options.qps = 100000;  // the test measures the executor's calls, not the client's limiter
    client_options.burst = 100000;
    auto client = kube::KubeClient::Create(connection, client_options, &clock_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
    KubernetesExecutorOptions options;
    options.owner_references = false;
    PodCacheOptions cache_options;
    cache_options.label_selector =
        absl::StrCat(kManagedByLabel, "=", kManagedByValue, ",", kAgentLabel, "=", options.agent_name);
    cache_ = std::make_unique<PodCache>(client_.get(), cache_options, &clock_);
    cache_->Start();
    executor_ = std::make_unique<KubernetesExecutor>(client_.get(), options, &clock_, cache_.get());
  }

  TaskSpec Spec(int i) {
    if (requests_.size() <= static_cast<size_t>(i)) requests_.resize(i + 1);
    if (requests_[i] == nullptr) {
      requests_[i] =
          std::make_unique<flyteidl::admin::CreateTaskRequest>(MakeCreateRequest(absl::StrCat("n", i)));
    }
    TaskSpec spec;
    spec.name = absl::StrCat("f6c5d2a1b9e8a4c3d2b1-n", i, "-0");
    spec.k8s_namespace = kNamespace;
    spec.request = requests_[i].get();
    spec.neptune_project = "ml/flyte";
    spec.custom_run_id = absl::StrCat("run-", i);
    return spec;
  }

  TaskState State(int i) {
    auto status = executor_->GetStatus(Spec(i).ref());
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? status->state : TaskState::kPending;
  }

  // Starts `n` tasks and waits until the cache holds them all.
  void StartTasks(int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(executor_->Start(Spec(i)).ok()) << i;
    ASSERT_TRUE(Eventually([&] { return cache_->synced(); }));
  }

  // API requests while propeller polls `polls` GetTask over `tasks` tasks: none, in steady state.
  void ExpectPollsCostNoRequests(int tasks, int polls) {
    server_->ClearRequests();
    std::mt19937 random(7);
    for (int i = 0; i < polls; ++i) {
      ASSERT_EQ(State(static_cast<int>(random() % tasks)), TaskState::kPending);
    }
    EXPECT_EQ(server_->RequestCount("get", "pods"), 0);
    EXPECT_EQ(server_->RequestCount("list", "pods"), 0);
    EXPECT_EQ(server_->RequestCount("watch", "pods"), 0);  // the one stream opened before stays open
    EXPECT_EQ(server_->open_watches(), 1);
  }

  FakeClock clock_;
  std::unique_ptr<fake_kube::FakeKubeApiServer> server_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<PodCache> cache_;
  std::unique_ptr<KubernetesExecutor> executor_;
  std::vector<std::unique_ptr<flyteidl::admin::CreateTaskRequest>> requests_;
};

TEST_F(PodCacheTest, ReadinessWaitsForTheFirstList) {
  // The role cannot list Pods yet: the agent is not ready, and says why in its logs.
  server_->Forbid("list", "pods");
  Restart();
  ASSERT_TRUE(
      Eventually([&] { return server_->RequestCount("list", "pods") >= 2; }));  // retried with backoff
  EXPECT_FALSE(executor_->Ready());
  server_->Allow("list", "pods");
  server_->ClearRequests();
  EXPECT_TRUE(Eventually([&] { return executor_->Ready(); }));
  EXPECT_EQ(server_->RequestCount("list", "pods", std::string("")), 1);  // cluster-wide, label-selected
  const auto lists = server_->Requests();
  for (const auto& request : lists) {
    if (request.verb == "list") {
      EXPECT_THAT(request.query, ::testing::HasSubstr("labelSelector="));
    }
  }
}

TEST_F(PodCacheTest, RequestsDoNotGrowWithTasksOrPollsAt100Tasks) {
  StartTasks(100);
  ExpectPollsCostNoRequests(100, 1000);  // 200 GetTask/s for 5 s
}

TEST_F(PodCacheTest, RequestsDoNotGrowWithTasksOrPollsAt5000Tasks) {
  StartTasks(5000);
  ExpectPollsCostNoRequests(5000, 1000);
  ExpectPollsCostNoRequests(5000, 4000);  // four times the poll rate: still nothing
}

TEST_F(PodCacheTest, OnlyCreatedAndFinishedPodsCostRequests) {
  StartTasks(50);
  server_->ClearRequests();
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(i).name, Succeeded(Spec(i).name)).ok());
  ASSERT_TRUE(Eventually([&] { return State(9) == TaskState::kSucceeded; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(State(i), TaskState::kSucceeded) << i;
  for (int i = 10; i < 50; ++i) EXPECT_EQ(State(i), TaskState::kPending) << i;
  EXPECT_EQ(server_->RequestCount("get", "pods"), 0);
  // Ten more tasks: ten creates, and their first polls are served from what the creates returned.
  for (int i = 50; i < 60; ++i) ASSERT_TRUE(executor_->Start(Spec(i)).ok());
  for (int i = 50; i < 60; ++i) EXPECT_EQ(State(i), TaskState::kPending);
  EXPECT_EQ(server_->RequestCount("create", "pods"), 10);
  EXPECT_EQ(server_->RequestCount("get", "pods"), 0);
}

TEST_F(PodCacheTest, APodTheCacheHasNotSeenIsReadFromTheApi) {
  StartTasks(1);
  // Created by another replica a moment ago: this replica's watch may not have it yet.
  server_->ClearRequests();
  auto other = MakeCreateRequest("n1");
  TaskSpec spec = Spec(1);
  ASSERT_TRUE(
      server_
          ->PutObject(absl::StrCat("/api/v1/namespaces/", kNamespace, "/pods/", spec.name),
                      Json{{"apiVersion", "v1"},
                           {"kind", "Pod"},
                           {"metadata", {{"labels", {{kManagedByLabel, kManagedByValue}}}}},
                           {"spec", {{"containers", Json::array({{{"name", spec.name}, {"image", "i"}}})}}},
                           {"status", Running(spec.name)}})
          .ok());
  auto status = executor_->GetStatus(spec.ref());  // a miss, or the watch was faster: either way right
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, TaskState::kRunning);
  EXPECT_LE(server_->RequestCount("get", "pods"), 1);
  // A Pod nobody ever created: the API's 404 is the answer.
  EXPECT_EQ(executor_->GetStatus(Spec(7).ref()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PodCacheTest, AStreamCutMidEventLosesNothing) {
  StartTasks(20);
  const int64_t watches = cache_->stats().watches;
  for (int round = 0; round < 3; ++round) {
    server_->CutWatchesMidEvent();
    for (int i = round * 5; i < round * 5 + 5; ++i) {
      ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(i).name, Running(Spec(i).name)).ok());
    }
  }
  ASSERT_TRUE(Eventually([&] {
    for (int i = 0; i < 15; ++i) {
      Json pod;
      if (cache_->Get(kNamespace, Spec(i).name, &pod) != CacheLookup::kHit ||
          pod["status"]["phase"] != "Running") {
        return false;
      }
    }
    return true;
  }));
  EXPECT_GT(cache_->stats().watches, watches);
  EXPECT_EQ(cache_->stats().relists_after_gone, 0);
  server_->ClearRequests();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(State(i), i < 15 ? TaskState::kRunning : TaskState::kPending) << i;
  EXPECT_EQ(server_->RequestCount("get", "pods"), 0);
}

TEST_F(PodCacheTest, GoneRelistsAndPodsDeletedMeanwhileAreGone) {
  StartTasks(10);
  ASSERT_TRUE(Eventually([&] { return server_->open_watches() == 1; }));
  const int64_t lists = cache_->stats().lists;
  // The history behind the cache's version is compacted while its stream is down; meanwhile Pods change.
  server_->CompactHistory();
  ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(0).name, Succeeded(Spec(0).name)).ok());
  ASSERT_TRUE(server_->DeletePodFromOutside(kNamespace, Spec(1).name).ok());
  server_->CompactHistory();
  server_->CloseWatches();
  ASSERT_TRUE(
      Eventually([&] { return cache_->stats().relists_after_gone >= 1 && cache_->stats().lists > lists; }));
  ASSERT_TRUE(Eventually([&] {
    Json pod;
    return cache_->Get(kNamespace, Spec(0).name, &pod) == CacheLookup::kHit &&
           pod["status"]["phase"] == "Succeeded";
  }));
  Json pod;
  EXPECT_EQ(cache_->Get(kNamespace, Spec(1).name, &pod), CacheLookup::kDeleted);
  EXPECT_EQ(State(0), TaskState::kSucceeded);
  EXPECT_EQ(executor_->GetStatus(Spec(1).ref()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(State(2), TaskState::kPending);
}

TEST_F(PodCacheTest, BookmarksMoveTheWatchForwardWithoutARelist) {
  StartTasks(3);
  ASSERT_TRUE(Eventually([&] { return server_->open_watches() == 1; }));
  server_->SendBookmarks();
  server_->CloseWatches();
  ASSERT_TRUE(Eventually([&] { return cache_->stats().watches >= 2 && server_->open_watches() == 1; }));
  ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(2).name, Running(Spec(2).name)).ok());
  ASSERT_TRUE(Eventually([&] {
    Json pod;
    return cache_->Get(kNamespace, Spec(2).name, &pod) == CacheLookup::kHit &&
           pod["status"]["phase"] == "Running";
  }));
  EXPECT_EQ(cache_->stats().lists, 1);
}

TEST_F(PodCacheTest, ARestartedAgentReportsEveryPhaseAndCreatesNoSecondPod) {
  StartTasks(30);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(i).name, Running(Spec(i).name)).ok());
  // The agent goes away; Pods go on without it: some finish, one is deleted.
  executor_.reset();
  cache_->Stop();
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(server_->SetPodStatus(kNamespace, Spec(i).name, Succeeded(Spec(i).name)).ok());
  ASSERT_TRUE(server_->DeletePodFromOutside(kNamespace, Spec(29).name).ok());
  server_->ClearRequests();
  Restart();
  ASSERT_TRUE(Eventually([&] { return executor_->Ready(); }));
  // Propeller re-delivers CreateTask for some: adopted, never created twice.
  for (int i = 0; i < 30; i += 3) {
    if (i != 29) {
      ASSERT_TRUE(executor_->Start(Spec(i)).ok());
    }
  }
  EXPECT_EQ(server_->RequestCount("create", "pods"), 10);
  for (const auto& request : server_->Requests()) {
    if (request.verb == "create") {
      EXPECT_EQ(request.status, 409);
    }
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(State(i), TaskState::kSucceeded) << i;
  for (int i = 5; i < 10; ++i) EXPECT_EQ(State(i), TaskState::kRunning) << i;
  for (int i = 10; i < 29; ++i) EXPECT_EQ(State(i), TaskState::kPending) << i;
  EXPECT_EQ(executor_->GetStatus(Spec(29).ref()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PodCacheTest, SweeperAndPendingWritesUseTheCache) {
  StartTasks(5);
  ASSERT_TRUE(executor_->RecordPendingFinalWrite(Spec(0).ref(), "record").ok());
  server_->ClearRequests();
  auto records = executor_->ListPendingFinalWrites();
  ASSERT_TRUE(records.ok());
  EXPECT_THAT(*records, ::testing::ElementsAre("record"));
  ASSERT_TRUE(executor_->Sweep().ok());
  EXPECT_EQ(server_->RequestCount("list", "pods"), 0);
}

TEST_F(PodCacheTest, StopIsPromptWithAWatchOpen) {
  StartTasks(1);
  ASSERT_TRUE(Eventually([&] { return server_->open_watches() == 1; }));
  const auto started = std::chrono::steady_clock::now();
  cache_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

}  // namespace
}  // namespace fna::executor::kubernetes
