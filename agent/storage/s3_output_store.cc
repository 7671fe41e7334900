#include "agent/storage/s3_output_store.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "agent/storage/sigv4.h"

namespace fna::storage {
namespace {

struct S3Object {
  std::string bucket;
  std::string key;
};

absl::StatusOr<S3Object> ParseS3Uri(absl::string_view uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::UnimplementedError(absl::StrCat("the S3 output store cannot read local paths: ", uri));
  }
  if (!absl::EqualsIgnoreCase(uri.substr(0, scheme_end), "s3")) {
    return absl::UnimplementedError(
        absl::StrCat("the S3 output store cannot read \"", uri.substr(0, scheme_end), "\" URIs: ", uri));
  }
  const absl::string_view rest = uri.substr(scheme_end + 3);
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the S3 URI ", uri, " names no bucket or no object key"));
  }
  return S3Object{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

std::string AwsDomain(absl::string_view region) {
  return absl::StartsWith(region, "cn-") ? "amazonaws.com.cn" : "amazonaws.com";
}

bool IsAwsHost(absl::string_view host) {
  const std::string lower = absl::AsciiStrToLower(host);
  return absl::EndsWith(lower, ".amazonaws.com") || absl::EndsWith(lower, ".amazonaws.com.cn");
}

// Whether `bucket` can be the first label of a host name (dots are more labels, which a wildcard TLS
// certificate does not cover).
bool DnsCompatible(absl::string_view bucket, bool allow_dots) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  if (!absl::ascii_isalnum(bucket.front()) || !absl::ascii_isalnum(bucket.back())) return false;
  for (const char c : bucket) {
    const bool ok = absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' || (allow_dots && c == '.');
    if (!ok) return false;
  }
  return !absl::StrContains(bucket, "..");
}

// "host" or "[v6]", with ":port" unless it is the scheme's default: the Host header and the URL's authority.
std::string Authority(const http::ParsedUrl& endpoint, absl::string_view host) {
  std::string authority = absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : std::string(host);
  const int default_port = endpoint.scheme == "https" ? 443 : 80;
  if (endpoint.port != default_port) absl::StrAppend(&authority, ":", endpoint.port);
  return authority;
}

bool S3Retryable(const http::HttpResponse& response) {
  return response.status == 500 || response.status == 502 || response.status == 503 || response.status == 504;
}

std::optional<std::string> EnvFirst(const EnvironmentGetter& env,
                                    std::initializer_list<absl::string_view> names) {
  for (const absl::string_view name : names) {
    if (std::optional<std::string> value = env(name); value.has_value()) return value;
  }
  return std::nullopt;
}

// What an answer to the ranged GET of `name` (in `bucket`) means: see S3OutputStore.
absl::StatusOr<std::optional<std::string>> Interpret(const std::string& name, absl::string_view bucket,
                                                     const S3StoreOptions& options,
                                                     http::HttpResponse response) {
  const AwsError error = ParseAwsError(response.body);
  const int64_t limit = options.max_object_bytes;
  switch (response.status) {
    case 200:
    case 206: {
      // A 206's Content-Range, "bytes 0-<last>/<size>", gives the object's full size; a 200 (the Range
      // ignored) is the whole object.
      int64_t size = static_cast<int64_t>(response.body.size());
      if (response.status == 206) {
        const std::string* range = response.FindHeader("Content-Range");
        const size_t slash = range == nullptr ? std::string::npos : range->rfind('/');
        if (slash == std::string::npos || !absl::SimpleAtoi(range->substr(slash + 1), &size)) size = -1;
      }
      if (size > limit || static_cast<int64_t>(response.body.size()) > limit) {
        return absl::ResourceExhaustedError(absl::StrCat(
            name, " is larger than ", limit, " bytes, the most the agent reads of an output file"));
      }
      if (size != static_cast<int64_t>(response.body.size())) {
        return absl::UnavailableError(absl::StrCat("GET ", name, ": incomplete answer (",
                                                   response.body.size(),
                                                   " bytes, and no usable Content-Range)"));
      }
      return std::optional<std::string>(std::move(response.body));
    }
    case 416:  // any range of an empty object
      return std::optional<std::string>(std::string());
    case 404:
      if (error.code == "NoSuchKey") return std::optional<std::string>();
      if (error.code == "NoSuchBucket") {
        return absl::NotFoundError(absl::StrCat("cannot read ", name, ": the bucket ", bucket,
                                                " does not exist at ", options.endpoint,
                                                " (404 NoSuchBucket)"));
      }
      return absl::NotFoundError(absl::StrCat("cannot read ", name, ": ", options.endpoint, " answered ",
                                              DescribeResponse(response),
                                              ", not NoSuchKey: is it an S3 endpoint?"));
    default:
      break;
  }
  // A bucket in another region: a 301 or 400 with x-amz-bucket-region, or <Region> in the error body.
  const std::string* region_header = response.FindHeader("x-amz-bucket-region");
  const std::string region =
      region_header != nullptr ? *region_header : XmlElementText(response.body, "Region").value_or("");
  if (!region.empty() && region != options.region) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", name, ": the bucket ", bucket,
                                                      " is in region ", region, ", not ", options.region,
                                                      " (set the S3 region)"));
  }
  const std::string problem = absl::StrCat("S3 refused GET ", name, ": ", DescribeResponse(response));
  if (error.code == "ExpiredToken") {
    return absl::UnauthenticatedError(absl::StrCat(problem, " (also with freshly fetched credentials)"));
  }
  if (response.status == 403) return absl::PermissionDeniedError(problem);
  if (response.status >= 500) return absl::UnavailableError(problem);
  return absl::FailedPreconditionError(problem);
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3OutputStore>> S3OutputStore::FromEnvironment(S3StoreOptions options,
                                                                              const EnvironmentGetter& env,
                                                                              http::HttpTransport* transport,
                                                                              const Clock* clock) {
  if (options.region.empty()) {
    options.region = EnvFirst(env, {"AWS_REGION", "AWS_DEFAULT_REGION"}).value_or("us-east-1");
  }
  if (options.endpoint.empty()) {
    options.endpoint = EnvFirst(env, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}).value_or("");
  }
  WebIdentityOptions web_identity;
  web_identity.sts_endpoint = options.sts_endpoint;
  if (web_identity.sts_endpoint.empty()) {
    web_identity.sts_endpoint =
        EnvFirst(env, {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"})
            .value_or(absl::StrCat("https://sts.", options.region, ".", AwsDomain(options.region)));
  }
  web_identity.retry = options.retry;
  web_identity.random = options.random;
  auto credentials = CredentialsFromEnvironment(env, std::move(web_identity), transport, clock);
  if (!credentials.ok()) return credentials.status();
  return Create(std::move(options), *std::move(credentials), transport, clock);
}

absl::StatusOr<std::unique_ptr<S3OutputStore>> S3OutputStore::Create(
    S3StoreOptions options, std::unique_ptr<AwsCredentialsProvider> credentials,
    http::HttpTransport* transport, const Clock* clock) {
  if (options.region.empty()) options.region = "us-east-1";
  if (options.endpoint.empty()) {
    options.endpoint = absl::StrCat("https://s3.", options.region, ".", AwsDomain(options.region));
  }
  FNA_ASSIGN_OR_RETURN(http::ParsedUrl endpoint, ParseServiceEndpoint(options.endpoint, "the S3 endpoint"));
  if (options.max_object_bytes < 0) {
    return absl::InvalidArgumentError("the S3 output store's object size limit is negative");
  }
  return std::unique_ptr<S3OutputStore>(
      new S3OutputStore(std::move(options), std::move(endpoint), std::move(credentials), transport, clock));
}

S3OutputStore::S3OutputStore(S3StoreOptions options, http::ParsedUrl endpoint,
                             std::unique_ptr<AwsCredentialsProvider> credentials,
                             http::HttpTransport* transport, const Clock* clock)
    : options_(std::move(options)),
      endpoint_url_(std::move(endpoint)),
      credentials_(std::move(credentials)),
      clock_(clock),
      client_(transport, clock, options_.retry, options_.random) {}

absl::StatusOr<std::optional<std::string>> S3OutputStore::Read(absl::string_view uri, absl::Time deadline) {
  FNA_ASSIGN_OR_RETURN(const S3Object object, ParseS3Uri(uri));
  const std::string name = absl::StrCat("s3://", object.bucket, "/", object.key);
  if (credentials_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", name,
                                                      ": no AWS credentials in the agent's environment (set "
                                                      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                                                      "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)"));
  }
  bool virtual_hosted = false;
  switch (options_.addressing) {
    case S3Addressing::kAuto:
      virtual_hosted = IsAwsHost(endpoint_url_.host) &&
                       DnsCompatible(object.bucket, /*allow_dots=*/endpoint_url_.scheme == "http");
      break;
    case S3Addressing::kPathStyle:
      break;
    case S3Addressing::kVirtualHosted:
      if (!DnsCompatible(object.bucket, /*allow_dots=*/true)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot read ", name, ": the bucket name cannot be a host name; use path-style addressing"));
      }
      virtual_hosted = true;
      break;
  }
  const std::string host =
      Authority(endpoint_url_,
                virtual_hosted ? absl::StrCat(object.bucket, ".", endpoint_url_.host) : endpoint_url_.host);
  const std::string path =
      virtual_hosted ? absl::StrCat("/", object.key) : absl::StrCat("/", object.bucket, "/", object.key);

  for (bool refreshed = false;; refreshed = true) {
    absl::StatusOr<AwsCredentials> credentials = credentials_->Get(deadline);
    if (!credentials.ok()) {
      return absl::Status(credentials.status().code(),
                          absl::StrCat("cannot read ", name, ": ", credentials.status().message()));
    }
    const auto build = [&]() -> absl::StatusOr<http::HttpRequest> {
      SigV4Request unsigned_request;
      unsigned_request.method = "GET";
      unsigned_request.path = path;
      unsigned_request.headers = {{"Host", host},
                                  {"Range", absl::StrCat("bytes=0-", options_.max_object_bytes)},
                                  {"X-Amz-Content-Sha256", kEmptyPayloadSha256}};
      FNA_ASSIGN_OR_RETURN(SignedRequest signed_request,
                           SignV4(unsigned_request, *credentials, {options_.region, "s3"}, clock_->Now()));
      http::HttpRequest request;
      request.method = "GET";
      request.url = absl::StrCat(endpoint_url_.scheme, "://", host, signed_request.target);
      request.headers = std::move(signed_request.headers);
      if (!options_.user_agent.empty()) request.headers.push_back({"User-Agent", options_.user_agent});
      return request;
    };
    FNA_ASSIGN_OR_RETURN(http::HttpResponse response,
                         client_.Send(absl::StrCat("GET ", name), deadline, build, S3Retryable));
    if (!refreshed && ParseAwsError(response.body).code == "ExpiredToken") {
      credentials_->Invalidate();
      continue;
    }
    return Interpret(name, object.bucket, options_, std::move(response));
  }
}

}  // namespace fna::storage
