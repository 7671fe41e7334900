#ifndef FNA_TESTS_FAKE_S3_FAKE_S3_H_
#define FNA_TESTS_FAKE_S3_FAKE_S3_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"

// A fake S3 endpoint, with STS's AssumeRoleWithWebIdentity, for tests of the agent's S3 output store: an
// httplib server on 127.0.0.1 (port chosen by the system).
//
// S3 (GET and HEAD of objects). Every request is authenticated as S3 does it, by code written apart from the
// agent's signer: the Authorization header's structure, its credential scope (date, region, "s3"), the
// X-Amz-Date skew (15 minutes by default, on the fake's clock), X-Amz-Content-Sha256 (present, and the empty
// body's hash or UNSIGNED-PAYLOAD), every x-amz-* header signed, the key, its session token, and finally the
// signature, recomputed from the raw request line and headers with the secret the fake holds. Answers, with
// S3's status codes, headers (x-amz-request-id, x-amz-id-2) and XML error bodies (none for HEAD):
//   200 / 206 + Content-Range    the object (one "bytes=a-b" range honoured); 416 InvalidRange for a range on
//   an
//                                empty object or past its end
//   404 NoSuchKey, NoSuchBucket
//   403 AccessDenied (no Authorization, unsigned x-amz-* headers), InvalidAccessKeyId, SignatureDoesNotMatch
//       (with StringToSign and CanonicalRequest, as S3 sends them), RequestTimeTooSkewed
//   400 AuthorizationHeaderMalformed (also for a wrong region, naming the right one), InvalidRequest (no
//       X-Amz-Content-Sha256), XAmzContentSHA256Mismatch, InvalidToken, ExpiredToken (S3 answers an expired
//       session token with 400, not 403)
//   501 NotImplemented for listings (no key)
// Addressing: a Host of "<bucket>.<virtual_host_domain>[:port]" is virtual-hosted, any other Host path-style
// ("/<bucket>/<key>").
//
// STS (POST with a form body): Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn&RoleSessionName&
// WebIdentityToken, unsigned. The role must be Options::role_arn and the token the one SetWebIdentityToken
// set last; the answer issues fresh temporary credentials (valid Options::sts_credentials_lifetime on the
// fake's clock) that the S3 side then accepts. Errors in STS's ErrorResponse XML: 400 InvalidIdentityToken,
// ValidationError, InvalidAction; 403 AccessDenied.
//
// Faults (S3 and STS alike, in order): the next N requests answer 500 InternalError or 503 SlowDown, or have
// their connection closed without an answer. Every request is recorded.
//
// Thread-safety: every public method is thread-safe; the server runs on its own threads. The clock is not
// owned and must outlive the fake.
namespace fna::fake_s3 {

struct RecordedRequest {
  std::string service;  // "s3" or "sts"
  std::string method;
  std::string host;    // the Host header
  std::string target;  // the raw request target
  std::string bucket;  // S3: as addressed
  std::string key;
  bool virtual_hosted = false;
  std::map<std::string, std::string> headers;  // lower-cased names, as received
  std::map<std::string, std::string> form;     // STS: the decoded form fields
  int status = 0;                              // 0: the connection was dropped
  std::string error_code;                      // the S3 or STS error code answered, "" on success
};

class FakeS3 {
 public:
  struct Options {
    std::string region = "us-east-1";
    std::string virtual_host_domain = "s3.fake.test";
    const Clock* clock = nullptr;  // nullptr: the real clock
    absl::Duration max_skew = absl::Minutes(15);
    std::string role_arn = "arn:aws:iam::123456789012:role/flyte-neptune-agent";
    absl::Duration sts_credentials_lifetime = absl::Hours(1);
  };

  // Binds 127.0.0.1:0 and serves; the port accepts connections when this returns.
  static absl::StatusOr<std::unique_ptr<FakeS3>> Start(Options options);
  // Stops serving and closes every connection.
  ~FakeS3();
  FakeS3(const FakeS3&) = delete;
  FakeS3& operator=(const FakeS3&) = delete;

  int port() const;
  std::string endpoint() const;  // "http://127.0.0.1:<port>"

  // Keys: an access key id, its secret, and for temporary credentials the session token and expiry.
  void AddKey(const std::string& access_key_id, const std::string& secret,
              const std::string& session_token = "", absl::Time expiration = absl::InfiniteFuture());
  void AddBucket(const std::string& bucket);
  void PutObject(const std::string& bucket, const std::string& key,
                 const std::string& bytes);  // adds the bucket
  // The only web-identity token STS accepts from now on.
  void SetWebIdentityToken(const std::string& token);

  // The next `count` requests answer `status` (500 InternalError or 503 SlowDown), or are dropped.
  void FailNext(int count, int status);
  void DropNext(int count);

  std::vector<RecordedRequest> Requests() const;
  int RequestCount(absl::string_view service) const;
  void ClearRequests();

  class Impl;

 private:
  explicit FakeS3(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fna::fake_s3

#endif  // FNA_TESTS_FAKE_S3_FAKE_S3_H_
