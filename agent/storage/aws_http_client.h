#ifndef FNA_AGENT_STORAGE_AWS_HTTP_CLIENT_H_
#define FNA_AGENT_STORAGE_AWS_HTTP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/http/http_transport.h"

namespace fna::storage {

// The text of the first element named `tag` in `xml`, entities decoded; std::nullopt when there is none. For
// the flat leaf elements of S3's and STS's answers (<Code>, <AccessKeyId>, ...), not a general XML parser.
std::optional<std::string> XmlElementText(absl::string_view xml, absl::string_view tag);

// An AWS service's error, from an XML error body (S3's <Error>, STS's <ErrorResponse><Error>): the code and
// message, empty when absent (a HEAD, a proxy's page).
struct AwsError {
  std::string code;
  std::string message;
};
AwsError ParseAwsError(absl::string_view body);

// "503 SlowDown: Please reduce your request rate." — a response's status and AWS error, for messages.
std::string DescribeResponse(const http::HttpResponse& response);

// Parses a service endpoint: an http(s) base URL with no path beyond "/", no query. InvalidArgument naming
// `what` otherwise.
absl::StatusOr<http::ParsedUrl> ParseServiceEndpoint(absl::string_view endpoint, absl::string_view what);

// Sends requests to an AWS service under a retry policy: capped exponential backoff with jitter between
// attempts, each attempt bounded by RetryOptions::attempt_timeout, all of them by the caller's deadline.
//
// Thread safety: Send is safe for concurrent use. `transport` and `clock` are not owned and must outlive the
// client; backoffs sleep on `clock`.
class AwsHttpClient {
 public:
  // Makes one attempt's request (so that each attempt is signed afresh). Its errors end the call.
  using Builder = std::function<absl::StatusOr<http::HttpRequest>()>;
  // Whether a response is worth another attempt.
  using Retryable = std::function<bool(const http::HttpResponse&)>;

  // `random` gives uniform samples of [0, 1) for the jitter; null: a thread-safe pseudo-random generator.
  AwsHttpClient(http::HttpTransport* transport, const Clock* clock, RetryOptions retry,
                std::function<double()> random);

  // Sends the request `build` makes until a response is not `retryable`, and returns that response whatever
  // its status. Retried besides: the transport's Unavailable (connection refused or broken) and
  // DeadlineExceeded (an attempt that ran out of its attempt timeout). Errors, each message starting with
  // `what`: Unavailable naming the last problem when the next attempt would start past `deadline`;
  // DeadlineExceeded when it has passed; the transport's other errors (FailedPrecondition for an untrusted
  // certificate, InvalidArgument for a bad URL) at once.
  absl::StatusOr<http::HttpResponse> Send(absl::string_view what, absl::Time deadline, const Builder& build,
                                          const Retryable& retryable) const;

  // Requests handed to the transport so far.
  int64_t requests() const { return requests_.load(); }

 private:
  double Random() const;

  http::HttpTransport* const transport_;
  const Clock* const clock_;
  const RetryOptions retry_;
  const std::function<double()> random_;
  mutable std::atomic<int64_t> requests_{0};
  mutable std::mutex random_mu_;
  mutable std::mt19937_64 generator_ ABSL_GUARDED_BY(random_mu_);
};

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_AWS_HTTP_CLIENT_H_
