#ifndef FNA_TESTS_NEPTUNE_EMULATOR_TOKENS_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_TOKENS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

// Token and identifier helpers of the Neptune emulator. Stateless free functions; thread-safe.
namespace fna::neptune_emulator {

// A Neptune API token: standard base64 (padded) of the compact JSON
// {"api_address": base_url, "api_url": base_url, "api_key": api_key}.
std::string EncodeApiToken(absl::string_view base_url, absl::string_view api_key);

struct DecodedApiToken {
  std::string api_address;
  std::string api_url;  // empty when absent
  std::string api_key;
};
// Decodes a token the way the server reads it: surrounding whitespace trimmed, standard base64, a JSON object
// with string `api_address` and `api_key` (`api_url` optional). InvalidArgument otherwise.
absl::StatusOr<DecodedApiToken> DecodeApiToken(absl::string_view token);

// A three-part JWT (base64url, no padding) with header {"alg":"HS256","typ":"JWT","kid":"fna-emulator"} and
// an HMAC-SHA256 signature under `secret`.
std::string MintJwt(const nlohmann::json& payload, absl::string_view secret);
// The payload of a JWT minted by MintJwt under `secret`; InvalidArgument when malformed or the signature does
// not match. Does not look at any claim (expiry is the caller's business).
absl::StatusOr<nlohmann::json> VerifyJwt(absl::string_view token, absl::string_view secret);

// A random (version 4) UUID in lower case.
std::string NewUuid();
// `n` random bytes, hex-encoded.
std::string RandomHex(size_t n);
// A short, non-reversible fingerprint of a secret for logs: "sha256:" + the first 12 hex digits.
std::string Fingerprint(absl::string_view secret);
// RFC 3339 UTC with milliseconds: "2026-01-01T00:00:00.000Z".
std::string FormatDateTime(absl::Time t);

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_TOKENS_H_
