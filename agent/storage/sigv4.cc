#include "agent/storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace fna::storage {
namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

// The canonical form of a header value: trimmed, runs of spaces and tabs collapsed into one space.
std::string CanonicalValue(absl::string_view value) {
  std::string out;
  bool in_space = false;
  for (const char c : absl::StripAsciiWhitespace(value)) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

bool HasLineBreak(absl::string_view text) { return text.find_first_of("\r\n") != absl::string_view::npos; }

}  // namespace

absl::StatusOr<SignedRequest> SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                                     const SigV4Scope& scope, absl::Time now) {
  if (request.method.empty()) return absl::InvalidArgumentError("SigV4: no method");
  if (!absl::StartsWith(request.path, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("SigV4: the path is not absolute: ", request.path));
  }
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return absl::InvalidArgumentError("SigV4: the credentials lack an access key id or a secret key");
  }
  if (scope.region.empty() || scope.service.empty()) {
    return absl::InvalidArgumentError("SigV4: the scope lacks a region or a service");
  }

  const std::string amz_date = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  const std::string date = amz_date.substr(0, 8);
  std::vector<http::HttpHeader> headers = request.headers;
  headers.push_back({"X-Amz-Date", amz_date});
  if (!credentials.session_token.empty()) {
    headers.push_back({"X-Amz-Security-Token", credentials.session_token.Reveal()});
  }

  // Lower-cased names in order; the values of a repeated name in the order given.
  std::map<std::string, std::vector<std::string>> canonical_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    const http::HttpHeader& header = headers[i];
    const std::string name = absl::AsciiStrToLower(header.name);
    const bool signers_own =
        i < request.headers.size() &&
        (name == "x-amz-date" || name == "x-amz-security-token" || name == "authorization");
    if (signers_own)
      return absl::InvalidArgumentError(absl::StrCat("SigV4: ", header.name, " is set by the signer"));
    if (name.empty() || HasLineBreak(header.name) || HasLineBreak(header.value)) {
      return absl::InvalidArgumentError(absl::StrCat("SigV4: malformed header \"", header.name, "\""));
    }
    canonical_headers[name].push_back(CanonicalValue(header.value));
  }
  if (canonical_headers.count("host") == 0) return absl::InvalidArgumentError("SigV4: no Host header");

  std::vector<std::string> segments = absl::StrSplit(request.path, '/');
  for (std::string& segment : segments) segment = http::UrlEncode(segment);
  const std::string canonical_uri = absl::StrJoin(segments, "/");

  std::vector<std::pair<std::string, std::string>> query;
  query.reserve(request.query.size());
  for (const auto& [name, value] : request.query)
    query.emplace_back(http::UrlEncode(name), http::UrlEncode(value));
  std::sort(query.begin(), query.end());
  const std::string canonical_query = absl::StrJoin(query, "&", absl::PairFormatter("="));

  std::string header_block;
  std::vector<absl::string_view> names;
  for (const auto& [name, values] : canonical_headers) {
    absl::StrAppend(&header_block, name, ":", absl::StrJoin(values, ","), "\n");
    names.push_back(name);
  }
  const std::string signed_headers = absl::StrJoin(names, ";");

  SignedRequest signed_request;
  signed_request.canonical_request =
      absl::StrCat(request.method, "\n", canonical_uri, "\n", canonical_query, "\n", header_block, "\n",
                   signed_headers, "\n", request.payload_hash);
  const std::string credential_scope =
      absl::StrCat(date, "/", scope.region, "/", scope.service, "/aws4_request");
  signed_request.string_to_sign = absl::StrCat(kAlgorithm, "\n", amz_date, "\n", credential_scope, "\n",
                                               Sha256Hex(signed_request.canonical_request));
  std::string key = HmacSha256(absl::StrCat("AWS4", credentials.secret_access_key.Reveal()), date);
  key = HmacSha256(key, scope.region);
  key = HmacSha256(key, scope.service);
  key = HmacSha256(key, "aws4_request");
  signed_request.signature = absl::BytesToHexString(HmacSha256(key, signed_request.string_to_sign));

  signed_request.target =
      canonical_query.empty() ? canonical_uri : absl::StrCat(canonical_uri, "?", canonical_query);
  signed_request.headers = std::move(headers);
  signed_request.headers.push_back(
      {"Authorization",
       absl::StrCat(kAlgorithm, " Credential=", credentials.access_key_id, "/", credential_scope,
                    ", SignedHeaders=", signed_headers, ", Signature=", signed_request.signature)});
  return signed_request;
}

}  // namespace fna::storage
