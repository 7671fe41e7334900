#include "agent/storage/sigv4.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::storage {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

std::string HeaderValue(const SignedRequest& signed_request, absl::string_view name) {
  for (const http::HttpHeader& header : signed_request.headers) {
    if (header.name == name) return header.value;
  }
  return "";
}

// --- The S3 documentation's examples ("Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk", sig-v4-header-based-auth): examplebucket, 2013-05-24T00:00:00Z. The expected
// canonical requests, string-to-sign hashes and signatures are the page's. The page writes the Authorization
// header without spaces after the commas; S3 accepts both forms, so the signature is what is compared.

AwsCredentials S3DocCredentials() {
  return AwsCredentials{"AKIAIOSFODNN7EXAMPLE", Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), Secret(),
                        absl::InfiniteFuture()};
}
const SigV4Scope kS3DocScope{"us-east-1", "s3"};
const absl::Time kS3DocTime = absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());

TEST(SigV4S3DocumentationTest, GetObjectWithRange) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"Range", "bytes=0-9"},
                     {"x-amz-content-sha256", kEmptyPayloadSha256}};
  auto signed_request = SignV4(request, S3DocCredentials(), kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(signed_request->canonical_request,
            "GET\n/test.txt\n\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(signed_request->signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(HeaderValue(*signed_request, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(HeaderValue(*signed_request, "X-Amz-Date"), "20130524T000000Z");
  EXPECT_EQ(signed_request->target, "/test.txt");
}

TEST(SigV4S3DocumentationTest, PutObjectWithADollarInTheKeyEncodesItOnce) {
  SigV4Request request;
  request.method = "PUT";
  request.path = "/test$file.text";
  const std::string payload_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                     {"x-amz-content-sha256", payload_hash}};
  request.payload_hash = payload_hash;
  auto signed_request = SignV4(request, S3DocCredentials(), kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(signed_request->canonical_request,
            "PUT\n/test%24file.text\n\n"
            "date:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\n"
            "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_THAT(signed_request->string_to_sign,
              HasSubstr("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"));
  EXPECT_EQ(signed_request->signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  EXPECT_EQ(signed_request->target, "/test%24file.text");
}

TEST(SigV4S3DocumentationTest, GetBucketLifecycleSignsANameOnlyQuery) {
  SigV4Request request;
  request.method = "GET";
  request.query = {{"lifecycle", ""}};
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"x-amz-content-sha256", kEmptyPayloadSha256}};
  auto signed_request = SignV4(request, S3DocCredentials(), kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(signed_request->canonical_request,
            "GET\n/\nlifecycle=\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_THAT(signed_request->string_to_sign,
              HasSubstr("\n9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"));
  EXPECT_EQ(signed_request->signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  EXPECT_EQ(signed_request->target, "/?lifecycle=");
}

TEST(SigV4S3DocumentationTest, ListObjectsSortsTheQuery) {
  SigV4Request request;
  request.method = "GET";
  request.query = {{"prefix", "J"}, {"max-keys", "2"}};
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"x-amz-content-sha256", kEmptyPayloadSha256}};
  auto signed_request = SignV4(request, S3DocCredentials(), kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_THAT(signed_request->canonical_request, HasSubstr("GET\n/\nmax-keys=2&prefix=J\nhost:"));
  EXPECT_THAT(signed_request->string_to_sign,
              HasSubstr("\ndf57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"));
  EXPECT_EQ(signed_request->signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  EXPECT_EQ(signed_request->target, "/?max-keys=2&prefix=J");
}

// --- The generic Signature Version 4 test suite (aws-sig-v4-test-suite, as shipped in the AWS SDKs'
// fixtures): service "service", us-east-1, 2015-08-30T12:36:00Z, AKIDEXAMPLE. The expected values are the
// suite's .authz files (and, for get-vanilla, its .creq and .sts). Paths here have nothing for the generic
// rules (double encoding, normalization) to change, so S3's rules sign them identically.

struct SuiteCase {
  std::string name;
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<http::HttpHeader> extra_headers;
  std::string payload_hash;
  std::string session_token;
  std::string authorization;
};

constexpr char kSuiteToken[] =
    "AQoDYXdzEPT//////////"
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8"
    "YUuwthAx7mSEI/qkPpKPi/"
    "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q"
    "6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
    "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJab"
    "IQwj2ICCR/oLxBA==";
constexpr char kUnreserved[] = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

std::string SuiteAuthorization(absl::string_view signed_headers, absl::string_view signature) {
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ",
                      "SignedHeaders=", signed_headers, ", Signature=", signature);
}

std::vector<SuiteCase> SuiteCases() {
  return {
      {"get-vanilla",
       "GET",
       "/",
       {},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/",
       {{"Param2", "value2"}, {"Param1", "value1"}},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")},
      {"get-vanilla-query-unreserved",
       "GET",
       "/",
       {{kUnreserved, kUnreserved}},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197")},
      {"get-vanilla-utf8-query",
       "GET",
       "/",
       {{"\xe1\x88\xb4", "bar"}},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04")},
      {"get-unreserved",
       "GET",
       absl::StrCat("/", kUnreserved),
       {},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f")},
      {"get-utf8",
       "GET",
       "/\xe1\x88\xb4",
       {},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")},
      {"get-header-key-duplicate",
       "GET",
       "/",
       {},
       {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;my-header1;x-amz-date",
                          "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea")},
      {"get-header-value-trim",
       "GET",
       "/",
       {},
       {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;my-header1;my-header2;x-amz-date",
                          "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736")},
      {"post-vanilla",
       "POST",
       "/",
       {},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")},
      {"post-header-value-case",
       "POST",
       "/",
       {},
       {{"My-Header1", "VALUE1"}},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;my-header1;x-amz-date",
                          "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d")},
      {"post-vanilla-query-nonunreserved",
       "POST",
       "/",
       {{"@#$%^", ""}, {"+", "/,?><`\";:\\|][{}"}},
       {},
       kEmptyPayloadSha256,
       "",
       SuiteAuthorization("host;x-amz-date",
                          "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e")},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {},
       {{"Content-Type", "application/x-www-form-urlencoded"}},
       "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
       "",
       SuiteAuthorization("content-type;host;x-amz-date",
                          "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")},
      {"post-sts-header-before",
       "POST",
       "/",
       {},
       {},
       kEmptyPayloadSha256,
       kSuiteToken,
       SuiteAuthorization("host;x-amz-date;x-amz-security-token",
                          "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")},
  };
}

class SigV4SuiteTest : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(SigV4SuiteTest, MatchesThePublishedAuthorization) {
  const SuiteCase& c = GetParam();
  SigV4Request request;
  request.method = c.method;
  request.path = c.path;
  request.query = c.query;
  request.headers = {{"Host", "example.amazonaws.com"}};
  request.headers.insert(request.headers.end(), c.extra_headers.begin(), c.extra_headers.end());
  request.payload_hash = c.payload_hash;
  const AwsCredentials credentials{"AKIDEXAMPLE", Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                   Secret(c.session_token), absl::InfiniteFuture()};
  const absl::Time at = absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
  auto signed_request = SignV4(request, credentials, SigV4Scope{"us-east-1", "service"}, at);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(HeaderValue(*signed_request, "Authorization"), c.authorization)
      << signed_request->canonical_request;
  if (!c.session_token.empty()) {
    EXPECT_EQ(HeaderValue(*signed_request, "X-Amz-Security-Token"), c.session_token);
  }
}

INSTANTIATE_TEST_SUITE_P(AwsSigV4TestSuite, SigV4SuiteTest, ::testing::ValuesIn(SuiteCases()),
                         [](const ::testing::TestParamInfo<SuiteCase>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(SigV4Test, GetVanillaIntermediateValues) {
  SigV4Request request;
  request.method = "GET";
  request.headers = {{"Host", "example.amazonaws.com"}};
  const AwsCredentials credentials{"AKIDEXAMPLE", Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                   Secret(), absl::InfiniteFuture()};
  const absl::Time at = absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
  auto signed_request = SignV4(request, credentials, SigV4Scope{"us-east-1", "service"}, at);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(signed_request->canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request->string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

// S3 keys are encoded once and never normalized: "a b/../c" stays three segments.
TEST(SigV4Test, S3PathsAreEncodedOnceAndNotNormalized) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/bucket/a b/../c+d%/\xc3\xa9//error.pb";
  request.headers = {{"Host", "s3.us-east-1.amazonaws.com"}};
  auto signed_request = SignV4(request, S3DocCredentials(), kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  EXPECT_EQ(signed_request->target, "/bucket/a%20b/../c%2Bd%25/%C3%A9//error.pb");
  EXPECT_THAT(signed_request->canonical_request, HasSubstr("\n/bucket/a%20b/../c%2Bd%25/%C3%A9//error.pb\n"));
}

TEST(SigV4Test, RefusesMalformedRequests) {
  SigV4Request request;
  request.method = "GET";
  request.headers = {{"Host", "h"}};
  const AwsCredentials credentials = S3DocCredentials();

  SigV4Request relative = request;
  relative.path = "key";
  SigV4Request no_host = request;
  no_host.headers.clear();
  SigV4Request own_header = request;
  own_header.headers.push_back({"x-amz-date", "20130524T000000Z"});
  SigV4Request injected = request;
  injected.headers.push_back({"X-Note", "a\r\nInjected: 1"});
  for (const SigV4Request& bad : {relative, no_host, own_header, injected}) {
    EXPECT_EQ(SignV4(bad, credentials, kS3DocScope, kS3DocTime).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  AwsCredentials no_secret = credentials;
  no_secret.secret_access_key = Secret();
  EXPECT_EQ(SignV4(request, no_secret, kS3DocScope, kS3DocTime).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SigV4Test, SecretsStayOutOfEverythingButTheTokenHeader) {
  SigV4Request request;
  request.method = "GET";
  request.headers = {{"Host", "h"}};
  AwsCredentials credentials = S3DocCredentials();
  credentials.session_token = Secret("session-token-value-123");
  auto signed_request = SignV4(request, credentials, kS3DocScope, kS3DocTime);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status();
  for (const http::HttpHeader& header : signed_request->headers) {
    EXPECT_THAT(header.value, ::testing::Not(HasSubstr("wJalrXUtnFEMI"))) << header.name;
  }
  EXPECT_THAT(signed_request->canonical_request, HasSubstr("x-amz-security-token:session-token-value-123\n"));
  EXPECT_THAT(signed_request->headers,
              Contains(::testing::Field(&http::HttpHeader::name, "X-Amz-Security-Token")));
}

}  // namespace
}  // namespace fna::storage
