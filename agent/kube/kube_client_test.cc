// The Kubernetes API client against the fake API server (tests/fake_kube_apiserver) over real HTTPS (and
// HTTP): one FakeClock drives the client's rate limit, backoff and token re-reads, so no test sleeps.

#include "agent/kube/kube_client.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/kube/cluster_connection.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

namespace fna::kube {
namespace {

using Json = nlohmann::json;
using fake_kube::FakeKubeApiServer;
using fake_kube::Fault;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNs[] = "flytesnacks-development";
constexpr char kToken[] = "kube-client-test-token-0123456789";
constexpr char kNewToken[] = "kube-client-test-token-rotated-9876543210";

Json PodJson(const std::string& name, Json labels = Json::object()) {
  return Json{{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
              {"spec",
               {{"restartPolicy", "Never"},
                {"containers", {{{"name", "main"}, {"image", "cr.flyte.org/task:v1"}}}}}}};
}

EnvGetter EnvOf(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/fna-kube-client-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    ASSERT_TRUE(testing::WriteTestPki(dir_, &pki_));
    token_file_ = dir_ + "/token";
    WriteToken(kToken);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void WriteToken(const std::string& token) { std::ofstream(token_file_, std::ios::trunc) << token << "\n"; }

  // An HTTPS fake accepting kToken, and a client reading its token from token_file_.
  void Start(KubeClientOptions options = {}, FakeKubeApiServer::Options server_options = {}) {
    server_options.tls_cert_file = pki_.server_cert_file;
    server_options.tls_key_file = pki_.server_key_file;
    StartServer(server_options);
    server_->AcceptToken(kToken);
    ClusterConnection connection;
    connection.server = server_->url();
    connection.ca_file = pki_.ca_file;
    connection.token_file = token_file_;
    connection.source = "test connection";
    StartClient(std::move(connection), std::move(options));
  }
  void StartServer(FakeKubeApiServer::Options options) {
    options.clock = &clock_;
    auto server = FakeKubeApiServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void StartClient(ClusterConnection connection, KubeClientOptions options = {}) {
    if (!options.random) options.random = [] { return 0.5; };  // backoff without jitter
    auto client = KubeClient::Create(std::move(connection), std::move(options), &clock_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }
  absl::Time Deadline(absl::Duration budget = absl::Minutes(5)) { return clock_.Now() + budget; }

  std::string dir_;
  testing::TestPki pki_;
  std::string token_file_;
  FakeClock clock_;
  std::unique_ptr<FakeKubeApiServer> server_;
  std::unique_ptr<KubeClient> client_;
};

TEST_F(KubeClientTest, CreateGetAndCreateAgain) {
  Start();
  absl::StatusOr<Json> created = client_->CreatePod(kNs, PodJson("task-a"), Deadline());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["namespace"], kNs);
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ((*created)["status"]["phase"], "Pending");
  EXPECT_FALSE((*created)["metadata"].contains("managedFields"));
  EXPECT_TRUE(server_->GetPod(kNs, "task-a")->at("metadata").contains("managedFields"));

  absl::StatusOr<Json> got = client_->GetPod(kNs, "task-a", Deadline());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, *created);

  absl::StatusOr<Json> again = client_->CreatePod(kNs, PodJson("task-a"), Deadline());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(),
            "kubernetes API: create pods in namespace \"flytesnacks-development\": 409 AlreadyExists: pods "
            "\"task-a\" already exists");

  absl::StatusOr<Json> missing = client_->GetPod(kNs, "nope", Deadline());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "kubernetes API: get pods \"nope\" in namespace \"flytesnacks-development\": 404 NotFound: pods "
            "\"nope\" "
            "not found");
}

TEST_F(KubeClientTest, SendsTheExpectedHeaders) {
  KubeClientOptions options;
  options.user_agent = "flyte-neptune-agent/test";
  Start(options);
  ASSERT_TRUE(client_->CreatePod(kNs, PodJson("task-a"), Deadline()).ok());
  ASSERT_TRUE(
      client_->PatchPod(kNs, "task-a", Json{{"metadata", {{"labels", {{"a", "b"}}}}}}, Deadline()).ok());
  ASSERT_TRUE(client_->GetPod(kNs, "task-a", Deadline()).ok());
  const std::vector<fake_kube::RequestRecord> requests = server_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.headers.at("Accept"), "application/json");
    EXPECT_EQ(request.headers.at("User-Agent"), "flyte-neptune-agent/test");
    EXPECT_EQ(request.headers.at("Authorization"), "Bearer [REDACTED]");
    EXPECT_EQ(request.user, fake_kube::kDefaultUser);
  }
  EXPECT_EQ(requests[0].headers.at("Content-Type"), "application/json");
  EXPECT_EQ(requests[1].headers.at("Content-Type"), "application/merge-patch+json");
  EXPECT_EQ(requests[2].headers.count("Content-Type"), 0u);
  EXPECT_EQ(server_->GetPod(kNs, "task-a")->at("metadata").at("managedFields")[0]["manager"],
            "flyte-neptune-agent");
}

TEST_F(KubeClientTest, DeleteIsOkWhenGoneAndHonoursTheUidPrecondition) {
  Start();
  absl::StatusOr<Json> pod = client_->CreatePod(kNs, PodJson("task-a"), Deadline());
  ASSERT_TRUE(pod.ok());
  const std::string uid = (*pod)["metadata"]["uid"];
  absl::Status status = client_->DeletePod(kNs, "task-a", "some-other-uid", Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("409 Conflict: Operation cannot be fulfilled on pods \"task-a\""));
  EXPECT_TRUE(server_->GetPod(kNs, "task-a").has_value());
  EXPECT_TRUE(client_->DeletePod(kNs, "task-a", uid, Deadline()).ok());
  EXPECT_FALSE(server_->GetPod(kNs, "task-a").has_value());
  EXPECT_TRUE(client_->DeletePod(kNs, "task-a", uid, Deadline()).ok());  // 404: already gone
  EXPECT_TRUE(client_->DeletePod(kNs, "never-there", std::nullopt, Deadline()).ok());
  const std::vector<fake_kube::RequestRecord> requests = server_->Requests();
  EXPECT_EQ(
      Json::parse(requests[1].body),
      Json::parse(R"({"apiVersion":"v1","kind":"DeleteOptions","preconditions":{"uid":"some-other-uid"}})"));
  EXPECT_TRUE(requests.back().body.empty());
  EXPECT_EQ(server_->RequestCount("delete", "pods", kNs), 4);

  // A terminating Pod is still there, marked, and deleting it again is fine.
  server_->SetDeletionMode(fake_kube::DeletionMode::kKeepTerminating);
  ASSERT_TRUE(client_->CreatePod(kNs, PodJson("task-b"), Deadline()).ok());
  EXPECT_TRUE(client_->DeletePod(kNs, "task-b", std::nullopt, Deadline()).ok());
  EXPECT_TRUE(client_->DeletePod(kNs, "task-b", std::nullopt, Deadline()).ok());
  absl::StatusOr<Json> terminating = client_->GetPod(kNs, "task-b", Deadline());
  ASSERT_TRUE(terminating.ok());
  EXPECT_TRUE((*terminating)["metadata"].contains("deletionTimestamp"));
}

TEST_F(KubeClientTest, PatchSetsAndClearsAnnotations) {
  Start();
  ASSERT_TRUE(client_->CreatePod(kNs, PodJson("task-a"), Deadline()).ok());
  absl::StatusOr<Json> patched = client_->PatchPod(
      kNs, "task-a", Json{{"metadata", {{"annotations", {{"flyte-neptune-agent/final-write", "pending"}}}}}},
      Deadline());
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["metadata"]["annotations"]["flyte-neptune-agent/final-write"], "pending");
  EXPECT_FALSE((*patched)["metadata"].contains("managedFields"));
  patched = client_->PatchPod(
      kNs, "task-a", Json{{"metadata", {{"annotations", {{"flyte-neptune-agent/final-write", nullptr}}}}}},
      Deadline());
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_FALSE((*patched)["metadata"].contains("annotations"));
  EXPECT_FALSE(server_->GetPod(kNs, "task-a")->at("metadata").contains("annotations"));
  EXPECT_EQ(client_->PatchPod(kNs, "nope", Json::object(), Deadline()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KubeClientTest, ListBySelectorAcrossNamespacesWithPaging) {
  Start();
  for (const char* ns : {"ns-a", "ns-b", "ns-c"}) {
    for (const char* name : {"p0", "p1"}) {
      ASSERT_TRUE(client_
                      ->CreatePod(ns,
                                  PodJson(name, {{"app.kubernetes.io/managed-by", "flyte-neptune-agent"}}),
                                  Deadline())
                      .ok());
    }
    ASSERT_TRUE(client_->CreatePod(ns, PodJson("other", {{"app", "other"}}), Deadline()).ok());
  }
  const std::string selector = "app.kubernetes.io/managed-by in (flyte-neptune-agent)";
  absl::StatusOr<PodList> all = client_->ListPods("", selector, 0, "", Deadline());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->items.size(), 6u);
  EXPECT_TRUE(all->continue_token.empty());
  EXPECT_EQ(all->resource_version, "9");
  EXPECT_FALSE(all->items[0]["metadata"].contains("managedFields"));
  absl::StatusOr<PodList> one = client_->ListPods("ns-b", "app!=other", 0, "", Deadline());
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->items.size(), 2u);
  EXPECT_EQ(one->items[0]["metadata"]["namespace"], "ns-b");

  std::vector<std::string> seen;
  std::string next;
  int pages = 0;
  do {
    absl::StatusOr<PodList> page = client_->ListPods("", selector, 4, next, Deadline());
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->resource_version, "9");
    for (const Json& item : page->items) {
      seen.push_back(absl::StrCat(item["metadata"]["namespace"].get<std::string>(), "/",
                                  item["metadata"]["name"].get<std::string>()));
    }
    next = page->continue_token;
    ++pages;
  } while (!next.empty());
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(seen,
            (std::vector<std::string>{"ns-a/p0", "ns-a/p1", "ns-b/p0", "ns-b/p1", "ns-c/p0", "ns-c/p1"}));

  absl::StatusOr<PodList> first = client_->ListPods("", selector, 1, "", Deadline());
  ASSERT_TRUE(first.ok());
  server_->CompactHistory();
  absl::StatusOr<PodList> expired = client_->ListPods("", selector, 1, first->continue_token, Deadline());
  EXPECT_TRUE(IsGone(expired.status())) << expired.status();
  EXPECT_THAT(expired.status().message(), HasSubstr("410 Expired"));
  EXPECT_FALSE(IsGone(client_->GetPod(kNs, "nope", Deadline()).status()));

  absl::StatusOr<PodList> bad = client_->ListPods("", "app in ()", 0, "", Deadline());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KubeClientTest, A401ReReadsTheTokenFileAndRetriesOnce) {
  Start();
  ASSERT_TRUE(client_->GetPod(kNs, "nope", Deadline()).status().code() == absl::StatusCode::kNotFound);
  // The kubelet rotated the token and the old one stopped working, within the minute the file is cached.
  WriteToken(kNewToken);
  server_->AcceptToken(kNewToken);
  server_->RevokeToken(kToken);
  server_->ClearRequests();
  EXPECT_EQ(client_->GetPod(kNs, "nope", Deadline()).status().code(), absl::StatusCode::kNotFound);
  const std::vector<fake_kube::RequestRecord> requests = server_->Requests();
  ASSERT_EQ(requests.size(), 2u);  // exactly one extra request
  EXPECT_EQ(requests[0].status, 401);
  EXPECT_EQ(requests[1].status, 404);
  EXPECT_EQ(client_->stats().auth_retries, 1);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());

  // A token the server keeps refusing: one retry, then Unauthenticated.
  server_->RevokeToken(kNewToken);
  server_->ClearRequests();
  absl::Status status = client_->GetPod(kNs, "nope", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("401 Unauthorized"), HasSubstr(token_file_),
                                      Not(HasSubstr(kNewToken)), Not(HasSubstr(kToken))));
  EXPECT_EQ(server_->Requests().size(), 2u);
}

TEST_F(KubeClientTest, AStaticTokenIsNotRetriedOn401) {
  StartServer({});
  ClusterConnection connection;
  connection.server = server_->url();
  connection.token = Secret(kToken);
  connection.source = "kubeconfig test";
  StartClient(connection);
  absl::Status status = client_->GetPod(kNs, "nope", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("kubeconfig test"), Not(HasSubstr(kToken))));
  EXPECT_EQ(server_->Requests().size(), 1u);
}

TEST_F(KubeClientTest, ARotatedTokenFileIsPickedUpWithinAMinuteWithoutA401) {
  Start();
  server_->AcceptToken(kToken, "old-user");
  server_->AcceptToken(kNewToken, "new-user");
  const auto user_of_next_call = [this] {
    EXPECT_EQ(client_->GetPod(kNs, "nope", Deadline()).status().code(), absl::StatusCode::kNotFound);
    return server_->Requests().back().user;
  };
  EXPECT_EQ(user_of_next_call(), "old-user");
  WriteToken(kNewToken);
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(user_of_next_call(), "old-user");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(user_of_next_call(), "new-user");
  for (const auto& request : server_->Requests()) EXPECT_NE(request.status, 401);
}

TEST_F(KubeClientTest, ForbiddenNamesVerbResourceAndNamespace) {
  Start();
  server_->Forbid("create", "pods", kNs);
  absl::Status status = client_->CreatePod(kNs, PodJson("task-a"), Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      status.message(),
      "kubernetes API: forbidden to create pods in namespace \"flytesnacks-development\": pods is forbidden: "
      "User \"system:serviceaccount:flyte:flyte-neptune-agent\" cannot create resource \"pods\" in API group "
      "\"\" in the namespace \"flytesnacks-development\"");
  server_->Forbid("list", "pods", "");
  status = client_->ListPods("", "", 0, "", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("forbidden to list pods cluster-wide: pods is forbidden"));
  server_->Forbid("get", "flyteworkflows");
  status = client_->GetObject("/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf", Deadline())
               .status();
  EXPECT_THAT(
      status.message(),
      HasSubstr("kubernetes API: forbidden to get flyteworkflows.flyte.lyft.com in namespace \"ns\": "));
  EXPECT_EQ(server_->Requests().size(), 3u);  // not retried
}

TEST_F(KubeClientTest, TooManyRequestsWaitsForRetryAfter) {
  Start();
  server_->FailNext("GET", "/api/v1/namespaces/", 2, 429, "3");
  EXPECT_EQ(client_->GetPod(kNs, "nope", Deadline()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(clock_.slept(), absl::Seconds(6));
  EXPECT_EQ(server_->RequestCount("get", "pods", kNs), 3);
  EXPECT_EQ(client_->stats().retries, 2);
}

TEST_F(KubeClientTest, RequestsAreCountedByVerbResourceAndCode) {
  metrics::Registry registry;
  KubeClientOptions options;
  options.metrics = &registry;
  Start(std::move(options));
  server_->FailNext("POST", "/api/v1/namespaces/", 2, 500);
  ASSERT_TRUE(client_->CreatePod(kNs, PodJson("task-a"), Deadline()).ok());
  EXPECT_EQ(client_->GetPod(kNs, "missing", Deadline()).status().code(), absl::StatusCode::kNotFound);
  const std::string text = registry.TextExposition();
  for (
      const char* line : {
          "flyte_neptune_agent_kubernetes_requests_total{verb=\"create\",resource=\"pods\",code=\"500\"} 2\n",
          "flyte_neptune_agent_kubernetes_requests_total{verb=\"create\",resource=\"pods\",code=\"201\"} 1\n",
          "flyte_neptune_agent_kubernetes_requests_total{verb=\"get\",resource=\"pods\",code=\"404\"} 1\n",
          "flyte_neptune_agent_kubernetes_retries_total{verb=\"create\",resource=\"pods\"} 2\n",
          "flyte_neptune_agent_kubernetes_request_duration_seconds_count{verb=\"create\",resource=\"pods\"} "
          "3\n",
      }) {
    EXPECT_THAT(text, ::testing::HasSubstr(line));
  }
}

TEST_F(KubeClientTest, ServerErrorsAreRetriedWithBackoff) {
  Start();
  server_->FailNext("POST", "/api/v1/namespaces/", 3, 500);
  absl::StatusOr<Json> created = client_->CreatePod(kNs, PodJson("task-a"), Deadline());
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(250 + 500 + 1000));  // no jitter at 0.5
  EXPECT_EQ(server_->RequestCount("create", "pods", kNs), 4);

  Fault server_timeout;  // ServerTimeout-style: details.retryAfterSeconds, no header
  server_timeout.status = 500;
  server_timeout.retry_after_seconds = 2;
  server_->AddFault(server_timeout);
  Fault drop;
  drop.action = Fault::Action::kDrop;
  server_->AddFault(drop);
  const absl::Duration before = clock_.slept();
  EXPECT_TRUE(client_->GetPod(kNs, "task-a", Deadline()).ok());
  EXPECT_EQ(clock_.slept() - before, absl::Seconds(2) + absl::Milliseconds(500));
}

TEST_F(KubeClientTest, ServerErrorsPastMaxRetriesAreUnavailable) {
  KubeClientOptions options;
  options.max_retries = 3;
  Start(options);
  server_->FailNext("", "", 100, 503);
  absl::Status status = client_->GetPod(kNs, "task-a", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(status.message(),
            "kubernetes API: get pods \"task-a\" in namespace \"flytesnacks-development\": gave up after 4 "
            "attempts: "
            "503 ServiceUnavailable: The server is currently unable to handle the request");
  EXPECT_EQ(server_->RequestCount("get", "pods"), 4);
}

TEST_F(KubeClientTest, DeadlinesAreRespected) {
  Start();
  server_->FailNext("GET", "", 1, 429, "120");
  absl::Status status = client_->GetPod(kNs, "task-a", Deadline(absl::Seconds(60))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("would pass the deadline"), HasSubstr("429 TooManyRequests")));
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
  EXPECT_EQ(server_->Requests().size(), 1u);

  status = client_->GetPod(kNs, "task-a", clock_.Now()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server_->Requests().size(), 1u);  // nothing sent

  // Backoff stops at the deadline: 250 ms + 500 ms fit in 1 s, the next 1 s does not.
  server_->FailNext("GET", "", 100, 503);
  status = client_->GetPod(kNs, "task-a", Deadline(absl::Seconds(1))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(750));
  EXPECT_EQ(server_->Requests().size(), 4u);
}

TEST_F(KubeClientTest, RateLimitSpacesRequests) {
  KubeClientOptions options;
  options.qps = 10;
  options.burst = 2;
  Start(options);
  for (int i = 0; i < 5; ++i) client_->GetPod(kNs, "nope", Deadline()).IgnoreError();
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(300));
  EXPECT_EQ(client_->GetPod(kNs, "nope", clock_.Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server_->Requests().size(), 5u);
}

TEST_F(KubeClientTest, InvalidObjectsAndOtherErrorBodies) {
  Start();
  Json pod = PodJson("task-a");
  pod["spec"]["containers"][0].erase("image");
  absl::Status status = client_->CreatePod(kNs, pod, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("422 Invalid: Pod \"task-a\" is invalid"),
                                      HasSubstr("(fields: spec.containers[0].image)")));
  Json elsewhere = PodJson("task-a");
  elsewhere["metadata"]["namespace"] = "other";
  EXPECT_THAT(client_->CreatePod(kNs, elsewhere, Deadline()).status().message(), HasSubstr("400 BadRequest"));

  Fault html;
  html.status = 400;
  html.body = "<html><body>\n  upstream said no\n</body></html>";
  html.content_type = "text/html";
  server_->AddFault(html);
  status = client_->GetPod(kNs, "task-a", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("400: <html><body>   upstream said no </body></html>"));
  status = client_->GetObject("/apis/unknown", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("404: 404 page not found"));
}

TEST_F(KubeClientTest, GetObjectReadsOtherResources) {
  Start();
  ASSERT_TRUE(server_
                  ->PutObject("/apis/flyte.lyft.com/v1alpha1/namespaces/" + std::string(kNs) +
                                  "/flyteworkflows/exec1",
                              Json{{"metadata", {{"uid", "wf-uid"}}}})
                  .ok());
  absl::StatusOr<Json> workflow = client_->GetObject(
      absl::StrCat("/apis/flyte.lyft.com/v1alpha1/namespaces/", kNs, "/flyteworkflows/exec1"), Deadline());
  ASSERT_TRUE(workflow.ok()) << workflow.status();
  EXPECT_EQ((*workflow)["metadata"]["uid"], "wf-uid");
  absl::Status missing =
      client_->GetObject(absl::StrCat("/api/v1/namespaces/", kNs, "/podtemplates/default"), Deadline())
          .status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("get podtemplates \"default\" in namespace"));
}

TEST_F(KubeClientTest, TokensNeverAppearInMessages) {
  Start();
  std::vector<absl::Status> errors;
  errors.push_back(client_->GetPod(kNs, "nope", Deadline()).status());
  ASSERT_TRUE(client_->CreatePod(kNs, PodJson("task-a"), Deadline()).ok());
  errors.push_back(client_->CreatePod(kNs, PodJson("task-a"), Deadline()).status());
  Fault echo;  // a server (or proxy) quoting the credential back
  echo.status = 400;
  echo.body = absl::StrCat("bad header: Authorization: Bearer ", kToken);
  server_->AddFault(echo);
  errors.push_back(client_->GetPod(kNs, "task-a", Deadline()).status());
  server_->FailNext("", "", 100, 503);
  errors.push_back(client_->GetPod(kNs, "task-a", Deadline(absl::Seconds(5))).status());
  server_->ClearFaults();
  server_->Forbid("delete", "pods");
  errors.push_back(client_->DeletePod(kNs, "task-a", std::nullopt, Deadline()));
  server_->RevokeToken(kToken);
  errors.push_back(client_->GetPod(kNs, "task-a", Deadline()).status());
  ASSERT_EQ(errors.size(), 6u);
  for (const absl::Status& error : errors) {
    EXPECT_FALSE(error.ok());
    EXPECT_THAT(error.message(), AllOf(HasSubstr("kubernetes API: "), Not(HasSubstr(kToken))));
  }
  EXPECT_THAT(errors[2].message(), HasSubstr("Bearer [REDACTED]"));
}

TEST_F(KubeClientTest, ConcurrentCallsShareOneClient) {
  Start();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = absl::StrCat("task-", t);
      if (client_->CreatePod(kNs, PodJson(name), Deadline()).ok()) ++ok;
      for (int i = 0; i < 5; ++i) {
        if (client_->GetPod(kNs, name, Deadline()).ok()) ++ok;
      }
      if (client_->DeletePod(kNs, name, std::nullopt, Deadline()).ok()) ++ok;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 8 * 7);
  EXPECT_EQ(client_->stats().requests, 8 * 7);
}

// --- connections end to end ---

TEST_F(KubeClientTest, InClusterServiceAccount) {
  FakeKubeApiServer::Options options;
  options.tls_cert_file = pki_.server_cert_file;
  options.tls_key_file = pki_.server_key_file;
  StartServer(options);
  server_->AcceptToken(kToken, "system:serviceaccount:flyte:agent");
  const std::string sa = dir_ + "/sa";
  std::filesystem::create_directories(sa);
  std::filesystem::copy_file(pki_.ca_file, sa + "/ca.crt");
  std::filesystem::copy_file(token_file_, sa + "/token");
  std::ofstream(sa + "/namespace") << "flyte";
  absl::StatusOr<ClusterConnection> connection =
      InClusterConnection(EnvOf({{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
                                 {"KUBERNETES_SERVICE_PORT", std::to_string(server_->port())}}),
                          sa);
  ASSERT_TRUE(connection.ok()) << connection.status();
  StartClient(*connection);
  ASSERT_TRUE(client_->CreatePod(connection->default_namespace, PodJson("task-a"), Deadline()).ok());
  EXPECT_EQ(server_->Requests().back().user, "system:serviceaccount:flyte:agent");
  EXPECT_TRUE(server_->GetPod("flyte", "task-a").has_value());
}

TEST_F(KubeClientTest, KubeconfigClientCertificateInlinedAndTlsServerName) {
  FakeKubeApiServer::Options options;
  options.tls_cert_file = pki_.server_cert_file;
  options.tls_key_file = pki_.server_key_file;
  options.client_ca_file = pki_.ca_file;
  StartServer(options);
  const auto base64_of = [](const std::string& path) {
    std::ifstream in(path);
    return absl::Base64Escape(std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const std::string kubeconfig = dir_ + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"
                            << "clusters:\n- name: fake\n  cluster:\n    server: " << server_->url() << "\n"
                            << "    certificate-authority-data: " << base64_of(pki_.ca_file) << "\n"
                            << "    tls-server-name: kubernetes.default.svc\n"
                            << "users:\n- name: dev\n  user:\n"
                            << "    client-certificate-data: " << base64_of(pki_.client_cert_file) << "\n"
                            << "    client-key-data: " << base64_of(pki_.client_key_file) << "\n"
                            << "contexts:\n- name: dev\n  context: {cluster: fake, user: dev, namespace: "
                            << kNs << "}\n";
  absl::StatusOr<ClusterConnection> connection =
      KubeconfigConnection(kubeconfig, "", EnvOf({{"TMPDIR", dir_}}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  StartClient(*connection);
  ASSERT_TRUE(client_->CreatePod(connection->default_namespace, PodJson("task-a"), Deadline()).ok());
  EXPECT_EQ(server_->Requests().back().user, testing::kTestClientName);
  EXPECT_EQ(server_->Requests().back().headers.at("Host"),
            absl::StrCat("kubernetes.default.svc:", server_->port()));
  EXPECT_EQ(server_->Requests().back().headers.count("Authorization"), 0u);
}

TEST_F(KubeClientTest, PlainHttpLikeKubectlProxy) {
  FakeKubeApiServer::Options options;
  options.allow_anonymous = true;
  StartServer(options);
  const std::string kubeconfig = dir_ + "/kubeconfig";
  std::ofstream(kubeconfig) << "current-context: proxy\nclusters:\n- name: proxy\n  cluster:\n    server: "
                            << server_->url() << "\ncontexts:\n- name: proxy\n  context: {cluster: proxy}\n";
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(kubeconfig, "", EnvOf({}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  StartClient(*connection);
  ASSERT_TRUE(client_->CreatePod("default", PodJson("task-a"), Deadline()).ok());
  EXPECT_EQ(server_->Requests().back().headers.count("Authorization"), 0u);
}

TEST_F(KubeClientTest, UntrustedServerIsNotRetried) {
  FakeKubeApiServer::Options options;
  options.tls_cert_file = pki_.server_cert_file;
  options.tls_key_file = pki_.server_key_file;
  StartServer(options);
  ClusterConnection connection;
  connection.server = server_->url();
  connection.ca_file = pki_.other_ca_file;
  connection.source = "test";
  StartClient(connection);
  absl::Status status = client_->GetPod(kNs, "task-a", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(client_->stats().requests, 1);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());

  connection.server = "ftp://example.com";
  EXPECT_EQ(KubeClient::Create(connection, {}, &clock_).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fna::kube
