#include "agent/neptune/jwt.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {

absl::StatusOr<JwtClaims> DecodeJwtClaims(absl::string_view jwt) {
  const std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError("the access token Neptune returned is not a JWT (not 3 parts)");
  }
  std::string payload;
  if (!absl::WebSafeBase64Unescape(parts[1], &payload)) {
    return absl::InvalidArgumentError(
        "the access token Neptune returned is not a JWT (payload not base64url)");
  }
  const nlohmann::json claims = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (claims.is_discarded() || !claims.is_object()) {
    return absl::InvalidArgumentError("the access token Neptune returned is not a JWT (payload not JSON)");
  }
  JwtClaims result;
  if (auto exp = claims.find("exp"); exp != claims.end() && exp->is_number()) {
    const double seconds = exp->get<double>();
    if (std::isfinite(seconds)) {
      // Beyond ±3e4 years is as good as never; clamping keeps the conversion defined.
      result.expires = absl::FromUnixSeconds(static_cast<int64_t>(std::clamp(seconds, -1e12, 1e12)));
    }
  }
  if (auto azp = claims.find("azp"); azp != claims.end() && azp->is_string()) {
    result.authorized_party = azp->get<std::string>();
  }
  if (auto iss = claims.find("iss"); iss != claims.end() && iss->is_string()) {
    result.issuer = iss->get<std::string>();
  }
  return result;
}

}  // namespace fna::neptune
