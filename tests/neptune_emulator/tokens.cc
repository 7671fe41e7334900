#include "tests/neptune_emulator/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    // RAND_bytes fails only without an entropy source; never the case on Linux. Fall back to a fixed pattern
    // rather than leave the bytes undefined.
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  }
  return bytes;
}

}  // namespace

std::string EncodeApiToken(absl::string_view base_url, absl::string_view api_key) {
  json token = {{"api_address", std::string(base_url)},
                {"api_url", std::string(base_url)},
                {"api_key", std::string(api_key)}};
  return absl::Base64Escape(token.dump());
}

absl::StatusOr<DecodedApiToken> DecodeApiToken(absl::string_view token) {
  token = absl::StripAsciiWhitespace(token);
  std::string decoded;
  if (token.empty() || !absl::Base64Unescape(token, &decoded))
    return absl::InvalidArgumentError("API token is not base64");
  json parsed = json::parse(decoded, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return absl::InvalidArgumentError("API token is not a JSON object");
  DecodedApiToken out;
  auto address = parsed.find("api_address");
  if (address == parsed.end() || !address->is_string())
    return absl::InvalidArgumentError("API token has no api_address");
  out.api_address = address->get<std::string>();
  auto key = parsed.find("api_key");
  if (key == parsed.end() || !key->is_string()) return absl::InvalidArgumentError("API token has no api_key");
  out.api_key = key->get<std::string>();
  auto url = parsed.find("api_url");
  if (url != parsed.end() && url->is_string()) out.api_url = url->get<std::string>();
  return out;
}

std::string MintJwt(const nlohmann::json& payload, absl::string_view secret) {
  const json header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", "fna-emulator"}};
  const std::string signing_input =
      absl::StrCat(absl::WebSafeBase64Escape(header.dump()), ".", absl::WebSafeBase64Escape(payload.dump()));
  return absl::StrCat(signing_input, ".", absl::WebSafeBase64Escape(HmacSha256(secret, signing_input)));
}

absl::StatusOr<nlohmann::json> VerifyJwt(absl::string_view token, absl::string_view secret) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return absl::InvalidArgumentError("not a three-part JWT");
  std::string header, payload, signature;
  if (!absl::WebSafeBase64Unescape(parts[0], &header) || !absl::WebSafeBase64Unescape(parts[1], &payload) ||
      !absl::WebSafeBase64Unescape(parts[2], &signature))
    return absl::InvalidArgumentError("JWT part is not base64url");
  const std::string expected = HmacSha256(secret, absl::StrCat(parts[0], ".", parts[1]));
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
    return absl::InvalidArgumentError("JWT signature does not match");
  json parsed = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return absl::InvalidArgumentError("JWT payload is not a JSON object");
  return parsed;
}

std::string NewUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  const std::string hex = absl::BytesToHexString(b);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-", hex.substr(16, 4),
                      "-", hex.substr(20));
}

std::string RandomHex(size_t n) { return absl::BytesToHexString(RandomBytes(n)); }

std::string Fingerprint(absl::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), 6)));
}

std::string FormatDateTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace fna::neptune_emulator
