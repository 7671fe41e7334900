#include "agent/neptune/api_token.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

// The string member `key` of `object`, or "" when it is absent, null or not a string.
std::string StringMember(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

std::string NormalizeBaseUrl(absl::string_view url) {
  url = absl::StripAsciiWhitespace(url);
  while (absl::ConsumeSuffix(&url, "/")) {
  }
  if (url.empty()) return "";
  if (!absl::StrContains(url, "://")) return absl::StrCat("https://", url);
  return std::string(url);
}

std::string ApiToken::BootstrapUrl() const {
  return NormalizeBaseUrl(api_url.empty() ? api_address : api_url);
}

absl::StatusOr<ApiToken> DecodeApiToken(const Secret& token) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(token.Reveal());
  if (trimmed.empty()) return absl::InvalidArgumentError("the Neptune API token is empty");
  for (const char c : trimmed) {
    const bool base64 =
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
    if (!base64) {
      return absl::InvalidArgumentError(
          "the Neptune API token is not valid: it is not standard base64 (copy it again from Neptune)");
    }
  }
  std::string decoded;
  if (!absl::Base64Unescape(trimmed, &decoded)) {
    return absl::InvalidArgumentError(
        "the Neptune API token is not valid: it is not standard base64 (copy it again from Neptune)");
  }
  nlohmann::json json = nlohmann::json::parse(decoded, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        "the Neptune API token is not valid: it does not decode to a JSON object (copy it again from "
        "Neptune)");
  }
  ApiToken result;
  result.api_address = StringMember(json, "api_address");
  result.api_url = StringMember(json, "api_url");
  if (result.api_address.empty()) {
    return absl::InvalidArgumentError(
        "the Neptune API token is not valid: it has no api_address (copy it again from Neptune)");
  }
  result.api_key = Secret(StringMember(json, "api_key"));
  result.token = Secret(std::string(trimmed));
  return result;
}

}  // namespace fna::neptune
