// The fake API server over raw HTTP (httplib::Client), independent of the agent's Kubernetes client: the
// Status bodies, validation, deletion, patching, listing, auth, RBAC, faults and watches it promises.

#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

#include <httplib.h>
#include <stdlib.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fna::fake_kube {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kToken[] = "fake-kube-token-0123456789";
constexpr char kNs[] = "flytesnacks-development";

Json PodJson(const std::string& name, Json labels = Json::object()) {
  return Json{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", name}, {"labels", std::move(labels)}}},
      {"spec",
       {{"restartPolicy", "Never"}, {"containers", {{{"name", "main"}, {"image", "busybox:1.36"}}}}}}};
}

class FakeKubeApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  void Start(FakeKubeApiServer::Options options) {
    client_.reset();
    server_.reset();
    options.clock = &clock_;
    auto server = FakeKubeApiServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->AcceptToken(kToken);
    client_ = std::make_unique<httplib::Client>(server_->url());
    client_->set_default_headers(
        {{"Authorization", absl::StrCat("Bearer ", kToken)}, {"User-Agent", "fna-test/1.0"}});
  }
  // Status and parsed body of one request.
  std::pair<int, Json> Call(const std::string& method, const std::string& path, const Json& body = nullptr,
                            const std::string& content_type = "application/json") {
    httplib::Request req;
    req.method = method;
    req.path = path;
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers.emplace("Content-Type", content_type);
    }
    httplib::Result result = client_->send(req);
    if (!result) return {0, nullptr};
    return {result->status, Json::parse(result->body, nullptr, false)};
  }
  std::string PodsPath(const std::string& ns = kNs) {
    return absl::StrCat("/api/v1/namespaces/", ns, "/pods");
  }
  std::string PodPath(const std::string& name, const std::string& ns = kNs) {
    return absl::StrCat(PodsPath(ns), "/", name);
  }

  FakeClock clock_;
  std::unique_ptr<FakeKubeApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(FakeKubeApiServerTest, CreateFillsServerFields) {
  auto [status, pod] = Call("POST", PodsPath(), PodJson("task-a"));
  ASSERT_EQ(status, 201) << pod.dump();
  EXPECT_EQ(pod["metadata"]["namespace"], kNs);
  EXPECT_FALSE(pod["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ(pod["metadata"]["resourceVersion"], "1");
  EXPECT_EQ(pod["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(pod["metadata"]["managedFields"][0]["manager"], "fna-test");
  EXPECT_EQ(pod["status"]["phase"], "Pending");
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(server_->GetPod(kNs, "task-a").value(), pod);
  auto [again, second] = Call("POST", PodsPath(), PodJson("task-b"));
  ASSERT_EQ(again, 201);
  EXPECT_EQ(second["metadata"]["resourceVersion"], "2");
  EXPECT_NE(second["metadata"]["uid"], pod["metadata"]["uid"]);
}

TEST_F(FakeKubeApiServerTest, StatusBodies) {
  ASSERT_EQ(Call("POST", PodsPath(), PodJson("task-a")).first, 201);
  auto [exists, body] = Call("POST", PodsPath(), PodJson("task-a"));
  EXPECT_EQ(exists, 409);
  EXPECT_EQ(body, Json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
      "message":"pods \"task-a\" already exists","reason":"AlreadyExists",
      "details":{"name":"task-a","kind":"pods"},"code":409})"));
  auto [missing, not_found] = Call("GET", PodPath("nope"));
  EXPECT_EQ(missing, 404);
  EXPECT_EQ(not_found, Json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
      "message":"pods \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"pods"},"code":404})"));

  Json other_ns = PodJson("task-c");
  other_ns["metadata"]["namespace"] = "elsewhere";
  auto [mismatch, bad] = Call("POST", PodsPath(), other_ns);
  EXPECT_EQ(mismatch, 400);
  EXPECT_EQ(bad["reason"], "BadRequest");
  EXPECT_EQ(bad["message"],
            "the namespace of the provided object does not match the namespace sent on the request");

  httplib::Result text = client_->Get("/healthz/nothing");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->status, 404);
  EXPECT_EQ(text->body, "404 page not found\n");
}

TEST_F(FakeKubeApiServerTest, InvalidPodsAre422WithCauses) {
  Json pod = PodJson("Bad_Name");
  pod["spec"]["containers"].push_back(Json{{"name", "side"}});
  auto [status, body] = Call("POST", PodsPath(), pod);
  ASSERT_EQ(status, 422);
  EXPECT_EQ(body["reason"], "Invalid");
  EXPECT_THAT(
      body["message"].get<std::string>(),
      HasSubstr("Pod \"Bad_Name\" is invalid: [metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC "
                "1123 subdomain"));
  EXPECT_THAT(body["message"].get<std::string>(), HasSubstr(", spec.containers[1].image: Required value]"));
  EXPECT_EQ(body["details"]["kind"], "Pod");
  ASSERT_EQ(body["details"]["causes"].size(), 2u);
  EXPECT_EQ(
      body["details"]["causes"][1],
      Json::parse(
          R"({"reason":"FieldValueRequired","message":"Required value","field":"spec.containers[1].image"})"));

  Json empty = PodJson("empty");
  empty["spec"].erase("containers");
  std::tie(status, body) = Call("POST", PodsPath(), empty);
  EXPECT_EQ(status, 422);
  EXPECT_EQ(body["message"], "Pod \"empty\" is invalid: spec.containers: Required value");
  EXPECT_FALSE(server_->GetPod(kNs, "empty").has_value());
}

TEST_F(FakeKubeApiServerTest, DeleteWithPreconditionsAndTerminatingPods) {
  auto [created, pod] = Call("POST", PodsPath(), PodJson("task-a"));
  ASSERT_EQ(created, 201);
  auto [conflict, body] = Call("DELETE", PodPath("task-a"), Json{{"preconditions", {{"uid", "other-uid"}}}});
  EXPECT_EQ(conflict, 409);
  EXPECT_EQ(body["reason"], "Conflict");
  EXPECT_EQ(body["message"],
            absl::StrCat("Operation cannot be fulfilled on pods \"task-a\": Precondition failed: UID "
                         "in precondition: other-uid, UID in object meta: ",
                         pod["metadata"]["uid"].get<std::string>()));
  auto [deleted, last] =
      Call("DELETE", PodPath("task-a"), Json{{"preconditions", {{"uid", pod["metadata"]["uid"]}}}});
  EXPECT_EQ(deleted, 200);
  EXPECT_EQ(last["metadata"]["deletionTimestamp"], "2026-01-01T00:00:30Z");  // the 30 s default grace period
  EXPECT_FALSE(server_->GetPod(kNs, "task-a").has_value());
  EXPECT_EQ(Call("DELETE", PodPath("task-a")).first, 404);

  // Kept terminating until the kubelet finishes; deleting again is fine.
  server_->SetDeletionMode(DeletionMode::kKeepTerminating);
  ASSERT_EQ(Call("POST", PodsPath(), PodJson("task-b")).first, 201);
  EXPECT_EQ(Call("DELETE", PodPath("task-b")).first, 200);
  EXPECT_EQ(Call("DELETE", PodPath("task-b")).first, 200);
  auto [got, terminating] = Call("GET", PodPath("task-b"));
  EXPECT_EQ(got, 200);
  EXPECT_TRUE(terminating["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(server_->FinalizeDeletion(kNs, "task-b").ok());
  EXPECT_EQ(Call("GET", PodPath("task-b")).first, 404);

  // Finalizers hold the object until a patch removes them.
  server_->SetDeletionMode(DeletionMode::kImmediate);
  Json with_finalizer = PodJson("task-c");
  with_finalizer["metadata"]["finalizers"] = {"flyte.org/finalizer-k8s"};
  ASSERT_EQ(Call("POST", PodsPath(), with_finalizer).first, 201);
  EXPECT_EQ(Call("DELETE", PodPath("task-c")).first, 200);
  EXPECT_TRUE(server_->GetPod(kNs, "task-c").has_value());
  EXPECT_EQ(Call("PATCH", PodPath("task-c"), Json{{"metadata", {{"finalizers", nullptr}}}},
                 "application/merge-patch+json")
                .first,
            200);
  EXPECT_FALSE(server_->GetPod(kNs, "task-c").has_value());
}

TEST_F(FakeKubeApiServerTest, MergePatch) {
  ASSERT_EQ(Call("POST", PodsPath(), PodJson("task-a")).first, 201);
  ASSERT_TRUE(server_->SetPodStatus(kNs, "task-a", Json{{"phase", "Running"}}).ok());
  auto [status, pod] = Call("PATCH", PodPath("task-a"),
                            Json{{"metadata", {{"annotations", {{"flyte-neptune/final", "pending"}}}}},
                                 {"status", {{"phase", "Failed"}}}},
                            "application/merge-patch+json");
  ASSERT_EQ(status, 200) << pod.dump();
  EXPECT_EQ(pod["metadata"]["annotations"]["flyte-neptune/final"], "pending");
  EXPECT_EQ(pod["status"]["phase"], "Running");  // status is not patched through the main resource
  std::tie(status, pod) = Call("PATCH", PodPath("task-a"),
                               Json{{"metadata", {{"annotations", {{"flyte-neptune/final", nullptr}}}}}},
                               "application/merge-patch+json");
  ASSERT_EQ(status, 200);
  EXPECT_TRUE(pod["metadata"]["annotations"].empty());
  const std::string rv = pod["metadata"]["resourceVersion"];
  std::tie(status, pod) = Call("PATCH", PodPath("task-a"), Json{{"metadata", {{"labels", nullptr}}}},
                               "application/merge-patch+json");
  EXPECT_EQ(pod["metadata"]["resourceVersion"], rv);  // no change, no new version

  EXPECT_EQ(Call("PATCH", PodPath("task-a"), Json{{"spec", {{"restartPolicy", "Always"}}}},
                 "application/merge-patch+json")
                .first,
            422);
  EXPECT_EQ(Call("PATCH", PodPath("task-a"), Json{{"metadata", {{"resourceVersion", "1"}}}},
                 "application/merge-patch+json")
                .first,
            409);
  EXPECT_EQ(Call("PATCH", PodPath("task-a"), Json::array(), "application/json-patch+json").first, 415);
  EXPECT_EQ(Call("PATCH", PodPath("nope"), Json::object(), "application/merge-patch+json").first, 404);
}

TEST_F(FakeKubeApiServerTest, ListBySelectorAcrossNamespacesWithPaging) {
  for (const char* ns : {"ns-a", "ns-b"}) {
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(
          Call("POST", PodsPath(ns), PodJson(absl::StrCat("p", i), {{"app", i == 2 ? "other" : "agent"}}))
              .first,
          201);
    }
  }
  auto [status, list] = Call("GET", "/api/v1/pods?labelSelector=app%3Dagent");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(list["kind"], "PodList");
  EXPECT_EQ(list["metadata"]["resourceVersion"], "6");
  ASSERT_EQ(list["items"].size(), 4u);
  EXPECT_EQ(list["items"][0]["metadata"]["namespace"], "ns-a");
  EXPECT_EQ(list["items"][3]["metadata"]["namespace"], "ns-b");
  EXPECT_FALSE(list["items"][0].contains("kind"));
  std::tie(status, list) =
      Call("GET", absl::StrCat(PodsPath("ns-b"), "?labelSelector=app%20notin%20(agent)"));
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "p2");
  std::tie(status, list) =
      Call("GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Dns-a,metadata.name!%3Dp0");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(Call("GET", "/api/v1/pods?labelSelector=app%20in%20()").first, 400);

  std::vector<std::string> names;
  std::string next;
  int pages = 0;
  do {
    std::tie(status, list) =
        Call("GET", absl::StrCat("/api/v1/pods?limit=4", next.empty() ? "" : "&continue=", next));
    ASSERT_EQ(status, 200);
    EXPECT_EQ(list["metadata"]["resourceVersion"], "6");
    for (const Json& item : list["items"]) names.push_back(item["metadata"]["name"]);
    next = list["metadata"].value("continue", "");
    ++pages;
  } while (!next.empty());
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(names, (std::vector<std::string>{"p0", "p1", "p2", "p0", "p1", "p2"}));

  std::tie(status, list) = Call("GET", "/api/v1/pods?limit=1");
  server_->CompactHistory();
  auto [expired, body] = Call(
      "GET", absl::StrCat("/api/v1/pods?limit=1&continue=", list["metadata"]["continue"].get<std::string>()));
  EXPECT_EQ(expired, 410);
  EXPECT_EQ(body["reason"], "Expired");
}

TEST_F(FakeKubeApiServerTest, AuthenticationAndRbac) {
  client_->set_default_headers({});
  auto [status, body] = Call("GET", PodsPath());
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body, Json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                                  "message":"Unauthorized","reason":"Unauthorized","code":401})"));
  client_->set_default_headers({{"Authorization", "Bearer rotated-token-0123456789"}});
  EXPECT_EQ(Call("GET", PodsPath()).first, 401);
  server_->AcceptToken("rotated-token-0123456789");
  server_->RevokeToken(kToken);
  EXPECT_EQ(Call("GET", PodsPath()).first, 200);

  server_->Forbid("create", "pods", kNs);
  std::tie(status, body) = Call("POST", PodsPath(), PodJson("task-a"));
  EXPECT_EQ(status, 403);
  EXPECT_EQ(body["reason"], "Forbidden");
  EXPECT_EQ(
      body["message"],
      absl::StrCat("pods is forbidden: User \"", kDefaultUser,
                   "\" cannot create resource \"pods\" in API group \"\" in the namespace \"", kNs, "\""));
  EXPECT_EQ(Call("POST", PodsPath("other"), PodJson("task-a")).first, 201);
  server_->Forbid("list", "pods", "");
  std::tie(status, body) = Call("GET", "/api/v1/pods");
  EXPECT_EQ(status, 403);
  EXPECT_THAT(body["message"].get<std::string>(),
              HasSubstr("cannot list resource \"pods\" in API group \"\" at the cluster scope"));
  EXPECT_EQ(Call("GET", PodsPath()).first, 200);
  server_->Forbid("get", "flyteworkflows");
  std::tie(status, body) = Call("GET", "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf");
  EXPECT_EQ(body["message"],
            absl::StrCat("flyteworkflows.flyte.lyft.com \"wf\" is forbidden: User \"", kDefaultUser,
                         "\" cannot get resource \"flyteworkflows\" in API group \"flyte.lyft.com\" "
                         "in the namespace \"ns\""));
  server_->Allow("get", "flyteworkflows");
  EXPECT_EQ(Call("GET", "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf").first, 404);
  EXPECT_EQ(server_->RequestCount("get", "flyteworkflows", "ns"), 2);

  FakeKubeApiServer::Options anonymous;
  anonymous.allow_anonymous = true;
  Start(anonymous);
  client_->set_default_headers({});
  EXPECT_EQ(Call("GET", PodsPath()).first, 200);
  EXPECT_EQ(server_->Requests().back().user, "system:anonymous");
}

TEST_F(FakeKubeApiServerTest, FaultsAndCounts) {
  server_->FailNext("GET", "/api/v1/namespaces/", 1, 429, "3");
  Fault server_error;
  server_error.status = 500;
  server_error.retry_after_seconds = 2;
  server_->AddFault(server_error);
  Fault drop;
  drop.action = Fault::Action::kDrop;
  server_->AddFault(drop);

  httplib::Result result = client_->Get(PodsPath());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 429);
  EXPECT_EQ(result->get_header_value("Retry-After"), "3");
  EXPECT_EQ(Json::parse(result->body)["reason"], "TooManyRequests");
  auto [status, body] = Call("GET", PodsPath());
  EXPECT_EQ(status, 500);
  EXPECT_EQ(body["reason"], "InternalError");
  EXPECT_EQ(body["details"]["retryAfterSeconds"], 2);
  EXPECT_FALSE(client_->Get(PodsPath()));  // dropped
  EXPECT_EQ(Call("GET", PodsPath()).first, 200);
  EXPECT_EQ(server_->RequestCount("list", "pods", kNs), 4);
  EXPECT_EQ(server_->RequestCount("list", "pods", "other"), 0);
  const std::vector<RequestRecord> requests = server_->Requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[2].status, 0);
  EXPECT_EQ(requests[3].headers.at("Authorization"), "Bearer [REDACTED]");
  EXPECT_EQ(requests[3].user, kDefaultUser);
}

TEST_F(FakeKubeApiServerTest, ObjectsPutByTests) {
  absl::StatusOr<Json> workflow = server_->PutObject(
      "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf", Json{{"spec", {{"id", "x"}}}});
  ASSERT_TRUE(workflow.ok()) << workflow.status();
  auto [status, body] = Call("GET", "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["kind"], "FlyteWorkflow");
  EXPECT_EQ(body["apiVersion"], "flyte.lyft.com/v1alpha1");
  EXPECT_EQ(body["metadata"]["uid"], (*workflow)["metadata"]["uid"]);
  EXPECT_EQ(server_->GetObject("/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf").value(),
            body);
  EXPECT_FALSE(
      server_->PutObject("/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows", Json::object()).ok());
  EXPECT_EQ(Call("PUT", "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf", body).first, 405);
}

// Collects the lines of a watch stream on its own thread.
class WatchReader {
 public:
  WatchReader(const std::string& url, const std::string& path) : client_(url) {
    client_.set_default_headers({{"Authorization", absl::StrCat("Bearer ", kToken)}});
    client_.set_read_timeout(std::chrono::seconds(30));
    thread_ = std::thread([this, path] {
      client_.Get(path, [this](const char* data, size_t size) {
        std::lock_guard<std::mutex> lock(mu_);
        buffer_.append(data, size);
        return true;
      });
      ended_ = true;
    });
  }
  ~WatchReader() { thread_.join(); }
  // The events received once `count` arrived (or the stream ended).
  std::vector<Json> WaitFor(size_t count) {
    for (int i = 0; i < 500; ++i) {
      std::vector<Json> events = Events();
      if (events.size() >= count || ended_) return events;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Events();
  }
  bool ended() const { return ended_; }

 private:
  std::vector<Json> Events() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Json> events;
    for (absl::string_view line : absl::StrSplit(buffer_, '\n', absl::SkipEmpty()))
      events.push_back(Json::parse(line));
    return events;
  }
  httplib::Client client_;
  std::thread thread_;
  std::mutex mu_;
  std::string buffer_;
  std::atomic<bool> ended_{false};
};

TEST_F(FakeKubeApiServerTest, WatchStreamsChangesBookmarksAndExpiry) {
  ASSERT_EQ(Call("POST", PodsPath(), PodJson("old", {{"app", "agent"}})).first, 201);
  {
    WatchReader watch(
        server_->url(),
        absl::StrCat(PodsPath(), "?watch=1&labelSelector=app%3Dagent&allowWatchBookmarks=true"));
    std::vector<Json> events = watch.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["type"], "ADDED");  // the initial state
    EXPECT_EQ(events[0]["object"]["kind"], "Pod");
    ASSERT_EQ(Call("POST", PodsPath(), PodJson("new", {{"app", "agent"}})).first, 201);
    ASSERT_EQ(Call("POST", PodsPath(), PodJson("unrelated")).first, 201);
    ASSERT_TRUE(server_->SetPodStatus(kNs, "new", Json{{"phase", "Running"}}).ok());
    ASSERT_EQ(Call("PATCH", PodPath("old"), Json{{"metadata", {{"labels", {{"app", "gone"}}}}}},
                   "application/merge-patch+json")
                  .first,
              200);
    ASSERT_TRUE(server_->DeletePodFromOutside(kNs, "new").ok());
    server_->SendBookmarks();
    events = watch.WaitFor(7);
    ASSERT_EQ(events.size(), 7u);
    EXPECT_EQ(events[1]["type"], "ADDED");
    EXPECT_EQ(events[2]["type"], "MODIFIED");
    EXPECT_EQ(events[2]["object"]["status"]["phase"], "Running");
    EXPECT_EQ(events[3]["type"], "DELETED");  // stopped matching the selector
    EXPECT_EQ(events[3]["object"]["metadata"]["name"], "old");
    EXPECT_EQ(events[4]["type"], "MODIFIED");  // deletionTimestamp set
    EXPECT_EQ(events[5]["type"], "DELETED");
    EXPECT_EQ(events[6]["type"], "BOOKMARK");
    EXPECT_EQ(events[6]["object"]["metadata"]["resourceVersion"],
              events[5]["object"]["metadata"]["resourceVersion"]);
    EXPECT_EQ(server_->open_watches(), 1);
    server_->CloseWatches();
    watch.WaitFor(100);
    EXPECT_TRUE(watch.ended());
  }
  server_->CompactHistory();
  WatchReader stale(server_->url(), absl::StrCat(PodsPath(), "?watch=true&resourceVersion=2"));
  std::vector<Json> events = stale.WaitFor(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  stale.WaitFor(100);
  EXPECT_TRUE(stale.ended());
}

TEST(FakeKubeApiServerTlsTest, ClientCertificatesAuthenticateAsTheirCommonName) {
  char dir[] = "/tmp/fna-fake-kube-pki-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  testing::TestPki pki;
  ASSERT_TRUE(testing::WriteTestPki(dir, &pki));
  {
    FakeKubeApiServer::Options options;
    options.tls_cert_file = pki.server_cert_file;
    options.tls_key_file = pki.server_key_file;
    options.client_ca_file = pki.ca_file;
    auto server = FakeKubeApiServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    {
      httplib::Client client((*server)->url(), pki.client_cert_file, pki.client_key_file);
      client.set_ca_cert_path(pki.ca_file);
      httplib::Result result = client.Get("/api/v1/namespaces/ns/pods");
      ASSERT_TRUE(result) << httplib::to_string(result.error());
      EXPECT_EQ(result->status, 200);
      httplib::Client anonymous((*server)->url());
      anonymous.set_ca_cert_path(pki.ca_file);
      result = anonymous.Get("/api/v1/namespaces/ns/pods");
      ASSERT_TRUE(result);
      EXPECT_EQ(result->status, 401);
    }
    EXPECT_EQ((*server)->Requests().front().user, testing::kTestClientName);
  }
  testing::RemoveTestPki(dir, pki);
}

}  // namespace
}  // namespace fna::fake_kube
