#include "agent/neptune/api_token.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "agent/common/secret.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::neptune {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b";

std::string Encode(const std::string& json) { return absl::Base64Escape(json); }

TEST(ApiTokenTest, DecodesAddressUrlAndKey) {
  const std::string token = Encode(
      R"({"api_address":"https://neptune.example.com","api_url":"https://api.neptune.example.com/","api_key":"b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b"})");
  absl::StatusOr<ApiToken> decoded = DecodeApiToken(Secret("  " + token + "\n"));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->api_address, "https://neptune.example.com");
  EXPECT_EQ(decoded->api_url, "https://api.neptune.example.com/");
  EXPECT_EQ(decoded->api_key.Reveal(), kKey);
  EXPECT_EQ(decoded->token.Reveal(), token);  // trimmed: the header value is the whole token
  EXPECT_EQ(decoded->BootstrapUrl(), "https://api.neptune.example.com");
}

TEST(ApiTokenTest, BootstrapsFromAddressWithoutUrlAndAddsScheme) {
  absl::StatusOr<ApiToken> decoded =
      DecodeApiToken(Secret(Encode(R"({"api_address":"neptune.example.com:8443/","api_key":"k"})")));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->api_url, "");
  EXPECT_EQ(decoded->BootstrapUrl(), "https://neptune.example.com:8443");
  absl::StatusOr<ApiToken> plain =
      DecodeApiToken(Secret(Encode(R"({"api_address":"http://127.0.0.1:8080","api_key":"k"})")));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->BootstrapUrl(), "http://127.0.0.1:8080");
}

void ExpectInvalidWithoutToken(const std::string& token, const std::string& why) {
  absl::StatusOr<ApiToken> decoded = DecodeApiToken(Secret(token));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr(why));
  if (token.size() >= 4) {
    EXPECT_THAT(std::string(decoded.status().message()), Not(HasSubstr(token)));
  }
  EXPECT_THAT(std::string(decoded.status().message()), Not(HasSubstr(kKey)));
}

TEST(ApiTokenTest, MissingApiAddressIsInvalid) {
  ExpectInvalidWithoutToken(
      Encode(R"({"api_url":"https://x","api_key":"b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b"})"),
      "no api_address");
  ExpectInvalidWithoutToken(Encode(R"({"api_address":7,"api_key":"b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b"})"),
                            "no api_address");
}

TEST(ApiTokenTest, NotBase64IsInvalid) {
  ExpectInvalidWithoutToken("this is not base64! b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b",
                            "not standard base64");
  ExpectInvalidWithoutToken("abc*def", "not standard base64");
  ExpectInvalidWithoutToken("", "empty");
  ExpectInvalidWithoutToken("   ", "empty");
}

TEST(ApiTokenTest, NotJsonIsInvalid) {
  ExpectInvalidWithoutToken(Encode("api_key=b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b"),
                            "not decode to a JSON object");
  ExpectInvalidWithoutToken(Encode(R"(["b3f1c2d4-5a6e-4f70-8a9b-0c1d2e3f4a5b"])"),
                            "not decode to a JSON object");
}

TEST(ApiTokenTest, NormalizeBaseUrl) {
  EXPECT_EQ(NormalizeBaseUrl("https://a.example/"), "https://a.example");
  EXPECT_EQ(NormalizeBaseUrl("a.example//"), "https://a.example");
  EXPECT_EQ(NormalizeBaseUrl("http://127.0.0.1:1/base"), "http://127.0.0.1:1/base");
  EXPECT_EQ(NormalizeBaseUrl(""), "");
}

}  // namespace
}  // namespace fna::neptune
