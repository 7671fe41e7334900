#include "agent/storage/aws_credentials.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_s3/fake_s3.h"

namespace fna::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRole[] = "arn:aws:iam::123456789012:role/flyte-neptune-agent";

TEST(MapEnvironmentTest, EmptyIsUnset) {
  const EnvironmentGetter env = MapEnvironment({{"A", "1"}, {"EMPTY", ""}});
  EXPECT_EQ(env("A"), "1");
  EXPECT_EQ(env("EMPTY"), std::nullopt);
  EXPECT_EQ(env("MISSING"), std::nullopt);
}

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_s3::FakeS3::Options options;
    options.clock = &clock_;
    auto fake = fake_s3::FakeS3::Start(options);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    auto transport = http::HttplibTransport::Create({}, &clock_);
    ASSERT_TRUE(transport.ok()) << transport.status();
    transport_ = *std::move(transport);

    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/aws_credentials_test-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    token_file_ = (dir_ / "token").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteToken(const std::string& token) { std::ofstream(token_file_, std::ios::trunc) << token << "\n"; }

  WebIdentityOptions Options() {
    WebIdentityOptions options;
    options.token_file = token_file_;
    options.role_arn = kRole;
    options.sts_endpoint = fake_->endpoint();
    options.retry = RetryOptions{absl::Milliseconds(100), 2.0, absl::Seconds(1), 0.0, absl::Seconds(10)};
    return options;
  }

  std::unique_ptr<WebIdentityCredentialsProvider> Provider() {
    auto provider = WebIdentityCredentialsProvider::Create(Options(), transport_.get(), &clock_);
    EXPECT_TRUE(provider.ok()) << provider.status();
    return provider.ok() ? *std::move(provider) : nullptr;
  }

  absl::Time Deadline() { return clock_.Now() + absl::Seconds(30); }

  FakeClock clock_;
  std::unique_ptr<fake_s3::FakeS3> fake_;
  std::unique_ptr<http::HttplibTransport> transport_;
  fs::path dir_;
  std::string token_file_;
};

TEST_F(CredentialsTest, WebIdentityExchangesOnceWhileValidAndAgainBeforeExpiry) {
  WriteToken("token-1");
  fake_->SetWebIdentityToken("token-1");
  auto provider = Provider();
  ASSERT_NE(provider, nullptr);

  auto first = provider->Get(Deadline());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->access_key_id, HasSubstr("ASIA"));
  EXPECT_FALSE(first->session_token.empty());
  EXPECT_EQ(first->expiration, clock_.Now() + absl::Hours(1));
  clock_.Advance(absl::Minutes(54));
  auto cached = provider->Get(Deadline());
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->access_key_id, first->access_key_id);
  EXPECT_EQ(provider->exchanges(), 1);
  EXPECT_EQ(fake_->RequestCount("sts"), 1);

  // Within five minutes of the expiry: a new exchange, with the token file as it is now (rotated).
  WriteToken("token-2");
  fake_->SetWebIdentityToken("token-2");
  clock_.Advance(absl::Minutes(2));
  auto refreshed = provider->Get(Deadline());
  ASSERT_TRUE(refreshed.ok()) << refreshed.status();
  EXPECT_NE(refreshed->access_key_id, first->access_key_id);
  EXPECT_EQ(provider->exchanges(), 2);
  const std::vector<fake_s3::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].form.at("WebIdentityToken"), "token-1");
  EXPECT_EQ(requests[1].form.at("WebIdentityToken"), "token-2");
  EXPECT_EQ(requests[1].form.at("RoleArn"), kRole);
  EXPECT_EQ(requests[1].form.at("RoleSessionName"), "flyte-neptune-agent");
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].target, "/");  // the token travels in the body, never in the URL
  EXPECT_EQ(requests[1].headers.count("authorization"), 0u);

  provider->Invalidate();
  ASSERT_TRUE(provider->Get(Deadline()).ok());
  EXPECT_EQ(provider->exchanges(), 3);
}

TEST_F(CredentialsTest, KeptCredentialsServeWhileStsRefusesUntilTheyExpire) {
  WriteToken("token-1");
  fake_->SetWebIdentityToken("token-1");
  auto provider = Provider();
  ASSERT_NE(provider, nullptr);
  auto first = provider->Get(Deadline());
  ASSERT_TRUE(first.ok()) << first.status();

  fake_->SetWebIdentityToken("token-2");  // the file still holds token-1
  clock_.Advance(absl::Minutes(57));
  auto kept = provider->Get(Deadline());
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->access_key_id, first->access_key_id);

  clock_.Advance(absl::Minutes(3));
  const absl::Status expired = provider->Get(Deadline()).status();
  EXPECT_EQ(expired.code(), absl::StatusCode::kUnauthenticated) << expired;
  EXPECT_THAT(std::string(expired.message()), HasSubstr("InvalidIdentityToken"));
  EXPECT_THAT(std::string(expired.message()), HasSubstr(token_file_));
  EXPECT_THAT(std::string(expired.message()), Not(HasSubstr("token-1")));
}

TEST_F(CredentialsTest, StsRefusalsAndFaults) {
  WriteToken("token-1");
  fake_->SetWebIdentityToken("token-1");

  WebIdentityOptions other_role = Options();
  other_role.role_arn = "arn:aws:iam::123456789012:role/other";
  auto refused = WebIdentityCredentialsProvider::Create(other_role, transport_.get(), &clock_);
  ASSERT_TRUE(refused.ok());
  const absl::Status denied = (*refused)->Get(Deadline()).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << denied;
  EXPECT_THAT(std::string(denied.message()), HasSubstr("role/other"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("AccessDenied"));

  // 503 twice, then an answer: one exchange, three requests.
  fake_->ClearRequests();
  fake_->FailNext(2, 503);
  auto provider = Provider();
  ASSERT_NE(provider, nullptr);
  ASSERT_TRUE(provider->Get(Deadline()).ok());
  EXPECT_EQ(provider->exchanges(), 1);
  EXPECT_EQ(fake_->RequestCount("sts"), 3);

  // STS down for good: Unavailable within the deadline.
  provider->Invalidate();
  fake_->FailNext(1000, 503);
  const absl::Time deadline = clock_.Now() + absl::Seconds(3);
  const absl::Status down = provider->Get(deadline).status();
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_LE(clock_.Now(), deadline);
}

TEST_F(CredentialsTest, AnUnreadableOrEmptyTokenFileIsAFailedPrecondition) {
  fake_->SetWebIdentityToken("token-1");
  auto provider = Provider();
  ASSERT_NE(provider, nullptr);
  absl::Status status = provider->Get(Deadline()).status();  // no file yet
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(token_file_));
  WriteToken("  ");
  status = provider->Get(Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("empty"));
  EXPECT_EQ(fake_->RequestCount("sts"), 0);
}

TEST_F(CredentialsTest, FromEnvironmentPicksStaticKeysThenWebIdentity) {
  WebIdentityOptions base = Options();
  base.token_file.clear();
  base.role_arn.clear();

  auto none = CredentialsFromEnvironment(MapEnvironment({}), base, transport_.get(), &clock_);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, nullptr);

  auto keys = CredentialsFromEnvironment(MapEnvironment({{"AWS_ACCESS_KEY_ID", "AKIDSTATIC"},
                                                         {"AWS_SECRET_ACCESS_KEY", "static-secret"},
                                                         {"AWS_SESSION_TOKEN", "static-session-token"},
                                                         {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file_},
                                                         {"AWS_ROLE_ARN", kRole}}),
                                         base, transport_.get(), &clock_);
  ASSERT_TRUE(keys.ok()) << keys.status();
  auto credentials = (*keys)->Get(Deadline());
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->access_key_id, "AKIDSTATIC");
  EXPECT_EQ(credentials->secret_access_key.Reveal(), "static-secret");
  EXPECT_EQ(credentials->session_token.Reveal(), "static-session-token");

  WriteToken("token-1");
  fake_->SetWebIdentityToken("token-1");
  auto web = CredentialsFromEnvironment(MapEnvironment({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file_},
                                                        {"AWS_ROLE_ARN", kRole},
                                                        {"AWS_ROLE_SESSION_NAME", "replica-1"}}),
                                        base, transport_.get(), &clock_);
  ASSERT_TRUE(web.ok()) << web.status();
  ASSERT_TRUE((*web)->Get(Deadline()).ok());
  EXPECT_EQ(fake_->Requests().back().form.at("RoleSessionName"), "replica-1");
}

TEST_F(CredentialsTest, FromEnvironmentRefusesIncompleteSetsWithoutShowingValues) {
  for (const auto& variables : std::vector<std::map<std::string, std::string>>{
           {{"AWS_ACCESS_KEY_ID", "AKIDLONELY"}},
           {{"AWS_SECRET_ACCESS_KEY", "lonely-secret-value"}},
           {{"AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"}},
           {{"AWS_ROLE_ARN", kRole}}}) {
    const absl::Status status =
        CredentialsFromEnvironment(MapEnvironment(variables), Options(), transport_.get(), &clock_).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(variables.begin()->first));
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr(variables.begin()->second)));
  }
}

}  // namespace
}  // namespace fna::storage
