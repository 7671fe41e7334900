#ifndef FNA_AGENT_NEPTUNE_API_TOKEN_H_
#define FNA_AGENT_NEPTUNE_API_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/secret.h"

namespace fna::neptune {

// A Neptune API token, decoded (neptune-protocol.md §3.2). The token is the standard base64 of a JSON object
// {"api_address": ..., "api_url": ..., "api_key": ...}; the whole (trimmed) base64 string is what goes into
// the X-Neptune-Api-Token header, api_key is never sent on its own. A value type; thread-compatible.
struct ApiToken {
  Secret token;             // the whole token, trimmed: the X-Neptune-Api-Token header value
  std::string api_address;  // required
  std::string api_url;      // optional; "" when absent
  Secret api_key;           // registered with the redactor, never used on its own

  // Where the client starts (GET clients/config): api_url if set, else api_address; "https://" is put in
  // front of a URL without a scheme and trailing '/' are removed.
  std::string BootstrapUrl() const;
};

// Decodes `token` (surrounding whitespace ignored). Errors are InvalidArgument and say what is wrong (not
// base64, not a JSON object, no api_address) without quoting any part of the token.
absl::StatusOr<ApiToken> DecodeApiToken(const Secret& token);

// `url` with "https://" in front when it has no "scheme://", and without trailing '/'.
std::string NormalizeBaseUrl(absl::string_view url);

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_API_TOKEN_H_
