// The Neptune client against the strict Neptune 2.x emulator (tests/neptune_emulator): real HTTP(S) over
// http::HttplibTransport, every request checked against Neptune's Swagger documents. One FakeClock drives the
// client, the transport's deadlines and the emulator's token expiry, so backoff waits take no time.

#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"
#include "agent/neptune/neptune_client.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/neptune_emulator/emulator.h"

namespace fna::neptune {
namespace {

using ::fna::neptune_emulator::Fault;
using ::fna::neptune_emulator::NeptuneEmulator;
using ::fna::neptune_emulator::Outage;
using ::fna::neptune_emulator::RunSnapshot;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kProject[] = "ws/proj";
constexpr char kOperations[] = "/api/leaderboard/v1/attributes/operations";
constexpr char kExperiments[] = "/api/leaderboard/v1/experiments";
constexpr char kRefresh[] = "/auth/realms/neptune/protocol/openid-connect/token";

RunRef Ref(absl::string_view custom_id) { return RunRef{kProject, std::string(custom_id), -1}; }

std::vector<Field> Initial(absl::string_view name) {
  return {
      {"sys/name", std::string(name)},
      {"sys/description", std::string("a Flyte task")},
      {"sys/tags", StringSet{{"flyte", "team-a"}}},
      {"sys/group_tags", StringSet{{"f1a2b3c4"}}},
      {"sys/failed", false},
      {"flyte/execution_id", std::string("f1a2b3c4-n0-0")},
      {"flyte/project", std::string("flytesnacks")},
      {"flyte/retry_attempt", int64_t{0}},
      {"flyte/started_at", absl::FromUnixMillis(1767225600250)},
  };
}

std::vector<Field> Final() {
  return {
      {"flyte/phase", std::string("FAILED")}, {"flyte/finished_at", absl::FromUnixMillis(1767225660750)},
      {"flyte/duration_seconds", 60.5},       {"flyte/exit_code", int64_t{3}},
      {"flyte/error", std::string("boom")},   {"sys/failed", true},
      {"sys/name", std::string("train")},
  };
}

class EmulatorClientTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(NeptuneEmulator::Options()); }

  void Start(NeptuneEmulator::Options options, http::HttplibTransportOptions transport_options = {}) {
    client_.reset();
    transport_.reset();
    emulator_.reset();
    options.clock = &clock_;
    options.projects = {{kProject, "PROJ"}};
    absl::StatusOr<std::unique_ptr<NeptuneEmulator>> emulator = NeptuneEmulator::Start(std::move(options));
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    token_ = emulator_->api_token();
    absl::StatusOr<std::unique_ptr<http::HttplibTransport>> transport =
        http::HttplibTransport::Create(std::move(transport_options), &clock_);
    ASSERT_TRUE(transport.ok()) << transport.status();
    transport_ = *std::move(transport);
    client_ = NewClient();
  }

  std::unique_ptr<NeptuneClient> NewClient() {
    NeptuneClientOptions options;
    options.token_source = [this](int) { return absl::StatusOr<Secret>(Secret(token_)); };
    options.random = [] { return 0.5; };
    return std::make_unique<NeptuneClient>(std::move(options), transport_.get(), &clock_);
  }

  absl::Time Deadline(absl::Duration budget = absl::Seconds(2)) { return clock_.Now() + budget; }

  RunSnapshot Run(absl::string_view custom_id) {
    std::optional<RunSnapshot> run = emulator_->RunByCustomId(kProject, custom_id);
    EXPECT_TRUE(run.has_value()) << custom_id;
    return run.value_or(RunSnapshot{});
  }

  FakeClock clock_;
  std::string token_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::unique_ptr<http::HttplibTransport> transport_;
  std::unique_ptr<NeptuneClient> client_;
};

void ExpectAttribute(const RunSnapshot& run, const std::string& path, const std::string& type,
                     const Json& value) {
  auto it = run.attributes.find(path);
  ASSERT_NE(it, run.attributes.end()) << path;
  EXPECT_EQ(it->second.type, type) << path;
  EXPECT_EQ(it->second.value, value) << path;
}

TEST_F(EmulatorClientTest, FullLifecycleWithExactAttributeTypes) {
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref("run-life"), Initial("f1a2b3c4-n0-0"), Deadline());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->run_id, "PROJ-1");
  EXPECT_EQ(info->url, absl::StrCat(emulator_->base_url(), "/ws/proj/e/PROJ-1"));

  EXPECT_EQ(client_->RunDue(), 1);
  ASSERT_TRUE(
      client_->Write(Ref("run-life"), {{"flyte/working_directory", std::string("/work")}}, Deadline()).ok());
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(client_->RunDue(), 1);
  EXPECT_EQ(Run("run-life").attributes.at("sys/state").value, "running");
  ASSERT_TRUE(client_->Write(Ref("run-life"), Final(), Deadline()).ok());
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(client_->RunDue(), 0);  // finished: no more pings
  clock_.Advance(absl::Minutes(1));
  const RunSnapshot run = Run("run-life");
  EXPECT_EQ(run.attributes.at("sys/state").value, "idle");

  ExpectAttribute(run, "sys/id", "string", "PROJ-1");
  ExpectAttribute(run, "sys/custom_run_id", "string", "run-life");
  ExpectAttribute(run, "sys/name", "string", "train");
  ExpectAttribute(run, "sys/description", "string", "a Flyte task");
  ExpectAttribute(run, "sys/tags", "stringSet", Json::array({"flyte", "team-a"}));
  ExpectAttribute(run, "sys/group_tags", "stringSet", Json::array({"f1a2b3c4"}));
  ExpectAttribute(run, "sys/failed", "bool", true);
  ExpectAttribute(run, "flyte/execution_id", "string", "f1a2b3c4-n0-0");
  ExpectAttribute(run, "flyte/project", "string", "flytesnacks");
  ExpectAttribute(run, "flyte/retry_attempt", "int", 0);
  ExpectAttribute(run, "flyte/started_at", "datetime", 1767225600250);
  ExpectAttribute(run, "flyte/finished_at", "datetime", 1767225660750);
  ExpectAttribute(run, "flyte/duration_seconds", "float", 60.5);
  ExpectAttribute(run, "flyte/exit_code", "int", 3);
  ExpectAttribute(run, "flyte/error", "string", "boom");
  ExpectAttribute(run, "flyte/phase", "string", "FAILED");
  ExpectAttribute(run, "flyte/working_directory", "string", "/work");

  // Every request was accepted (the emulator checks each against the Swagger documents), and the API token
  // went only to clients/config and oauth-token.
  for (const neptune_emulator::RequestRecord& record : emulator_->Requests()) {
    EXPECT_EQ(record.status / 100, 2) << record.method << " " << record.path << ": " << record.response_body;
    const bool api_token_call =
        absl::EndsWith(record.path, "/clients/config") || absl::EndsWith(record.path, "/oauth-token");
    EXPECT_EQ(absl::StartsWith(record.auth, "api-token:"), api_token_call)
        << record.path << " " << record.auth;
  }
  EXPECT_EQ(emulator_->RequestCount("POST", "/api/leaderboard/v1/attributes/ping"), 2);
  EXPECT_EQ(emulator_->RequestCount("POST", kRefresh), 0);
}

TEST_F(EmulatorClientTest, SameRunCreatedThreeTimes) {
  std::vector<RunInfo> infos;
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<NeptuneClient> client = NewClient();  // a fresh cache each time: a restart, a replica
    absl::StatusOr<RunInfo> info = client->CreateRun(Ref("run-same"), Initial("same"), Deadline());
    ASSERT_TRUE(info.ok()) << info.status();
    infos.push_back(*info);
  }
  EXPECT_EQ(infos[0].run_id, infos[1].run_id);
  EXPECT_EQ(infos[1].run_id, infos[2].run_id);
  EXPECT_EQ(infos[0].url, infos[2].url);
  EXPECT_EQ(emulator_->Runs().size(), 1u);
  EXPECT_EQ(emulator_->RequestCount("POST", kExperiments), 3);
  ExpectAttribute(Run("run-same"), "sys/tags", "stringSet", Json::array({"flyte", "team-a"}));
  // The same client asked again sends nothing more.
  const int before = static_cast<int>(emulator_->Requests().size());
  ASSERT_TRUE(client_->CreateRun(Ref("run-same"), Initial("same"), Deadline()).ok());
  ASSERT_TRUE(client_->CreateRun(Ref("run-same"), Initial("same"), Deadline()).ok());
  EXPECT_EQ(static_cast<int>(emulator_->Requests().size()),
            before + 5);  // config, oauth, project, create, ops
}

TEST_F(EmulatorClientTest, ConcurrentCreateRunsShareAHandfulOfConnections) {
  constexpr int kRuns = 200;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kRuns; ++i) {
    threads.emplace_back([this, i, &ok] {
      absl::StatusOr<RunInfo> info = client_->CreateRun(Ref(absl::StrCat("run-", i)), Initial("concurrent"),
                                                        Deadline(absl::Seconds(60)));
      if (info.ok()) {
        ++ok;
      } else {
        ADD_FAILURE() << info.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kRuns);
  EXPECT_EQ(emulator_->Runs().size(), static_cast<size_t>(kRuns));
  EXPECT_LE(emulator_->ConnectionCount(), 8);  // http::HttplibTransportOptions::max_connections_per_host
  EXPECT_LE(transport_->clients_created(), 8);
  EXPECT_EQ(emulator_->RequestCount("GET", "/api/backend/v1/authorization/oauth-token"), 1);
  EXPECT_EQ(emulator_->RequestCount("GET", "/api/backend/v1/projects/get"), 1);
  // And they are all pinged, within the budget.
  EXPECT_EQ(client_->RunDue(), 50);  // PingerOptions::max_pings_per_second
}

TEST_F(EmulatorClientTest, ExpiredTokenIsRefreshedOnce) {
  ASSERT_TRUE(client_->CreateRun(Ref("run-exp"), Initial("x"), Deadline()).ok());
  emulator_->ExpireAccessTokens();
  ASSERT_TRUE(client_->Write(Ref("run-exp"), {{"flyte/phase", std::string("RUNNING")}}, Deadline()).ok());
  EXPECT_EQ(emulator_->RequestCount("POST", kRefresh), 1);
  EXPECT_EQ(emulator_->RequestCount("POST", kOperations), 3);  // initial, refused, retried
  EXPECT_EQ(client_->stats().expired_token_retries, 1);

  // Refresh tokens revoked too: the refresh is refused and the API token exchanged again.
  emulator_->ExpireAccessTokens(/*refresh_tokens_too=*/true);
  ASSERT_TRUE(client_->Write(Ref("run-exp"), {{"flyte/phase", std::string("RUNNING")}}, Deadline()).ok());
  EXPECT_EQ(emulator_->RequestCount("POST", kRefresh), 2);
  EXPECT_EQ(emulator_->RequestCount("GET", "/api/backend/v1/authorization/oauth-token"), 2);

  // Natural expiry: refreshed shortly before `exp` (5 minutes), without a 401.
  clock_.Advance(absl::Seconds(280));
  ASSERT_TRUE(client_->Write(Ref("run-exp"), {{"x", true}}, Deadline()).ok());
  EXPECT_EQ(emulator_->RequestCount("POST", kRefresh), 3);
  EXPECT_EQ(client_->stats().expired_token_retries, 2);
}

TEST_F(EmulatorClientTest, FaultsAreRetriedWithinTheDeadline) {
  ASSERT_TRUE(client_->CreateRun(Ref("run-f"), Initial("x"), Deadline()).ok());
  emulator_->FailNext(kOperations, 3, 503);
  absl::Time start = clock_.Now();
  ASSERT_TRUE(client_->Write(Ref("run-f"), {{"a", true}}, Deadline()).ok());
  EXPECT_EQ(clock_.Now() - start, absl::Milliseconds(1750));

  emulator_->FailNext(kOperations, 1, 429, "1");
  start = clock_.Now();
  ASSERT_TRUE(client_->Write(Ref("run-f"), {{"a", true}}, Deadline()).ok());
  EXPECT_EQ(clock_.Now() - start, absl::Seconds(1));

  Fault drop;
  drop.path_prefix = kOperations;
  drop.action = Fault::Action::kDrop;
  emulator_->AddFault(drop);
  ASSERT_TRUE(client_->Write(Ref("run-f"), {{"a", true}}, Deadline()).ok());

  emulator_->FailNext(kOperations, 1, 400);
  EXPECT_EQ(client_->Write(Ref("run-f"), {{"a", true}}, Deadline()).code(),
            absl::StatusCode::kInvalidArgument);

  emulator_->SetOutage(Outage::kUnavailable);
  start = clock_.Now();
  const int before = emulator_->RequestCount("POST", kOperations);
  absl::Status status = client_->Write(Ref("run-f"), {{"a", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_LE(clock_.Now() - start, absl::Seconds(2));
  EXPECT_EQ(emulator_->RequestCount("POST", kOperations) - before, 4);

  emulator_->SetOutage(Outage::kDrop);
  status = client_->Write(Ref("run-f"), {{"a", true}}, Deadline());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  emulator_->SetOutage(Outage::kNone);
  EXPECT_TRUE(client_->Write(Ref("run-f"), {{"a", true}}, Deadline()).ok());
}

TEST_F(EmulatorClientTest, InvalidTokenIsRefusedWithoutRetries) {
  token_ = neptune_emulator::ApiTokenFor(emulator_->base_url(), "not-a-key-the-emulator-knows");
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<RunInfo> info = client_->CreateRun(Ref("run-bad"), Initial("x"), Deadline());
    EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(info.status().message()), ::testing::Not(HasSubstr(token_)));
  }
  EXPECT_LE(emulator_->Requests().size(), 2u);
  EXPECT_TRUE(emulator_->Runs().empty());
}

class EmulatorTlsTest : public EmulatorClientTest {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/fna-emulator-pki-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    ASSERT_TRUE(testing::WriteTestPki(dir_, &pki_));
  }
  void TearDown() override {
    client_.reset();
    transport_.reset();
    emulator_.reset();
    testing::RemoveTestPki(dir_, pki_);
  }
  void StartTls(const std::string& ca_file) {
    NeptuneEmulator::Options options;
    options.tls_cert_path = pki_.server_cert_file;
    options.tls_key_path = pki_.server_key_file;
    http::HttplibTransportOptions transport_options;
    transport_options.ca_cert_file = ca_file;
    Start(std::move(options), std::move(transport_options));
  }
  std::string dir_;
  testing::TestPki pki_;
};

TEST_F(EmulatorTlsTest, HttpsWithTheRightCa) {
  StartTls(pki_.ca_file);
  ASSERT_TRUE(emulator_->tls());
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref("run-tls"), Initial("x"), Deadline());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(absl::StartsWith(info->url, "https://127.0.0.1:"));
  ASSERT_TRUE(client_->Write(Ref("run-tls"), Final(), Deadline()).ok());
  ExpectAttribute(Run("run-tls"), "flyte/phase", "string", "FAILED");
}

TEST_F(EmulatorTlsTest, HttpsRefusedWithAWrongCa) {
  StartTls(pki_.other_ca_file);
  absl::StatusOr<RunInfo> info = client_->CreateRun(Ref("run-tls"), Initial("x"), Deadline());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("not trusted"));
  EXPECT_TRUE(emulator_->Requests().empty());
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());  // not retried
}

}  // namespace
}  // namespace fna::neptune
