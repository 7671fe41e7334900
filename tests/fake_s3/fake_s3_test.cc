#include "tests/fake_s3/fake_s3.h"

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/storage/sigv4.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::fake_s3 {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kDocKeyId[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kDocSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
// The S3 documentation's GET Object example (sig-v4-header-based-auth), as published.
constexpr char kDocAuthorization[] =
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

const absl::Time kDocTime = absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());

class FakeS3Test : public ::testing::Test {
 protected:
  void StartFake(FakeS3::Options options = {}) {
    options.clock = &clock_;
    auto fake = FakeS3::Start(options);
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", fake_->port());
  }

  // Sends a request signed with the agent's signer (what is tested here is the fake's answers).
  httplib::Result Send(const std::string& method, const std::string& host, const std::string& path,
                       const storage::AwsCredentials& credentials, std::vector<http::HttpHeader> extra = {},
                       const std::string& region = "us-east-1",
                       std::vector<http::HttpHeader> after_signing = {}) {
    storage::SigV4Request request;
    request.method = method;
    request.path = path;
    request.headers = {{"Host", host}, {"x-amz-content-sha256", storage::kEmptyPayloadSha256}};
    request.headers.insert(request.headers.end(), extra.begin(), extra.end());
    auto signed_request = storage::SignV4(request, credentials, {region, "s3"}, clock_.Now());
    EXPECT_TRUE(signed_request.ok()) << signed_request.status();
    httplib::Headers headers;
    for (const http::HttpHeader& header : signed_request->headers) headers.emplace(header.name, header.value);
    for (const http::HttpHeader& header : after_signing) headers.emplace(header.name, header.value);
    if (method == "HEAD") return client_->Head(signed_request->target.c_str(), headers);
    return client_->Get(signed_request->target.c_str(), headers);
  }

  storage::AwsCredentials Credentials(const std::string& id = "AKIDFAKE",
                                      const std::string& secret = "fake-secret",
                                      const std::string& token = "") {
    return storage::AwsCredentials{id, Secret(secret), Secret(token), absl::InfiniteFuture()};
  }

  FakeClock clock_;
  std::unique_ptr<FakeS3> fake_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(FakeS3Test, AcceptsTheS3DocumentationsPublishedGetObjectRequest) {
  clock_.Set(kDocTime);
  FakeS3::Options options;
  options.virtual_host_domain = "s3.amazonaws.com";
  StartFake(options);
  fake_->AddKey(kDocKeyId, kDocSecret);
  fake_->PutObject("examplebucket", "test.txt", "Welcome to Amazon S3.");

  const httplib::Headers headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                                    {"Range", "bytes=0-9"},
                                    {"x-amz-content-sha256", storage::kEmptyPayloadSha256},
                                    {"x-amz-date", "20130524T000000Z"},
                                    {"Authorization", kDocAuthorization}};
  auto result = client_->Get("/test.txt", headers);
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 206) << result->body;
  EXPECT_EQ(result->body, "Welcome to");
  EXPECT_EQ(result->get_header_value("Content-Range"), "bytes 0-9/21");
  ASSERT_EQ(fake_->Requests().size(), 1u);
  EXPECT_TRUE(fake_->Requests()[0].virtual_hosted);
  EXPECT_EQ(fake_->Requests()[0].bucket, "examplebucket");

  // One digit of the signature changed.
  httplib::Headers tampered = headers;
  tampered.erase("Authorization");
  std::string authorization = kDocAuthorization;
  authorization.back() = '0';
  tampered.emplace("Authorization", authorization);
  result = client_->Get("/test.txt", tampered);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 403);
  EXPECT_THAT(result->body, HasSubstr("<Code>SignatureDoesNotMatch</Code>"));
  EXPECT_THAT(result->body,
              HasSubstr("<CanonicalRequest>GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"));

  // The same request 16 minutes later.
  clock_.Advance(absl::Minutes(16));
  result = client_->Get("/test.txt", headers);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 403);
  EXPECT_THAT(result->body, HasSubstr("<Code>RequestTimeTooSkewed</Code>"));
}

TEST_F(FakeS3Test, ServesObjectsPathStyleAndVirtualHosted) {
  StartFake();
  fake_->AddKey("AKIDFAKE", "fake-secret");
  fake_->PutObject("bucket", "out/a b/error.pb", "bytes");
  const std::string path_host = absl::StrCat("127.0.0.1:", fake_->port());
  auto result = Send("GET", path_host, "/bucket/out/a b/error.pb", Credentials());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(result->body, "bytes");
  EXPECT_EQ(result->get_header_value("Server"), "AmazonS3");
  EXPECT_FALSE(result->get_header_value("x-amz-request-id").empty());

  result =
      Send("GET", absl::StrCat("bucket.s3.fake.test:", fake_->port()), "/out/a b/error.pb", Credentials());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(result->body, "bytes");
  const std::vector<RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_FALSE(requests[0].virtual_hosted);
  EXPECT_TRUE(requests[1].virtual_hosted);
  EXPECT_EQ(requests[1].key, "out/a b/error.pb");
  EXPECT_EQ(requests[1].target, "/out/a%20b/error.pb");
}

TEST_F(FakeS3Test, HeadAnswersWithoutBodies) {
  StartFake();
  fake_->AddKey("AKIDFAKE", "fake-secret");
  fake_->PutObject("bucket", "key", "12345");
  const std::string host = absl::StrCat("127.0.0.1:", fake_->port());
  auto found = Send("HEAD", host, "/bucket/key", Credentials());
  ASSERT_TRUE(found);
  EXPECT_EQ(found->status, 200);
  EXPECT_EQ(found->get_header_value("Content-Length"), "5");
  EXPECT_THAT(found->body, IsEmpty());
  auto missing = Send("HEAD", host, "/bucket/other", Credentials());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, IsEmpty());
  EXPECT_EQ(fake_->Requests()[1].error_code, "NoSuchKey");
}

TEST_F(FakeS3Test, AnswersS3ErrorBodies) {
  StartFake();
  fake_->AddKey("AKIDFAKE", "fake-secret");
  fake_->AddKey("ASIATEMP", "temp-secret", "the-session-token", clock_.Now() + absl::Hours(1));
  fake_->PutObject("bucket", "empty", "");
  const std::string host = absl::StrCat("127.0.0.1:", fake_->port());

  struct Case {
    std::string name;
    httplib::Result result;
    int status;
    std::string code;
  };
  std::vector<Case> cases;
  cases.push_back({"no such key", Send("GET", host, "/bucket/missing", Credentials()), 404, "NoSuchKey"});
  cases.push_back({"no such bucket", Send("GET", host, "/nobucket/key", Credentials()), 404, "NoSuchBucket"});
  cases.push_back({"unknown key id", Send("GET", host, "/bucket/empty", Credentials("AKIDOTHER")), 403,
                   "InvalidAccessKeyId"});
  cases.push_back({"wrong secret", Send("GET", host, "/bucket/empty", Credentials("AKIDFAKE", "wrong")), 403,
                   "SignatureDoesNotMatch"});
  cases.push_back({"anonymous", client_->Get("/bucket/empty"), 403, "AccessDenied"});
  cases.push_back(
      {"unsigned x-amz header",
       Send("GET", host, "/bucket/empty", Credentials(), {}, "us-east-1", {{"x-amz-meta-note", "1"}}), 403,
       "AccessDenied"});
  cases.push_back({"wrong region", Send("GET", host, "/bucket/empty", Credentials(), {}, "eu-west-1"), 400,
                   "AuthorizationHeaderMalformed"});
  cases.push_back({"temporary key without its token",
                   Send("GET", host, "/bucket/empty", Credentials("ASIATEMP", "temp-secret")), 400,
                   "InvalidToken"});
  cases.push_back({"range on an empty object",
                   Send("GET", host, "/bucket/empty", Credentials(), {{"Range", "bytes=0-99"}}), 416,
                   "InvalidRange"});
  cases.push_back({"listing", Send("GET", host, "/bucket/", Credentials()), 501, "NotImplemented"});
  for (const Case& c : cases) {
    ASSERT_TRUE(c.result) << c.name;
    EXPECT_EQ(c.result->status, c.status) << c.name << ": " << c.result->body;
    EXPECT_THAT(c.result->body, HasSubstr(absl::StrCat("<Error><Code>", c.code, "</Code>"))) << c.name;
    EXPECT_EQ(c.result->get_header_value("Content-Type"), "application/xml") << c.name;
  }
  EXPECT_EQ(cases[8].result->get_header_value("Content-Range"), "bytes */0");
  EXPECT_THAT(cases[5].result->body, HasSubstr("<HeadersNotSigned>x-amz-meta-note</HeadersNotSigned>"));
  EXPECT_THAT(cases[6].result->body, HasSubstr("<Region>us-east-1</Region>"));

  auto with_token =
      Send("GET", host, "/bucket/empty", Credentials("ASIATEMP", "temp-secret", "the-session-token"));
  ASSERT_TRUE(with_token);
  EXPECT_EQ(with_token->status, 200) << with_token->body;
  clock_.Advance(absl::Hours(1));
  auto expired =
      Send("GET", host, "/bucket/empty", Credentials("ASIATEMP", "temp-secret", "the-session-token"));
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->status, 400);
  EXPECT_THAT(expired->body, HasSubstr("<Code>ExpiredToken</Code>"));
}

TEST_F(FakeS3Test, RangesAsS3AnswersThem) {
  StartFake();
  fake_->AddKey("AKIDFAKE", "fake-secret");
  fake_->PutObject("bucket", "key", "0123456789");
  const std::string host = absl::StrCat("127.0.0.1:", fake_->port());
  struct Case {
    std::string range;
    int status;
    std::string body;
    std::string content_range;
  };
  for (const Case& c : std::vector<Case>{{"bytes=0-99", 206, "0123456789", "bytes 0-9/10"},
                                         {"bytes=2-4", 206, "234", "bytes 2-4/10"},
                                         {"bytes=7-", 206, "789", "bytes 7-9/10"},
                                         {"bytes=-2", 206, "89", "bytes 8-9/10"},
                                         {"bytes=10-20", 416, "", "bytes */10"},
                                         {"bytes=0-1,4-5", 200, "0123456789", ""}}) {
    auto result = Send("GET", host, "/bucket/key", Credentials(), {{"Range", c.range}});
    ASSERT_TRUE(result) << c.range;
    EXPECT_EQ(result->status, c.status) << c.range;
    if (c.status != 416) {
      EXPECT_EQ(result->body, c.body) << c.range;
    }
    EXPECT_EQ(result->get_header_value("Content-Range"), c.content_range) << c.range;
  }
}

TEST_F(FakeS3Test, InjectedFaultsComeFirstAndInOrder) {
  StartFake();
  fake_->AddKey("AKIDFAKE", "fake-secret");
  fake_->PutObject("bucket", "key", "x");
  const std::string host = absl::StrCat("127.0.0.1:", fake_->port());
  fake_->FailNext(1, 503);
  fake_->FailNext(1, 500);
  fake_->DropNext(1);
  auto slow_down = Send("GET", host, "/bucket/key", Credentials("AKIDOTHER"));
  ASSERT_TRUE(slow_down);
  EXPECT_EQ(slow_down->status, 503);
  EXPECT_THAT(slow_down->body, HasSubstr("<Code>SlowDown</Code>"));
  auto internal = Send("GET", host, "/bucket/key", Credentials());
  ASSERT_TRUE(internal);
  EXPECT_EQ(internal->status, 500);
  EXPECT_THAT(internal->body, HasSubstr("<Code>InternalError</Code>"));
  EXPECT_FALSE(Send("GET", host, "/bucket/key", Credentials()));
  auto ok = Send("GET", host, "/bucket/key", Credentials());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  const std::vector<RecordedRequest> requests = fake_->Requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[2].status, 0);
  EXPECT_EQ(fake_->RequestCount("s3"), 4);
}

TEST_F(FakeS3Test, StsIssuesCredentialsForTheCurrentWebIdentityToken) {
  StartFake();
  fake_->SetWebIdentityToken("token-1");
  fake_->PutObject("bucket", "key", "x");
  const auto exchange = [this](const std::string& token, const std::string& role) {
    const std::string form =
        absl::StrCat("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=agent&RoleArn=",
                     http::UrlEncode(role), "&WebIdentityToken=", http::UrlEncode(token));
    return client_->Post("/", form, "application/x-www-form-urlencoded");
  };
  const std::string role = "arn:aws:iam::123456789012:role/flyte-neptune-agent";
  auto bad_token = exchange("token-0", role);
  ASSERT_TRUE(bad_token);
  EXPECT_EQ(bad_token->status, 400);
  EXPECT_THAT(bad_token->body, HasSubstr("<Code>InvalidIdentityToken</Code>"));
  auto bad_role = exchange("token-1", "arn:aws:iam::123456789012:role/other");
  ASSERT_TRUE(bad_role);
  EXPECT_EQ(bad_role->status, 403);
  EXPECT_THAT(bad_role->body, HasSubstr("<Code>AccessDenied</Code>"));

  auto issued = exchange("token-1", role);
  ASSERT_TRUE(issued);
  ASSERT_EQ(issued->status, 200) << issued->body;
  const auto element = [&issued](const std::string& tag) {
    const size_t open = issued->body.find("<" + tag + ">");
    const size_t close = issued->body.find("</" + tag + ">");
    const size_t start = open + tag.size() + 2;
    return issued->body.substr(start, close - start);
  };
  EXPECT_EQ(element("Expiration"), "2026-01-01T01:00:00Z");
  auto read = Send("GET", absl::StrCat("127.0.0.1:", fake_->port()), "/bucket/key",
                   Credentials(element("AccessKeyId"), element("SecretAccessKey"), element("SessionToken")));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 200) << read->body;
  EXPECT_EQ(fake_->RequestCount("sts"), 3);
  EXPECT_EQ(fake_->Requests()[2].form.at("WebIdentityToken"), "token-1");
}

}  // namespace
}  // namespace fna::fake_s3
