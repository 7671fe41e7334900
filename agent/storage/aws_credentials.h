#ifndef FNA_AGENT_STORAGE_AWS_CREDENTIALS_H_
#define FNA_AGENT_STORAGE_AWS_CREDENTIALS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/http/http_transport.h"
#include "agent/storage/aws_http_client.h"
#include "agent/storage/sigv4.h"

namespace fna::storage {

// Reads one environment variable: its value, or std::nullopt when it is unset or empty (as the AWS SDKs treat
// an empty variable). Injected so that tests never touch the process environment.
using EnvironmentGetter = std::function<std::optional<std::string>(absl::string_view name)>;

// A getter over a copy of `variables` (main.cc's snapshot of the environment, or a test's).
EnvironmentGetter MapEnvironment(std::map<std::string, std::string> variables);

// Where the credentials for signing come from. Thread-safe.
class AwsCredentialsProvider {
 public:
  virtual ~AwsCredentialsProvider() = default;

  // Credentials to sign with now, fetching them (within `deadline`) if need be. Errors name the source (a
  // file, a role), never a credential.
  virtual absl::StatusOr<AwsCredentials> Get(absl::Time deadline) = 0;

  // The service refused the credentials Get returned last as expired: the next Get fetches new ones.
  virtual void Invalidate() = 0;
};

// Fixed keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Invalidate does nothing: there
// is nothing else to fetch.
class StaticCredentialsProvider final : public AwsCredentialsProvider {
 public:
  explicit StaticCredentialsProvider(AwsCredentials credentials) : credentials_(std::move(credentials)) {}

  absl::StatusOr<AwsCredentials> Get(absl::Time /*deadline*/) override { return credentials_; }
  void Invalidate() override {}

 private:
  const AwsCredentials credentials_;
};

struct WebIdentityOptions {
  std::string token_file;                            // AWS_WEB_IDENTITY_TOKEN_FILE
  std::string role_arn;                              // AWS_ROLE_ARN
  std::string session_name = "flyte-neptune-agent";  // AWS_ROLE_SESSION_NAME
  // STS's base URL, e.g. "https://sts.us-east-1.amazonaws.com" (no path).
  std::string sts_endpoint;
  // Credentials are exchanged again this long before they expire.
  absl::Duration refresh_before_expiry = absl::Minutes(5);
  RetryOptions retry;
  std::function<double()> random;  // jitter samples of [0, 1); null: a pseudo-random generator
};

// Temporary credentials for a role, from a web-identity token file (EKS IRSA, or any OIDC token) exchanged
// with STS AssumeRoleWithWebIdentity: an unsigned POST of the token (in the body, never the URL) to the STS
// endpoint; STS's XML answer holds AccessKeyId, SecretAccessKey, SessionToken and Expiration.
//
// The credentials are kept until `refresh_before_expiry` before they expire, then exchanged again; the token
// file is read again at each exchange (the kubelet rotates it). When an exchange fails while the kept
// credentials are still valid, those are returned (STS briefly unreachable does not stop reads).
//
// Errors: FailedPrecondition when the token file cannot be read or is empty (naming the file);
// PermissionDenied when STS refuses the role (403 AccessDenied); Unauthenticated when it refuses the token
// (InvalidIdentityToken, ExpiredTokenException, IDPRejectedClaim); Unavailable when STS cannot be reached or
// answers 5xx/IDPCommunicationError/Throttling past the retries; FailedPrecondition for other refusals.
//
// Thread safety: thread-safe; one exchange at a time (concurrent callers wait for it). `transport` and
// `clock` are not owned and must outlive the provider.
class WebIdentityCredentialsProvider final : public AwsCredentialsProvider {
 public:
  // InvalidArgument for a missing token file or role, or an STS endpoint that is not an http(s) base URL.
  static absl::StatusOr<std::unique_ptr<WebIdentityCredentialsProvider>> Create(
      WebIdentityOptions options, http::HttpTransport* transport, const Clock* clock);

  absl::StatusOr<AwsCredentials> Get(absl::Time deadline) override;
  void Invalidate() override;

  // AssumeRoleWithWebIdentity calls made so far (retries within one call not counted).
  int64_t exchanges() const { return exchanges_.load(); }

 private:
  WebIdentityCredentialsProvider(WebIdentityOptions options, http::HttpTransport* transport,
                                 const Clock* clock);
  absl::StatusOr<AwsCredentials> Exchange(absl::Time deadline);

  const WebIdentityOptions options_;
  const Clock* const clock_;
  const AwsHttpClient client_;
  std::atomic<int64_t> exchanges_{0};

  std::mutex mu_;  // held during an exchange
  std::optional<AwsCredentials> credentials_ ABSL_GUARDED_BY(mu_);
};

// The credentials the environment configures, looked for as the AWS SDKs do (the first complete set wins):
//   1. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if set): static keys;
//   2. AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (and AWS_ROLE_SESSION_NAME if set): web identity, with
//      the rest of `web_identity` (STS endpoint, retries) as given;
//   3. none of these: nullptr (S3 reads then fail with FailedPrecondition).
// InvalidArgument when a set is incomplete (one key without the other, a token file without a role), naming
// the variables, never their values.
absl::StatusOr<std::unique_ptr<AwsCredentialsProvider>> CredentialsFromEnvironment(
    const EnvironmentGetter& env, WebIdentityOptions web_identity, http::HttpTransport* transport,
    const Clock* clock);

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_AWS_CREDENTIALS_H_
