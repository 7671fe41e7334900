#ifndef FNA_AGENT_STORAGE_S3_OUTPUT_STORE_H_
#define FNA_AGENT_STORAGE_S3_OUTPUT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/http/http_transport.h"
#include "agent/storage/aws_credentials.h"
#include "agent/storage/aws_http_client.h"
#include "agent/storage/output_store.h"

namespace fna::storage {

enum class S3Addressing {
  // Virtual-hosted ("https://<bucket>.s3.<region>.amazonaws.com/<key>") on AWS's own endpoints for buckets
  // whose names are DNS labels (and have no dots under https, which the wildcard certificate would not
  // cover); path-style otherwise, and always on a custom endpoint (MinIO, Flyte's sandbox).
  kAuto,
  kPathStyle,      // "<endpoint>/<bucket>/<key>"
  kVirtualHosted,  // "<scheme>://<bucket>.<endpoint host>/<key>"
};

struct S3StoreOptions {
  // The region requests are signed for. FromEnvironment: "" means AWS_REGION, else AWS_DEFAULT_REGION, else
  // us-east-1. Create: "" means us-east-1.
  std::string region;
  // The S3 endpoint, "http(s)://host[:port]". FromEnvironment: "" means AWS_ENDPOINT_URL_S3, else
  // AWS_ENDPOINT_URL, else AWS's regional endpoint. Create: "" means AWS's regional endpoint,
  // https://s3.<region>.amazonaws.com (.amazonaws.com.cn for cn-* regions).
  std::string endpoint;
  S3Addressing addressing = S3Addressing::kAuto;
  // STS, for web-identity credentials (FromEnvironment only). "" means AWS_ENDPOINT_URL_STS, else
  // AWS_ENDPOINT_URL, else https://sts.<region>.amazonaws.com.
  std::string sts_endpoint;
  // Objects larger than this are refused (ResourceExhausted) and never downloaded whole: error.pb is small.
  int64_t max_object_bytes = 10 << 20;
  // For S3 and STS. Reads run within GetTask's budget (seconds), hence the short backoffs.
  RetryOptions retry{absl::Milliseconds(100), 2.0, absl::Seconds(5), 0.2, absl::Seconds(10)};
  std::function<double()> random;  // jitter samples of [0, 1); null: a pseudo-random generator
  std::string user_agent = "flyte-neptune-agent";
};

// Reads objects from S3-compatible stores (AWS S3, MinIO) under "s3://<bucket>/<key>" URIs, with SigV4-signed
// GETs.
//
// One GET per read, with "Range: bytes=0-<max_object_bytes>": 200/206 is the object (206's Content-Range
// gives its full size, so a larger object is refused after at most max_object_bytes + 1 bytes); 416 is an
// empty object (S3 and MinIO refuse any range of an empty object); 404 NoSuchKey is std::nullopt. A GET
// rather than HEAD-then-GET: the common answers cost one round trip either way, and only a GET's 404 has a
// body telling a missing object (NoSuchKey, the normal case) from a missing bucket or a wrong endpoint (a
// configuration error, which must not read as "no error.pb"). The payload hash signed and sent as
// X-Amz-Content-Sha256 is the empty body's: the requests have no body, so it costs nothing, and unlike
// UNSIGNED-PAYLOAD every SigV4 implementation accepts it.
//
// Errors, each naming s3://bucket/key, never a credential:
//   Unimplemented       a URI that is not s3:// (the caller records that it could not check)
//   InvalidArgument     an s3:// URI without a bucket or a key
//   FailedPrecondition  no credentials in the environment; the bucket is in another region (S3's
//                       x-amz-bucket-region); another 4xx
//   PermissionDenied    403, with S3's error code (AccessDenied, SignatureDoesNotMatch,
//   InvalidAccessKeyId...) NotFound            404 NoSuchBucket, or a 404 without NoSuchKey (not an S3
//   endpoint?) Unauthenticated     the session token expired, still after one refresh of the credentials
//   ResourceExhausted   an object larger than max_object_bytes
//   Unavailable / DeadlineExceeded   connection errors, 500/502/503/504 past the retries (capped exponential
//                       backoff with jitter, within the deadline)
//   and the credentials provider's errors (STS).
//
// Thread safety: Read is safe for concurrent use. `transport` and `clock` are not owned and must outlive the
// store; the credentials provider is owned.
class S3OutputStore final : public OutputStore {
 public:
  // Resolves the region and endpoints from `options`, then the environment (see S3StoreOptions), and the
  // credentials as CredentialsFromEnvironment does. InvalidArgument for a malformed endpoint or incomplete
  // credentials. Without any credentials the store is still made; its reads fail with FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<S3OutputStore>> FromEnvironment(S3StoreOptions options,
                                                                        const EnvironmentGetter& env,
                                                                        http::HttpTransport* transport,
                                                                        const Clock* clock);
  // `options` as given (sts_endpoint unused); `credentials` may be null. InvalidArgument for a malformed
  // endpoint.
  static absl::StatusOr<std::unique_ptr<S3OutputStore>> Create(
      S3StoreOptions options, std::unique_ptr<AwsCredentialsProvider> credentials,
      http::HttpTransport* transport, const Clock* clock);

  absl::StatusOr<std::optional<std::string>> Read(absl::string_view uri, absl::Time deadline) override;

  const std::string& region() const { return options_.region; }
  const std::string& endpoint() const { return options_.endpoint; }
  // Requests sent to S3 so far (STS exchanges not included).
  int64_t requests() const { return client_.requests(); }

 private:
  S3OutputStore(S3StoreOptions options, http::ParsedUrl endpoint,
                std::unique_ptr<AwsCredentialsProvider> credentials, http::HttpTransport* transport,
                const Clock* clock);

  const S3StoreOptions options_;
  const http::ParsedUrl endpoint_url_;
  const std::unique_ptr<AwsCredentialsProvider> credentials_;
  const Clock* const clock_;
  const AwsHttpClient client_;
};

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_S3_OUTPUT_STORE_H_
