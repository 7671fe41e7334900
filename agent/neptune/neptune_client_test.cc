#include "agent/neptune/neptune_client.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "agent/neptune/fake_neptune_transport.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kConfig[] = "GET /api/backend/v1/clients/config?alpha=true";
constexpr char kExchange[] = "GET /api/backend/v1/authorization/oauth-token";
constexpr char kRefresh[] = "POST /auth/realms/neptune/protocol/openid-connect/token";
constexpr char kProject[] = "GET /api/backend/v1/projects/get?projectIdentifier=ws%2Fproj";
constexpr char kCreate[] = "POST /api/leaderboard/v1/experiments";
constexpr char kOperations1[] =
    "POST /api/leaderboard/v1/attributes/operations?experimentId=00000000-0000-4000-8000-000000000001";
constexpr char kPing1[] =
    "POST /api/leaderboard/v1/attributes/ping?experimentId=00000000-0000-4000-8000-000000000001";

RunRef Ref(absl::string_view custom_id = "a1b2c3d4-run", absl::string_view project = "ws/proj") {
  return RunRef{std::string(project), std::string(custom_id), -1};
}

std::vector<Field> InitialFields() {
  return {
      {"sys/name", std::string("train")},
      {"flyte/project", std::string("flytesnacks")},
      {"sys/tags", StringSet{{"flyte", "team"}}},
      {"flyte/retry_attempt", int64_t{0}},
      {"sys/failed", false},
  };
}

class NeptuneClientTest : public ::testing::Test {
 protected:
  NeptuneClientTest() : token_(FakeNeptuneTransport::MakeApiToken()), transport_(&clock_, token_) {}

  void SetUp() override { MakeClient(); }

  void MakeClient(NeptuneClientOptions options = {}) {
    if (!options.token_source) {
      options.token_source = [this](int rule) -> absl::StatusOr<Secret> {
        std::lock_guard<std::mutex> lock(token_mu_);
        ++token_reads_;
        return Secret(rule == 7 ? other_token_ : token_);
      };
    }
    options.random = [] { return 0.5; };  // no jitter: exact waits
    client_ = std::make_unique<NeptuneClient>(std::move(options), &transport_, &clock_);
  }

  absl::Time Deadline(absl::Duration budget = absl::Seconds(2)) { return clock_.Now() + budget; }

  // Asserts that no request, header or body of the transport, and nothing in `text`, holds the API token
  // outside the X-Neptune-Api-Token header.
  void ExpectTokenOnlyInItsHeader() {
    for (const http::HttpRequest& request : transport_.requests()) {
      EXPECT_THAT(request.url, Not(HasSubstr(token_)));
      EXPECT_THAT(request.body, Not(HasSubstr(token_)));
      for (const http::HttpHeader& header : request.headers) {
        if (header.name != "X-Neptune-Api-Token") {
          EXPECT_THAT(header.value, Not(HasSubstr(token_))) << header.name;
        }
      }
    }
  }

  FakeClock clock_;
  std::mutex token_mu_;
  std::string token_;
  std::string other_token_;
  int token_reads_ = 0;
  FakeNeptuneTransport transport_;
  std::unique_ptr<NeptuneClient> client_;
};

TEST_F(NeptuneClientTest, CreateRunSendsTheLegacySequence) {
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline());
  ASSERT_TRUE(info.ok()) << info.status() << "\n" << absl::StrJoin(transport_.RequestLines(), "\n");
  EXPECT_EQ(info->run_id, "PROJ-1");
  EXPECT_EQ(info->url, "https://app.neptune.test/ws/proj/e/PROJ-1");
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kConfig, kExchange, kProject, kCreate, kOperations1));

  const std::vector<http::HttpRequest> requests = transport_.requests();
  // The API token goes to clients/config (the bootstrap URL) and oauth-token (apiUrl) only.
  EXPECT_TRUE(absl::StartsWith(requests[0].url, "https://neptune.test/"));
  EXPECT_EQ(*FakeNeptuneTransport::Header(requests[0], "X-Neptune-Api-Token"), token_);
  EXPECT_EQ(*FakeNeptuneTransport::Header(requests[1], "X-Neptune-Api-Token"), token_);
  EXPECT_EQ(FakeNeptuneTransport::Header(requests[0], "Authorization"), nullptr);
  for (size_t i = 1; i < requests.size(); ++i)
    EXPECT_TRUE(absl::StartsWith(requests[i].url, "https://api.neptune.test/"));
  for (size_t i = 2; i < requests.size(); ++i) {
    EXPECT_EQ(FakeNeptuneTransport::Header(requests[i], "X-Neptune-Api-Token"), nullptr);
    EXPECT_EQ(*FakeNeptuneTransport::Header(requests[i], "Authorization"),
              absl::StrCat("Bearer ", transport_.last_access_token()));
    EXPECT_EQ(*FakeNeptuneTransport::Header(requests[i], "X-Neptune-LegacyClient"), "false");
  }
  for (const http::HttpRequest& request : requests) {
    EXPECT_THAT(*FakeNeptuneTransport::Header(request, "User-Agent"), HasSubstr("flyte-neptune-agent/"));
  }
  EXPECT_EQ(FakeNeptuneTransport::Header(requests[1], "X-Neptune-LegacyClient"),
            nullptr);  // as the Python client

  // createExperiment: project uuid twice, type run, the custom id, cliVersion (+ header).
  EXPECT_EQ(Json::parse(requests[3].body),
            Json::parse(R"({"projectIdentifier":"11111111-1111-4111-8111-111111111111",
      "parentId":"11111111-1111-4111-8111-111111111111","type":"run","customId":"a1b2c3d4-run","cliVersion":"1.14.1"})"));
  EXPECT_EQ(requests[3].content_type, "application/json");
  EXPECT_EQ(*FakeNeptuneTransport::Header(requests[3], "X-Neptune-CliVersion"), "1.14.1");
  // executeOperations: sorted by path.
  EXPECT_EQ(requests[4].body, R"([{"path":"flyte/project","assignString":{"value":"flytesnacks"}},)"
                              R"({"path":"flyte/retry_attempt","assignInt":{"value":0}},)"
                              R"({"path":"sys/failed","assignBool":{"value":false}},)"
                              R"({"path":"sys/name","assignString":{"value":"train"}},)"
                              R"({"path":"sys/tags","insertStrings":{"values":["flyte","team"]}}])");
  ExpectTokenOnlyInItsHeader();

  const std::vector<FakeNeptuneTransport::Run> runs = transport_.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].attributes.at("sys/tags")["values"], Json::parse(R"(["flyte","team"])"));
  EXPECT_EQ(client_->stats().requests, 5);
  EXPECT_EQ(client_->stats().retries, 0);
}

TEST_F(NeptuneClientTest, RepeatedCreateRunIsServedFromTheCache) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  for (int poll = 0; poll < 3; ++poll) {
    absl::StatusOr<RunInfo> again = client_->CreateRun(Ref(), InitialFields(), Deadline());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->run_id, "PROJ-1");
  }
  EXPECT_TRUE(transport_.RequestLines().empty());
}

TEST_F(NeptuneClientTest, ProjectLookupIsCachedAndTheSameCustomIdGivesTheSameRun) {
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  absl::StatusOr<RunInfo> second = client_->CreateRun(Ref("run-b"), InitialFields(), Deadline());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->run_id, "PROJ-2");
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(kCreate,
                          "POST /api/leaderboard/v1/attributes/operations?experimentId="
                          "00000000-0000-4000-8000-000000000002"));

  // Another client (a restarted agent, another replica) gets the same run for the same custom id.
  NeptuneClientOptions options;
  options.token_source = [this](int) { return absl::StatusOr<Secret>(Secret(token_)); };
  NeptuneClient other(std::move(options), &transport_, &clock_);
  absl::StatusOr<RunInfo> same = other.CreateRun(Ref("run-a"), InitialFields(), Deadline());
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->run_id, "PROJ-1");
  EXPECT_EQ(transport_.runs().size(), 2u);
}

TEST_F(NeptuneClientTest, WriteSendsOnlyOperationsAndTheFinalWriteEndsPings) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  EXPECT_EQ(client_->pinger().active_runs(), 1u);
  EXPECT_EQ(client_->RunDue(), 1);
  transport_.ClearRequests();
  ASSERT_TRUE(client_->Write(Ref(), {{"flyte/working_directory", std::string("/w")}}, Deadline()).ok());
  ASSERT_TRUE(client_
                  ->Write(Ref(),
                          {{"flyte/phase", std::string("SUCCEEDED")},
                           {"flyte/finished_at", absl::FromUnixMillis(1767225660000)},
                           {"flyte/duration_seconds", 60.0},
                           {"sys/failed", false}},
                          Deadline())
                  .ok());
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kOperations1, kOperations1));
  EXPECT_EQ(transport_.requests()[1].body,
            R"([{"path":"flyte/duration_seconds","assignFloat":{"value":60.0}},)"
            R"({"path":"flyte/finished_at","assignDatetime":{"valueMilliseconds":1767225660000}},)"
            R"({"path":"flyte/phase","assignString":{"value":"SUCCEEDED"}},)"
            R"({"path":"sys/failed","assignBool":{"value":false}}])");
  EXPECT_EQ(client_->pinger().active_runs(), 0u);
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(client_->RunDue(), 0);
  // The background final writer's CreateRun + Write after finalization: no pings come back.
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  EXPECT_EQ(client_->pinger().active_runs(), 0u);
  EXPECT_EQ(transport_.runs()[0].attributes.at("flyte/phase")["value"], "SUCCEEDED");
}

TEST_F(NeptuneClientTest, WriteForAnUnseenRunFindsItByCustomId) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  NeptuneClientOptions options;
  options.token_source = [this](int) { return absl::StatusOr<Secret>(Secret(token_)); };
  NeptuneClient restarted(std::move(options), &transport_, &clock_);
  transport_.ClearRequests();
  ASSERT_TRUE(restarted.Write(Ref(), {{"flyte/phase", std::string("FAILED")}}, Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kConfig, kExchange, kProject, kCreate, kOperations1));
  EXPECT_EQ(transport_.runs().size(), 1u);
}

TEST_F(NeptuneClientTest, PingsCreatedRunsOncePerInterval) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  EXPECT_EQ(client_->RunDue(), 1);
  EXPECT_EQ(client_->RunDue(), 0);
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(client_->RunDue(), 1);
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kPing1, kPing1));
  const http::HttpRequest ping = transport_.requests()[0];
  EXPECT_TRUE(ping.body.empty());
  EXPECT_TRUE(ping.content_type.empty());
  EXPECT_EQ(FakeNeptuneTransport::Header(ping, "X-Neptune-LegacyClient"), nullptr);
  EXPECT_NE(FakeNeptuneTransport::Header(ping, "Authorization"), nullptr);
  EXPECT_EQ(transport_.runs()[0].pings, 2);
}

TEST_F(NeptuneClientTest, RefreshesShortlyBeforeExpiry) {
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  clock_.Advance(absl::Seconds(265));  // 35 s left of the 5 minutes: no refresh yet
  transport_.ClearRequests();
  ASSERT_TRUE(client_->Write(Ref("run-a"), {{"x", true}}, Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(HasSubstr("attributes/operations")));
  clock_.Advance(absl::Seconds(10));  // 25 s left
  transport_.ClearRequests();
  ASSERT_TRUE(client_->Write(Ref("run-a"), {{"x", true}}, Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kRefresh, HasSubstr("attributes/operations")));
  const http::HttpRequest refresh = transport_.requests()[0];
  EXPECT_EQ(refresh.url, "https://api.neptune.test/auth/realms/neptune/protocol/openid-connect/token");
  EXPECT_EQ(refresh.content_type, "application/x-www-form-urlencoded;charset=UTF-8");
  EXPECT_EQ(*FakeNeptuneTransport::Header(refresh, "Accept"), "application/json");
  EXPECT_THAT(refresh.body,
              testing::MatchesRegex(
                  "grant_type=refresh_token&refresh_token=refresh-[0-9]+&client_id=neptune-client"));
  EXPECT_EQ(client_->stats().token_refreshes, 1);
  EXPECT_EQ(client_->stats().token_exchanges, 1);
}

TEST_F(NeptuneClientTest, RefusedRefreshFallsBackToANewExchange) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.RefuseRefreshes(true);
  clock_.Advance(absl::Seconds(290));
  transport_.ClearRequests();
  ASSERT_TRUE(client_->Write(Ref(), {{"x", true}}, Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(kRefresh, kExchange, HasSubstr("attributes/operations")));
}

TEST_F(NeptuneClientTest, ExpiredTokenErrorRefreshesOnceThenRetries) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ExpireAccessTokens();  // the server says expired long before "exp"
  transport_.ClearRequests();
  ASSERT_TRUE(client_->Write(Ref(), {{"x", true}}, Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(HasSubstr("attributes/operations"), kRefresh, HasSubstr("attributes/operations")));
  EXPECT_EQ(client_->stats().expired_token_retries, 1);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
}

TEST_F(NeptuneClientTest, PersistentlyExpiredTokenFailsWithoutALoop) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  transport_.Inject(
      "attributes/operations", 100,
      FakeNeptuneTransport::Response(
          401, R"({"errorType":"AUTHORIZATION_TOKEN_EXPIRED","title":"Authorization token expired"})"));
  absl::Status status = client_->Write(Ref(), {{"x", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("AUTHORIZATION_TOKEN_EXPIRED"));
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(HasSubstr("attributes/operations"), kRefresh, HasSubstr("attributes/operations")));
}

TEST_F(NeptuneClientTest, InvalidApiTokenIsAClearErrorWithoutARetryStorm) {
  token_ = FakeNeptuneTransport::MakeApiToken("wrong-key-0123456789abcdef");  // the server knows another key
  for (int call = 0; call < 3; ++call) {
    absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline());
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(info.status().message(), HasSubstr("Neptune refused the default token"));
    EXPECT_THAT(info.status().message(), HasSubstr("HTTP 401"));
    EXPECT_THAT(info.status().message(), HasSubstr("API_TOKEN_INVALID"));
    EXPECT_THAT(std::string(info.status().message()), Not(HasSubstr(token_)));
    EXPECT_THAT(std::string(info.status().message()), Not(HasSubstr("wrong-key")));
  }
  // One exchange, never retried; the next calls fail at once with the same error for a minute.
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kConfig, kExchange));
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(client_->CreateRun(Ref(), InitialFields(), Deadline()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kConfig, kExchange, kExchange));
  EXPECT_EQ(client_->stats().retries, 0);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
  // A corrected token file is used at once.
  {
    std::lock_guard<std::mutex> lock(token_mu_);
    token_ = FakeNeptuneTransport::MakeApiToken();
  }
  EXPECT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
}

TEST_F(NeptuneClientTest, MalformedTokenFailsBeforeAnyRequest) {
  token_ = "not a token";
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("the default Neptune API token"));
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(NeptuneClientTest, ServiceUnavailableThreeTimesThenSuccess) {
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  transport_.Inject("/api/leaderboard/v1/experiments", 3, FakeNeptuneTransport::Response(503, "busy"));
  const absl::Time start = clock_.Now();
  absl::StatusOr<RunInfo> info =
      client_->CreateRun(Ref("run-b"), InitialFields(), Deadline(absl::Seconds(5)));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(kCreate, kCreate, kCreate, kCreate, HasSubstr("attributes/operations")));
  const std::vector<http::HttpRequest> requests = transport_.requests();
  for (int i = 1; i < 4; ++i) EXPECT_EQ(requests[i].body, requests[0].body);  // the identical body resent
  EXPECT_EQ(client_->stats().retries, 3);
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(250 + 500 + 1000));
}

TEST_F(NeptuneClientTest, RequestsAreCountedByEndpointAndStatus) {
  metrics::Registry registry;
  NeptuneClientOptions options;
  options.metrics = &registry;
  MakeClient(std::move(options));
  transport_.Inject("clients/config", 1, absl::UnavailableError("connection refused"));
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  transport_.Inject("/api/leaderboard/v1/experiments", 3, FakeNeptuneTransport::Response(503, "busy"));
  ASSERT_TRUE(client_->CreateRun(Ref("run-b"), InitialFields(), Deadline(absl::Seconds(5))).ok());
  const std::string text = registry.TextExposition();
  for (const char* line : {
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"attributes/operations\",status=\"200\"} "
           "2\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"clients/config\",status=\"200\"} 1\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"clients/config\",status=\"UNAVAILABLE\"} "
           "1\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"experiments\",status=\"200\"} 2\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"experiments\",status=\"503\"} 3\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"oauth-token\",status=\"200\"} 1\n",
           "flyte_neptune_agent_neptune_requests_total{endpoint=\"projects/get\",status=\"200\"} 1\n",
           "flyte_neptune_agent_neptune_retries_total{endpoint=\"clients/config\"} 1\n",
           "flyte_neptune_agent_neptune_retries_total{endpoint=\"experiments\"} 3\n",
           "flyte_neptune_agent_neptune_request_duration_seconds_count{endpoint=\"experiments\"} 5\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_THAT(text, Not(HasSubstr("run-a")));  // no run ids in labels
}

TEST_F(NeptuneClientTest, ConnectionErrorsAreRetried) {
  transport_.Inject("clients/config", 2, absl::UnavailableError("connection refused"));
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  EXPECT_EQ(client_->stats().retries, 2);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(750));
}

TEST_F(NeptuneClientTest, TooManyRequestsHonoursRetryAfter) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  transport_.Inject("attributes/operations", 1,
                    FakeNeptuneTransport::Response(429, "", {{"Retry-After", "3"}}));
  const absl::Time start = clock_.Now();
  ASSERT_TRUE(client_->Write(Ref(), {{"x", true}}, Deadline(absl::Seconds(10))).ok());
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(3));

  transport_.Inject(
      "attributes/operations", 1,
      FakeNeptuneTransport::Response(
          429, "",
          {{"retry-after", absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", clock_.Now() + absl::Seconds(5),
                                            absl::UTCTimeZone())}}));
  const absl::Time again = clock_.Now();
  ASSERT_TRUE(client_->Write(Ref(), {{"x", true}}, Deadline(absl::Seconds(10))).ok());
  EXPECT_EQ(clock_.Now() - again, absl::Seconds(5));
  EXPECT_EQ(client_->stats().retries, 2);
}

TEST_F(NeptuneClientTest, RetryAfterBeyondTheDeadlineGivesUpAtOnce) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  transport_.Inject("attributes/operations", 1,
                    FakeNeptuneTransport::Response(429, "", {{"Retry-After", "30"}}));
  absl::Status status = client_->Write(Ref(), {{"x", true}}, Deadline(absl::Seconds(2)));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("HTTP 429"));
  EXPECT_EQ(transport_.requests().size(), 1u);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
}

TEST_F(NeptuneClientTest, BadRequestIsNotRetried) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  transport_.Inject(
      "attributes/operations", 1,
      FakeNeptuneTransport::Response(400, R"({"errorType":"BAD_REQUEST","title":"Malformed operation"})"));
  absl::Status status = client_->Write(Ref(), {{"x", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      status.message(),
      HasSubstr("POST attributes/operations: HTTP 400 from Neptune (BAD_REQUEST: Malformed operation)"));
  EXPECT_EQ(transport_.requests().size(), 1u);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
}

TEST_F(NeptuneClientTest, QuotaErrorsAreResourceExhausted) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.Inject("attributes/operations", 1,
                    FakeNeptuneTransport::Response(422, R"({"title":"Workspace is read-only"})"));
  absl::Status status = client_->Write(Ref(), {{"x", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("Workspace is read-only"));
}

TEST_F(NeptuneClientTest, TheCallersDeadlineBoundsEveryRetry) {
  transport_.Inject("clients/config", 1000, FakeNeptuneTransport::Response(503));
  const absl::Time start = clock_.Now();
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline(absl::Seconds(2)));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(info.status().message(), HasSubstr("HTTP 503"));
  EXPECT_THAT(info.status().message(), HasSubstr("the next retry would pass the deadline"));
  EXPECT_LE(clock_.Now() - start, absl::Seconds(2));
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(250 + 500 + 1000));  // 2 s more would pass it
  EXPECT_EQ(transport_.requests().size(), 4u);

  // A deadline that has already passed sends nothing.
  transport_.ClearRequests();
  info = client_->CreateRun(Ref(), InitialFields(), clock_.Now());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(NeptuneClientTest, EachAttemptCarriesTheDeadline) {
  transport_.Inject("clients/config", 1, absl::DeadlineExceededError("read timeout"));
  const absl::Time deadline = Deadline(absl::Minutes(5));
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), deadline).ok());
  const std::vector<http::HttpRequest> requests = transport_.requests();
  EXPECT_EQ(requests[0].deadline, deadline - absl::Minutes(5) + absl::Seconds(30));  // the attempt timeout
  EXPECT_LE(requests.back().deadline, deadline);
}

TEST_F(NeptuneClientTest, OperationErrorsAreLoggedUnlessAllFail) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.set_operation_errors(1);
  EXPECT_TRUE(client_->Write(Ref(), {{"a", true}, {"b", true}, {"c", true}}, Deadline()).ok());
  EXPECT_EQ(client_->stats().operation_errors, 1);
  transport_.set_operation_errors(3);
  absl::Status status = client_->Write(Ref(), {{"a", true}, {"b", true}, {"c", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("refused all 3 operations (metadata_inconsistency: refused)"));
}

TEST_F(NeptuneClientTest, LargeWritesAreSplitAndLimited) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  transport_.ClearRequests();
  std::vector<Field> fields;
  for (int i = 0; i < 2001; ++i) fields.push_back({absl::StrCat("m/", 10000 + i), int64_t{i}});
  fields.push_back({"huge", int64_t{1} << 40});
  fields.push_back({"text", std::string(20000, 'y')});
  ASSERT_TRUE(client_->Write(Ref(), fields, Deadline()).ok());
  const std::vector<http::HttpRequest> requests = transport_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(Json::parse(requests[0].body).size(), 1000u);
  EXPECT_EQ(Json::parse(requests[1].body).size(), 1000u);
  const Json last = Json::parse(requests[2].body);
  ASSERT_EQ(last.size(), 2u);  // m/12000 and text; huge dropped
  EXPECT_EQ(last[1]["assignString"]["value"].get<std::string>().size(), 16384u);
}

TEST_F(NeptuneClientTest, BadInputFailsBeforeAnyRequest) {
  EXPECT_EQ(client_->CreateRun(Ref("x", "no-workspace"), {}, Deadline()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->CreateRun(Ref(std::string(37, 'a')), {}, Deadline()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->CreateRun(Ref(""), {}, Deadline()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->CreateRun(Ref(), {{"//", true}}, Deadline()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Write(Ref(), {{"", true}}, Deadline()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(NeptuneClientTest, UnknownProjectIsNotFound) {
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref("x", "ws/missing"), InitialFields(), Deadline());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(info.status().message(), HasSubstr("Neptune project ws/missing does not exist"));
}

TEST_F(NeptuneClientTest, FallbackLinkFindsTheRunByCustomIdWithoutCalls) {
  const std::string expected_query =
      "?query=(%60sys%2Fcustom_run_id%60%3Astring%20%3D%20%22a1b2c3d4-run%22)&lbViewUnpacked=true";
  // Before any call: the token's address.
  EXPECT_EQ(client_->FallbackLink(Ref()), absl::StrCat("https://neptune.test/ws/proj", expected_query));
  EXPECT_TRUE(transport_.requests().empty());
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  // Once the client config is known: its applicationUrl.
  EXPECT_EQ(client_->FallbackLink(Ref()), absl::StrCat("https://app.neptune.test/ws/proj", expected_query));
  // Configured: always that.
  NeptuneClientOptions options;
  options.application_url = "neptune.example.com/";
  MakeClient(std::move(options));
  transport_.ClearRequests();
  EXPECT_EQ(client_->FallbackLink(Ref()),
            absl::StrCat("https://neptune.example.com/ws/proj", expected_query));
  EXPECT_TRUE(transport_.requests().empty());
}

TEST_F(NeptuneClientTest, EachTokenHasItsSessionAndAChangedTokenStartsANewOne) {
  other_token_ = token_;
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  // Rule 7 has the same token: the session is shared (no new bootstrap).
  transport_.ClearRequests();
  ASSERT_TRUE(client_->CreateRun(RunRef{"ws/proj", "run-b", 7}, InitialFields(), Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(), ElementsAre(kCreate, HasSubstr("attributes/operations")));
  // The token file changed (rotated key the server also knows): a new session.
  {
    std::lock_guard<std::mutex> lock(token_mu_);
    token_ = FakeNeptuneTransport::MakeApiToken();
    token_ += "\n";  // same key, re-encoded with a trailing newline: another string, trimmed on decode
  }
  transport_.ClearRequests();
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  EXPECT_THAT(transport_.RequestLines(),
              ElementsAre(kConfig, kExchange, kProject, kCreate, HasSubstr("attributes/operations")));
}

TEST_F(NeptuneClientTest, ConfiguredHostWinsOverTheTokensAddress) {
  token_ =
      absl::Base64Escape(R"({"api_address":"https://elsewhere.test","api_key":"secret-api-key-0123456789"})");
  NeptuneClientOptions options;
  options.host = "neptune.test";
  MakeClient(std::move(options));
  EXPECT_THAT(client_->FallbackLink(Ref()), testing::StartsWith("https://neptune.test/ws/proj?query="));
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  for (const http::HttpRequest& request : transport_.requests()) {
    EXPECT_THAT(request.url, Not(HasSubstr("elsewhere"))) << request.url;
  }
  EXPECT_TRUE(
      absl::StartsWith(transport_.requests()[0].url, "https://neptune.test/api/backend/v1/clients/config"));
}

TEST_F(NeptuneClientTest, ATokenFileWithANewlineKeepsItsSession) {
  token_ += "\n";
  ASSERT_TRUE(client_->CreateRun(Ref("run-a"), InitialFields(), Deadline()).ok());
  ASSERT_TRUE(client_->CreateRun(Ref("run-b"), InitialFields(), Deadline()).ok());
  ASSERT_TRUE(client_->Write(Ref("run-a"), {{"x", true}}, Deadline()).ok());
  EXPECT_EQ(client_->stats().token_exchanges, 1);
  EXPECT_EQ(*FakeNeptuneTransport::Header(transport_.requests()[0], "X-Neptune-Api-Token"),
            token_.substr(0, token_.size() - 1));  // sent trimmed
}

TEST_F(NeptuneClientTest, MissingTokenIsFailedPrecondition) {
  NeptuneClientOptions options;
  options.token_source = [](int rule) -> absl::StatusOr<Secret> {
    return absl::NotFoundError("token file /etc/neptune/token does not exist");
  };
  MakeClient(std::move(options));
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("/etc/neptune/token"));
  EXPECT_EQ(client_->FallbackLink(Ref()), "");
}

TEST_F(NeptuneClientTest, ConcurrentColdCallsBootstrapOnce) {
  constexpr int kThreads = 32;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, i, &ok] {
      if (client_->CreateRun(Ref(absl::StrCat("run-", i)), InitialFields(), Deadline(absl::Seconds(30))).ok())
        ++ok;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads);
  int config = 0, exchange = 0, project = 0, create = 0;
  for (const std::string& line : transport_.RequestLines()) {
    config += line == kConfig;
    exchange += line == kExchange;
    project += line == kProject;
    create += line == kCreate;
  }
  EXPECT_EQ(config, 1);
  EXPECT_EQ(exchange, 1);
  EXPECT_EQ(project, 1);
  EXPECT_EQ(create, kThreads);
  EXPECT_EQ(transport_.runs().size(), static_cast<size_t>(kThreads));
}

TEST_F(NeptuneClientTest, ConcurrentCallsForOneRunCreateItOnce) {
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([this] {
      absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(), InitialFields(), Deadline(absl::Seconds(30)));
      ASSERT_TRUE(info.ok()) << info.status();
      EXPECT_EQ(info->run_id, "PROJ-1");
    });
  }
  for (std::thread& thread : threads) thread.join();
  int create = 0;
  for (const std::string& line : transport_.RequestLines()) create += line == kCreate;
  EXPECT_EQ(create, 1);
  EXPECT_EQ(transport_.runs().size(), 1u);
}

TEST_F(NeptuneClientTest, ServerTextInErrorsIsScrubbedOfTokens) {
  ASSERT_TRUE(client_->CreateRun(Ref(), InitialFields(), Deadline()).ok());
  const std::string access = transport_.last_access_token();
  transport_.Inject(
      "attributes/operations", 1,
      FakeNeptuneTransport::Response(
          403, Json({{"title", absl::StrCat("bearer ", access, " and ", token_, " may not write")}}).dump()));
  absl::Status status = client_->Write(Ref(), {{"x", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(access)));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(token_)));
  EXPECT_THAT(status.message(), HasSubstr("may not write"));
}

}  // namespace
}  // namespace fna::neptune
