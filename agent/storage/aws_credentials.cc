#include "agent/storage/aws_credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace fna::storage {
namespace {

// STS answers a throttled caller or an unreachable identity provider with 400s worth retrying.
bool StsRetryable(const http::HttpResponse& response) {
  if (response.status >= 500) return true;
  const std::string code = ParseAwsError(response.body).code;
  return code == "IDPCommunicationError" || code == "Throttling";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the web identity token file ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  std::string token(absl::StripAsciiWhitespace(contents.str()));
  if (token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("the web identity token file ", path, " is empty"));
  }
  return token;
}

}  // namespace

EnvironmentGetter MapEnvironment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](absl::string_view name) -> std::optional<std::string> {
    const auto it = variables.find(std::string(name));
    if (it == variables.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<std::unique_ptr<WebIdentityCredentialsProvider>> WebIdentityCredentialsProvider::Create(
    WebIdentityOptions options, http::HttpTransport* transport, const Clock* clock) {
  if (options.token_file.empty() || options.role_arn.empty()) {
    return absl::InvalidArgumentError("web identity credentials need a token file and a role ARN");
  }
  if (auto endpoint = ParseServiceEndpoint(options.sts_endpoint, "the STS endpoint"); !endpoint.ok()) {
    return endpoint.status();
  }
  return std::unique_ptr<WebIdentityCredentialsProvider>(
      new WebIdentityCredentialsProvider(std::move(options), transport, clock));
}

WebIdentityCredentialsProvider::WebIdentityCredentialsProvider(WebIdentityOptions options,
                                                               http::HttpTransport* transport,
                                                               const Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      client_(transport, clock, options_.retry, options_.random) {}

absl::StatusOr<AwsCredentials> WebIdentityCredentialsProvider::Get(absl::Time deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  if (credentials_.has_value() && clock_->Now() < credentials_->expiration - options_.refresh_before_expiry) {
    return *credentials_;
  }
  absl::StatusOr<AwsCredentials> fresh = Exchange(deadline);
  if (fresh.ok()) {
    credentials_ = *fresh;
  } else if (credentials_.has_value() && clock_->Now() < credentials_->expiration) {
    return *credentials_;
  }
  return fresh;
}

void WebIdentityCredentialsProvider::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  credentials_.reset();
}

absl::StatusOr<AwsCredentials> WebIdentityCredentialsProvider::Exchange(absl::Time deadline) {
  absl::StatusOr<std::string> token_text = ReadTokenFile(options_.token_file);
  if (!token_text.ok()) return token_text.status();
  const Secret token(*std::move(token_text));
  ++exchanges_;
  const std::string what = absl::StrCat("STS AssumeRoleWithWebIdentity for role ", options_.role_arn);
  const auto build = [this, &token]() -> absl::StatusOr<http::HttpRequest> {
    http::HttpRequest request;
    request.method = "POST";
    request.url = absl::StrCat(absl::StripSuffix(options_.sts_endpoint, "/"), "/");
    request.content_type = "application/x-www-form-urlencoded; charset=utf-8";
    request.body =
        absl::StrCat("Action=AssumeRoleWithWebIdentity&RoleArn=", http::UrlEncode(options_.role_arn),
                     "&RoleSessionName=", http::UrlEncode(options_.session_name),
                     "&Version=2011-06-15&WebIdentityToken=", http::UrlEncode(token.Reveal()));
    return request;
  };
  absl::StatusOr<http::HttpResponse> response = client_.Send(what, deadline, build, StsRetryable);
  if (!response.ok()) return response.status();

  if (response->status != 200) {
    const std::string code = ParseAwsError(response->body).code;
    const std::string problem = absl::StrCat(what, " refused: ", DescribeResponse(*response));
    if (response->status == 403) return absl::PermissionDeniedError(problem);
    if (code == "InvalidIdentityToken" || code == "ExpiredTokenException" || code == "IDPRejectedClaim") {
      return absl::UnauthenticatedError(absl::StrCat(problem, " (check ", options_.token_file, ")"));
    }
    if (StsRetryable(*response)) return absl::UnavailableError(problem);
    return absl::FailedPreconditionError(problem);
  }
  AwsCredentials credentials;
  const std::optional<std::string> key_id = XmlElementText(response->body, "AccessKeyId");
  const std::optional<std::string> secret = XmlElementText(response->body, "SecretAccessKey");
  const std::optional<std::string> session_token = XmlElementText(response->body, "SessionToken");
  const std::optional<std::string> expiration = XmlElementText(response->body, "Expiration");
  std::string error;
  if (!key_id.has_value() || key_id->empty() || !secret.has_value() || secret->empty() ||
      !session_token.has_value() || session_token->empty() || !expiration.has_value() ||
      !absl::ParseTime(absl::RFC3339_full, *expiration, &credentials.expiration, &error)) {
    return absl::UnavailableError(absl::StrCat(what, ": STS's answer lacks complete credentials"));
  }
  credentials.access_key_id = *key_id;
  credentials.secret_access_key = Secret(*secret);
  credentials.session_token = Secret(*session_token);
  return credentials;
}

absl::StatusOr<std::unique_ptr<AwsCredentialsProvider>> CredentialsFromEnvironment(
    const EnvironmentGetter& env, WebIdentityOptions web_identity, http::HttpTransport* transport,
    const Clock* clock) {
  const std::optional<std::string> key_id = env("AWS_ACCESS_KEY_ID");
  const std::optional<std::string> secret = env("AWS_SECRET_ACCESS_KEY");
  if (key_id.has_value() != secret.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_id.has_value() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY", " is set without ",
                     key_id.has_value() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"));
  }
  if (key_id.has_value()) {
    AwsCredentials credentials;
    credentials.access_key_id = *key_id;
    credentials.secret_access_key = Secret(*secret);
    credentials.session_token = Secret(env("AWS_SESSION_TOKEN").value_or(""));
    return std::make_unique<StaticCredentialsProvider>(std::move(credentials));
  }
  const std::optional<std::string> token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const std::optional<std::string> role_arn = env("AWS_ROLE_ARN");
  if (token_file.has_value() != role_arn.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        token_file.has_value() ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN", " is set without ",
        token_file.has_value() ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE"));
  }
  if (!token_file.has_value()) return nullptr;
  web_identity.token_file = *token_file;
  web_identity.role_arn = *role_arn;
  if (std::optional<std::string> session = env("AWS_ROLE_SESSION_NAME"); session.has_value()) {
    web_identity.session_name = *session;
  }
  auto provider = WebIdentityCredentialsProvider::Create(std::move(web_identity), transport, clock);
  if (!provider.ok()) return provider.status();
  return std::unique_ptr<AwsCredentialsProvider>(*std::move(provider));
}

}  // namespace fna::storage
