#include "agent/storage/s3_output_store.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
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

constexpr char kKeyId[] = "AKIDFAKEKEYID";
constexpr char kSecret[] = "fake/secret+access+key";
constexpr char kObject[] = "s3://flyte-data/metadata/propeller/x/n0/data/0/error.pb";

// Sends every request to the fake on 127.0.0.1, whatever host its URL names, keeping the Host header the
// store signed: as `curl --resolve` would. Lets virtual-hosted addressing ("<bucket>.<endpoint host>") reach
// the fake without DNS.
class LoopbackTransport final : public http::HttpTransport {
 public:
  LoopbackTransport(http::HttpTransport* inner, int port) : inner_(inner), port_(port) {}
  absl::StatusOr<http::HttpResponse> Send(const http::HttpRequest& request) override {
    auto url = http::ParseUrl(request.url);
    if (!url.ok()) return url.status();
    http::HttpRequest rewritten = request;
    rewritten.url = absl::StrCat("http://127.0.0.1:", port_, url->target);
    return inner_->Send(rewritten);
  }

 private:
  http::HttpTransport* const inner_;
  const int port_;
};

// Hands out credentials from a list, moving to the next one on Invalidate.
class ListedCredentials final : public AwsCredentialsProvider {
 public:
  explicit ListedCredentials(std::vector<AwsCredentials> list) : list_(std::move(list)) {}
  absl::StatusOr<AwsCredentials> Get(absl::Time /*deadline*/) override { return list_.at(next_); }
  void Invalidate() override {
    ++next_;
    ++invalidations;
  }
  int invalidations = 0;

 private:
  std::vector<AwsCredentials> list_;
  size_t next_ = 0;
};

class S3OutputStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_s3::FakeS3::Options options;
    options.clock = &clock_;
    auto fake = fake_s3::FakeS3::Start(options);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    fake_->AddKey(kKeyId, kSecret);
    auto transport = http::HttplibTransport::Create({}, &clock_);
    ASSERT_TRUE(transport.ok()) << transport.status();
    transport_ = *std::move(transport);
  }

  S3StoreOptions Options() {
    S3StoreOptions options;
    options.endpoint = fake_->endpoint();
    options.random = [] { return 0.5; };
    return options;
  }

  std::unique_ptr<S3OutputStore> Store(S3StoreOptions options, AwsCredentials credentials,
                                       http::HttpTransport* transport = nullptr) {
    auto store = S3OutputStore::Create(std::move(options),
                                       std::make_unique<StaticCredentialsProvider>(std::move(credentials)),
                                       transport != nullptr ? transport : transport_.get(), &clock_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<S3OutputStore> Store() { return Store(Options(), Credentials()); }

  static AwsCredentials Credentials(const std::string& secret = kSecret, const std::string& token = "") {
    return AwsCredentials{kKeyId, Secret(secret), Secret(token), absl::InfiniteFuture()};
  }

  absl::Time Deadline() { return clock_.Now() + absl::Seconds(30); }

  FakeClock clock_;
  std::unique_ptr<fake_s3::FakeS3> fake_;
  std::unique_ptr<http::HttplibTransport> transport_;
};

TEST_F(S3OutputStoreTest, PresentObjectIsReadWithOneSignedRangedGet) {
  const std::string bytes("\x0a\x05oops!\x00\xff", 9);
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", bytes);
  auto store = Store();
  auto read = store->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);

  const std::vector<fake_s3::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_FALSE(requests[0].virtual_hosted);  // a custom endpoint: path-style
  EXPECT_EQ(requests[0].target, "/flyte-data/metadata/propeller/x/n0/data/0/error.pb");
  EXPECT_EQ(requests[0].headers.at("range"), "bytes=0-10485760");
  EXPECT_EQ(requests[0].headers.at("x-amz-content-sha256"), kEmptyPayloadSha256);
  EXPECT_EQ(requests[0].headers.at("user-agent"), "flyte-neptune-agent");
  EXPECT_EQ(requests[0].headers.count("x-amz-security-token"), 0u);
  EXPECT_EQ(store->requests(), 1);
}

TEST_F(S3OutputStoreTest, KeysAreEncodedOnce) {
  fake_->PutObject("flyte-data", "out/a b+c%/é/error.pb", "x");
  auto read = Store()->Read("s3://flyte-data/out/a b+c%/é/error.pb", Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "x");
  EXPECT_EQ(fake_->Requests()[0].target, "/flyte-data/out/a%20b%2Bc%25/%C3%A9/error.pb");
}

TEST_F(S3OutputStoreTest, AbsentObjectIsNullopt) {
  fake_->AddBucket("flyte-data");
  auto read = Store()->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::nullopt);
  ASSERT_EQ(fake_->Requests().size(), 1u);
  EXPECT_EQ(fake_->Requests()[0].error_code, "NoSuchKey");
}

TEST_F(S3OutputStoreTest, EmptyObjectIsPresentAndEmpty) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "");
  auto read = Store()->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::optional<std::string>(""));
  EXPECT_EQ(fake_->Requests()[0].status, 416);
}

TEST_F(S3OutputStoreTest, MissingBucketIsNotFoundNotAbsence) {
  const absl::Status status = Store()->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("bucket flyte-data does not exist"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("NoSuchBucket"));
}

TEST_F(S3OutputStoreTest, WrongSecretIsPermissionDeniedNamingTheS3CodeNotTheSecret) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  auto store = Store(Options(), Credentials("not-the-right-secret"));
  const absl::Status status = store->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(message, HasSubstr(kObject));
  EXPECT_THAT(message, Not(HasSubstr("not-the-right-secret")));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  EXPECT_THAT(message, Not(HasSubstr("CanonicalRequest")));  // S3's body carries it; the message does not
  EXPECT_EQ(fake_->RequestCount("s3"), 1);                   // a 403 is not retried
}

TEST_F(S3OutputStoreTest, UnknownKeyIsPermissionDenied) {
  auto store =
      Store(Options(), AwsCredentials{"AKIDUNKNOWN", Secret(kSecret), Secret(), absl::InfiniteFuture()});
  const absl::Status status = store->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("InvalidAccessKeyId"));
}

TEST_F(S3OutputStoreTest, TwoServiceUnavailablesThenTheObject) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  fake_->FailNext(2, 503);
  auto store = Store();
  auto read = store->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "x");
  EXPECT_EQ(fake_->RequestCount("s3"), 3);
  EXPECT_EQ(store->requests(), 3);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(100 + 200));  // backoffs on the injected clock
}

TEST_F(S3OutputStoreTest, InternalErrorsAndDroppedConnectionsAreRetried) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  fake_->FailNext(1, 500);
  fake_->DropNext(1);
  auto read = Store()->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "x");
  const std::vector<fake_s3::RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].status, 500);
  EXPECT_EQ(requests[1].status, 0);  // dropped
  EXPECT_EQ(requests[2].status, 206);
}

TEST_F(S3OutputStoreTest, ServiceUnavailableForeverFailsWithinTheDeadline) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  fake_->FailNext(1000, 503);
  const absl::Time deadline = clock_.Now() + absl::Seconds(2);
  const absl::Status status = Store()->Read(kObject, deadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("503 SlowDown"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(kObject));
  EXPECT_LE(clock_.Now(), deadline);
  EXPECT_GT(fake_->RequestCount("s3"), 2);
}

TEST_F(S3OutputStoreTest, VirtualHostedAddressingPutsTheBucketInTheHost) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  LoopbackTransport loopback(transport_.get(), fake_->port());
  S3StoreOptions options = Options();
  options.endpoint = absl::StrCat("http://s3.fake.test:", fake_->port());
  options.addressing = S3Addressing::kVirtualHosted;
  auto read = Store(options, Credentials(), &loopback)->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "x");
  const fake_s3::RecordedRequest request = fake_->Requests().at(0);
  EXPECT_TRUE(request.virtual_hosted);
  EXPECT_EQ(request.host, absl::StrCat("flyte-data.s3.fake.test:", fake_->port()));
  EXPECT_EQ(request.target, "/metadata/propeller/x/n0/data/0/error.pb");
}

TEST_F(S3OutputStoreTest, AutomaticAddressingIsVirtualHostedOnAwsForDnsBucketsOnly) {
  fake_s3::FakeS3::Options aws_like;
  aws_like.clock = &clock_;
  aws_like.virtual_host_domain = "s3.us-east-1.amazonaws.com";
  auto fake = fake_s3::FakeS3::Start(aws_like);
  ASSERT_TRUE(fake.ok()) << fake.status();
  (*fake)->AddKey(kKeyId, kSecret);
  (*fake)->PutObject("flyte-data", "k", "dns bucket");
  (*fake)->PutObject("Flyte_Data", "k", "legacy bucket");
  LoopbackTransport loopback(transport_.get(), (*fake)->port());
  S3StoreOptions options = Options();
  options.endpoint = absl::StrCat("http://s3.us-east-1.amazonaws.com:", (*fake)->port());
  auto store = Store(options, Credentials(), &loopback);
  auto read = store->Read("s3://flyte-data/k", Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "dns bucket");
  read = store->Read("s3://Flyte_Data/k", Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "legacy bucket");
  const std::vector<fake_s3::RecordedRequest> requests = (*fake)->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(requests[0].virtual_hosted);
  EXPECT_FALSE(requests[1].virtual_hosted);
}

TEST_F(S3OutputStoreTest, ForcedPathStyleOnAws) {
  fake_s3::FakeS3::Options aws_like;
  aws_like.clock = &clock_;
  aws_like.virtual_host_domain = "s3.us-east-1.amazonaws.com";
  auto fake = fake_s3::FakeS3::Start(aws_like);
  ASSERT_TRUE(fake.ok()) << fake.status();
  (*fake)->AddKey(kKeyId, kSecret);
  (*fake)->PutObject("flyte-data", "k", "x");
  LoopbackTransport loopback(transport_.get(), (*fake)->port());
  S3StoreOptions options = Options();
  options.endpoint = absl::StrCat("http://s3.us-east-1.amazonaws.com:", (*fake)->port());
  options.addressing = S3Addressing::kPathStyle;
  ASSERT_TRUE(Store(options, Credentials(), &loopback)->Read("s3://flyte-data/k", Deadline()).ok());
  EXPECT_FALSE((*fake)->Requests().at(0).virtual_hosted);
}

TEST_F(S3OutputStoreTest, SessionTokenIsSentAndSigned) {
  fake_->AddKey("ASIATEMPORARY", "temporary-secret", "the-session-token", clock_.Now() + absl::Hours(1));
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  auto store = Store(Options(), AwsCredentials{"ASIATEMPORARY", Secret("temporary-secret"),
                                               Secret("the-session-token"), clock_.Now() + absl::Hours(1)});
  auto read = store->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  const fake_s3::RecordedRequest request = fake_->Requests().at(0);
  EXPECT_EQ(request.headers.at("x-amz-security-token"), "the-session-token");
  EXPECT_THAT(request.headers.at("authorization"), HasSubstr("x-amz-security-token"));
}

TEST_F(S3OutputStoreTest, ExpiredTokenFetchesFreshCredentialsOnce) {
  fake_->AddKey("ASIAOLD", "old-secret", "old-token", clock_.Now() - absl::Seconds(1));
  fake_->AddKey("ASIANEW", "new-secret", "new-token", clock_.Now() + absl::Hours(1));
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  auto listed = std::make_unique<ListedCredentials>(std::vector<AwsCredentials>{
      {"ASIAOLD", Secret("old-secret"), Secret("old-token"), clock_.Now() + absl::Hours(1)},
      {"ASIANEW", Secret("new-secret"), Secret("new-token"), clock_.Now() + absl::Hours(1)}});
  ListedCredentials* credentials = listed.get();
  auto store = S3OutputStore::Create(Options(), std::move(listed), transport_.get(), &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto read = (*store)->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(credentials->invalidations, 1);
  EXPECT_EQ(fake_->RequestCount("s3"), 2);

  // Expired again after the refresh: Unauthenticated, and no loop.
  fake_->ClearRequests();
  auto stale =
      S3OutputStore::Create(Options(),
                            std::make_unique<ListedCredentials>(std::vector<AwsCredentials>{
                                {"ASIAOLD", Secret("old-secret"), Secret("old-token"), clock_.Now()},
                                {"ASIAOLD", Secret("old-secret"), Secret("old-token"), clock_.Now()}}),
                            transport_.get(), &clock_);
  ASSERT_TRUE(stale.ok());
  const absl::Status status = (*stale)->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("ExpiredToken"));
  EXPECT_EQ(fake_->RequestCount("s3"), 2);
}

TEST_F(S3OutputStoreTest, ObjectsOverTheLimitAreRefused) {
  fake_->PutObject("flyte-data", "big", std::string(100, 'x'));
  fake_->PutObject("flyte-data", "fits", std::string(16, 'y'));
  S3StoreOptions options = Options();
  options.max_object_bytes = 16;
  auto store = Store(options, Credentials());
  const absl::Status status = store->Read("s3://flyte-data/big", Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("s3://flyte-data/big"));
  EXPECT_EQ(fake_->Requests().at(0).headers.at("range"), "bytes=0-16");
  auto fits = store->Read("s3://flyte-data/fits", Deadline());
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(*fits, std::string(16, 'y'));
}

TEST_F(S3OutputStoreTest, BucketInAnotherRegionIsNamed) {
  fake_s3::FakeS3::Options elsewhere;
  elsewhere.clock = &clock_;
  elsewhere.region = "eu-west-1";
  auto fake = fake_s3::FakeS3::Start(elsewhere);
  ASSERT_TRUE(fake.ok()) << fake.status();
  S3StoreOptions options = Options();
  options.endpoint = (*fake)->endpoint();
  const absl::Status status = Store(options, Credentials())->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("is in region eu-west-1, not us-east-1"));
}

TEST_F(S3OutputStoreTest, OtherSchemesAreUnimplementedAndMalformedUrisInvalid) {
  auto store = Store();
  for (const std::string uri : {"gs://bucket/error.pb", "file:///tmp/error.pb", "/tmp/error.pb"}) {
    EXPECT_EQ(store->Read(uri, Deadline()).status().code(), absl::StatusCode::kUnimplemented) << uri;
  }
  for (const std::string uri : {"s3://bucket", "s3://bucket/", "s3:///key"}) {
    EXPECT_EQ(store->Read(uri, Deadline()).status().code(), absl::StatusCode::kInvalidArgument) << uri;
  }
  EXPECT_EQ(fake_->RequestCount("s3"), 0);
}

TEST_F(S3OutputStoreTest, APassedDeadlineSendsNothing) {
  const absl::Status status = Store()->Read(kObject, clock_.Now()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_EQ(fake_->RequestCount("s3"), 0);
}

// --- FromEnvironment

TEST_F(S3OutputStoreTest, FromEnvironmentWithStaticKeys) {
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");
  S3StoreOptions options;
  auto store = S3OutputStore::FromEnvironment(options,
                                              MapEnvironment({{"AWS_ACCESS_KEY_ID", kKeyId},
                                                              {"AWS_SECRET_ACCESS_KEY", kSecret},
                                                              {"AWS_ENDPOINT_URL", fake_->endpoint()}}),
                                              transport_.get(), &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->region(), "us-east-1");
  EXPECT_EQ((*store)->endpoint(), fake_->endpoint());
  auto read = (*store)->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "x");
}

TEST_F(S3OutputStoreTest, FromEnvironmentWithAWebIdentityExchangesOncePerCredentialLifetime) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/s3_output_store_test-XXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const std::string token_file = (dir / "token").string();
  std::ofstream(token_file) << "token-1";
  fake_->SetWebIdentityToken("token-1");
  fake_->PutObject("flyte-data", "metadata/propeller/x/n0/data/0/error.pb", "x");

  S3StoreOptions options;
  options.random = [] { return 0.5; };
  auto store = S3OutputStore::FromEnvironment(
      options,
      MapEnvironment({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                      {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/flyte-neptune-agent"},
                      {"AWS_REGION", "us-east-1"},
                      {"AWS_ENDPOINT_URL", fake_->endpoint()}}),
      transport_.get(), &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*store)->Read(kObject, Deadline()).ok());
  EXPECT_EQ(fake_->RequestCount("sts"), 1);
  EXPECT_EQ(fake_->RequestCount("s3"), 3);

  std::ofstream(token_file, std::ios::trunc) << "token-2";
  fake_->SetWebIdentityToken("token-2");
  clock_.Advance(absl::Hours(1));
  auto read = (*store)->Read(kObject, Deadline());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(fake_->RequestCount("sts"), 2);
  EXPECT_EQ(fake_->Requests().back().service, "s3");
  fs::remove_all(dir);
}

TEST_F(S3OutputStoreTest, FromEnvironmentWithoutCredentialsMakesAStoreThatSaysSo) {
  auto store =
      S3OutputStore::FromEnvironment(S3StoreOptions{}, MapEnvironment({}), transport_.get(), &clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  const absl::Status status = (*store)->Read(kObject, Deadline()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("AWS_ACCESS_KEY_ID"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("AWS_WEB_IDENTITY_TOKEN_FILE"));
}

TEST_F(S3OutputStoreTest, FromEnvironmentResolvesRegionAndEndpoints) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string region_option;
    std::string endpoint_option;
    std::string region;
    std::string endpoint;
  };
  const std::vector<Case> cases = {
      {{}, "", "", "us-east-1", "https://s3.us-east-1.amazonaws.com"},
      {{{"AWS_DEFAULT_REGION", "eu-west-1"}}, "", "", "eu-west-1", "https://s3.eu-west-1.amazonaws.com"},
      {{{"AWS_DEFAULT_REGION", "eu-west-1"}, {"AWS_REGION", "eu-central-1"}},
       "",
       "",
       "eu-central-1",
       "https://s3.eu-central-1.amazonaws.com"},
      {{{"AWS_REGION", "eu-central-1"}},
       "ap-south-1",
       "",
       "ap-south-1",
       "https://s3.ap-south-1.amazonaws.com"},
      {{{"AWS_REGION", "cn-north-1"}}, "", "", "cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"},
      {{{"AWS_ENDPOINT_URL", "http://minio:9000"}}, "", "", "us-east-1", "http://minio:9000"},
      {{{"AWS_ENDPOINT_URL", "http://minio:9000"}, {"AWS_ENDPOINT_URL_S3", "http://s3only:9000"}},
       "",
       "",
       "us-east-1",
       "http://s3only:9000"},
      {{{"AWS_ENDPOINT_URL_S3", "http://s3only:9000"}},
       "",
       "https://configured",
       "us-east-1",
       "https://configured"},
  };
  for (const Case& c : cases) {
    S3StoreOptions options;
    options.region = c.region_option;
    options.endpoint = c.endpoint_option;
    auto store = S3OutputStore::FromEnvironment(options, MapEnvironment(c.env), transport_.get(), &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->region(), c.region);
    EXPECT_EQ((*store)->endpoint(), c.endpoint);
  }
}

TEST_F(S3OutputStoreTest, FromEnvironmentRefusesBadSettings) {
  S3StoreOptions bad_endpoint;
  bad_endpoint.endpoint = "minio:9000";
  EXPECT_EQ(S3OutputStore::FromEnvironment(bad_endpoint, MapEnvironment({}), transport_.get(), &clock_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status half_keys =
      S3OutputStore::FromEnvironment(S3StoreOptions{}, MapEnvironment({{"AWS_SECRET_ACCESS_KEY", kSecret}}),
                                     transport_.get(), &clock_)
          .status();
  EXPECT_EQ(half_keys.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(half_keys.message()), Not(HasSubstr(kSecret)));
}

}  // namespace
}  // namespace fna::storage
