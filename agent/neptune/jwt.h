#ifndef FNA_AGENT_NEPTUNE_JWT_H_
#define FNA_AGENT_NEPTUNE_JWT_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna::neptune {

// The claims of a Neptune access token the client needs (neptune-protocol.md §3.4).
struct JwtClaims {
  std::optional<absl::Time> expires;  // "exp"
  std::string authorized_party;       // "azp": the OAuth client id for the refresh
  std::string issuer;                 // "iss": the realm; refresh at {iss}/protocol/openid-connect/token
};

// Reads the claims of `jwt` ("header.payload.signature", base64url) WITHOUT verifying its signature: the
// token came from the server over the connection the client trusts, and only decides when to refresh.
// InvalidArgument (never quoting the token) when the payload is not base64url JSON; absent claims stay
// empty.
absl::StatusOr<JwtClaims> DecodeJwtClaims(absl::string_view jwt);

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_JWT_H_
