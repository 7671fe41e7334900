#ifndef FNA_AGENT_STORAGE_SIGV4_H_
#define FNA_AGENT_STORAGE_SIGV4_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"

// AWS Signature Version 4 (header-based), as S3 checks it. Pure functions (no I/O; time is an argument), safe
// to call from any thread.
namespace fna::storage {

// The hex SHA-256 of an empty body: the payload hash of a bodiless GET or HEAD.
inline constexpr char kEmptyPayloadSha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Credentials to sign with. The secret key and the session token are Secrets: they never print.
struct AwsCredentials {
  std::string access_key_id;
  Secret secret_access_key;
  Secret session_token;                            // empty for long-term keys
  absl::Time expiration = absl::InfiniteFuture();  // temporary credentials stop working then
};

struct SigV4Scope {
  std::string region;   // "us-east-1"
  std::string service;  // "s3"
};

struct SigV4Request {
  std::string method;  // "GET"
  // The absolute path, not encoded: "/bucket/dir/a b.txt". It is encoded once, segment by segment ('/'
  // stays), for the wire and for the canonical request alike, and never normalized: S3's rule (other services
  // encode twice and normalize; this signer does not).
  std::string path = "/";
  // Query parameters, not encoded, in any order; "?lifecycle" is {"lifecycle", ""}.
  std::vector<std::pair<std::string, std::string>> query;
  // The headers to sign, Host included. Names are case-insensitive; a name given several times is signed as
  // its values joined by ','. X-Amz-Date, X-Amz-Security-Token and Authorization are the signer's own.
  std::vector<http::HttpHeader> headers;
  // Hex SHA-256 of the body (kEmptyPayloadSha256 for none), or "UNSIGNED-PAYLOAD". For S3 the caller also
  // sends it as X-Amz-Content-Sha256 (and so signs it).
  std::string payload_hash = kEmptyPayloadSha256;
};

struct SignedRequest {
  // What follows the authority in the URL: the encoded path, then '?' and the canonical query if any.
  std::string target;
  // Every header to send: the request's, then X-Amz-Date, X-Amz-Security-Token (temporary credentials) and
  // Authorization.
  std::vector<http::HttpHeader> headers;
  // The intermediate values, for tests and for diagnosing a SignatureDoesNotMatch.
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // 64 lowercase hex digits
};

// Signs `request` for `scope` at `now`. InvalidArgument when the path is not absolute, there is no Host
// header, a header is one of the signer's own, or a credential part is missing.
absl::StatusOr<SignedRequest> SignV4(const SigV4Request& request, const AwsCredentials& credentials,
                                     const SigV4Scope& scope, absl::Time now);

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_SIGV4_H_
