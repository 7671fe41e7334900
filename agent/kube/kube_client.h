#ifndef FNA_AGENT_KUBE_KUBE_CLIENT_H_
#define FNA_AGENT_KUBE_KUBE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/http/http_transport.h"
#include "agent/kube/cluster_connection.h"
#include "agent/kube/rate_limiter.h"
#include "agent/kube/token_provider.h"
#include "agent/metrics/metrics.h"
#include "nlohmann/json.hpp"

namespace fna::kube {

struct KubeClientOptions {
  // Client-side rate limit for every call, and each retry (propeller's kube-client-config: 100 / 25).
  double qps = 100;
  int burst = 25;
  // Bounds each attempt (as well as the call's deadline).
  absl::Duration request_timeout = absl::Seconds(30);
  // Retries after 429, 5xx or a connection error (client-go's maxRetries).
  int max_retries = 10;
  // Sent as User-Agent; "" means "flyte-neptune-agent/<version>".
  std::string user_agent;
  // Proxies, as http::HttplibTransportOptions takes them (the caller reads HTTPS_PROXY, HTTP_PROXY and
  // NO_PROXY). Unused with an injected transport.
  std::string https_proxy;
  std::string http_proxy;
  std::string no_proxy;
  // flyte_neptune_agent_kubernetes_requests_total{verb,resource,code} (the HTTP status, or the transport's
  // error), ..._request_duration_seconds{verb,resource} and ..._retries_total{verb,resource}. Not owned;
  // null: a private registry.
  metrics::Registry* metrics = nullptr;
  // Uniform samples of [0, 1) for the backoff jitter; null: a thread-safe pseudo-random generator. Tests set
  // a constant to make waits exact.
  std::function<double()> random;
};

// One page of a list.
struct PodList {
  std::vector<nlohmann::json> items;  // without metadata.managedFields
  std::string resource_version;       // of the list, opaque: where a watch would start
  std::string continue_token;         // "" on the last page
};

// What to read of a container's log (GET .../pods/{name}/log).
struct PodLogOptions {
  std::string container;                 // "" only for a Pod with one container
  bool timestamps = false;               // prefix each line with its RFC 3339 (nanoseconds) time and a space
  std::optional<int64_t> tail_lines;     // only the last N lines
  std::optional<int64_t> limit_bytes;    // at most this many bytes (may cut a line)
  std::optional<absl::Time> since_time;  // lines from this time on (whole seconds)
};

// One event of a watch: ADDED, MODIFIED, DELETED (the object's last state), or BOOKMARK (only
// metadata.resourceVersion). ERROR events are not handed over: they end the watch with their status.
struct WatchEvent {
  std::string type;
  nlohmann::json object;  // without metadata.managedFields
};

// Whether `status` is a 410 Gone/Expired from the API (an expired continue token or resourceVersion): list
// again from the start. The client returns OutOfRange for exactly that case.
bool IsGone(const absl::Status& status);

// Counters, for tests and metrics. Monotonic.
struct KubeClientStats {
  int64_t requests = 0;      // HTTP requests handed to the transport
  int64_t retries = 0;       // requests repeated after 429, 5xx or a connection error
  int64_t auth_retries = 0;  // requests repeated after a 401, with the token file re-read
};

// The Kubernetes REST API calls the executor makes (kubernetes-executor.md §3), over plain HTTPS + JSON.
//
// Requests carry `Authorization: Bearer <token>` (when the connection has a token; token_provider.h re-reads
// a token file at most every minute and after a 401), `Accept: application/json`, a Content-Type with a body,
// and User-Agent. Every call takes a deadline on the client's clock and is rate-limited first (RateLimiter,
// also for retries). Returned objects have metadata.managedFields removed.
//
// Errors, from the Status body's code and reason (never its message, which is only quoted; a body that is
// not JSON is quoted in short):
//   400, 413, 415 InvalidArgument; 422 InvalidArgument listing the causes' fields;
//   401 Unauthenticated, after the token file was re-read and the request repeated once (only when the token
//       comes from a file);
//   403 PermissionDenied naming the verb, the resource and the namespace the role lacks, then the server's
//       message: `kubernetes API: forbidden to create pods in namespace "ns": pods is forbidden: ...`;
//   404 NotFound (DeletePod: OK); 409 AlreadyExists (reason AlreadyExists) or FailedPrecondition (Conflict);
//   410 OutOfRange (IsGone);
//   429, 5xx and connection errors are retried up to max_retries times, waiting what Retry-After (or
//       details.retryAfterSeconds) asks, else capped exponential backoff with jitter (RetryOptions defaults:
//       250 ms doubling to 30 s, ±20 %), never past the deadline: then Unavailable naming the last problem
//       (retries exhausted) or DeadlineExceeded (the deadline passed or the next wait would pass it);
//   an untrusted server certificate or unloadable client certificate: FailedPrecondition, not retried.
// Every message starts with "kubernetes API: ", names the call, and never contains a token (secrets
// registered with common/secret.h are redacted from it as well).
//
// Idempotency: every call may be repeated. A retried create whose first attempt was applied answers 409
// AlreadyExists (callers adopt the Pod by its deterministic name); delete and merge patches are idempotent.
//
// Thread safety: safe for concurrent use; one client is shared by all tasks. `clock` (not owned) must outlive
// the client.
class KubeClient {
 public:
  // Builds the client for `connection`: an http::HttplibTransport from its TLS settings (CA, client
  // certificate, insecure-skip-tls-verify, tls-server-name) and `options`' proxies, unless `transport` is
  // given (tests). InvalidArgument for a bad server URL or unreadable certificate files.
  static absl::StatusOr<std::unique_ptr<KubeClient>> Create(
      ClusterConnection connection, KubeClientOptions options, const Clock* clock,
      std::unique_ptr<http::HttpTransport> transport = nullptr);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  // POST /api/v1/namespaces/{ns}/pods: the stored Pod (201). AlreadyExists for an existing name.
  absl::StatusOr<nlohmann::json> CreatePod(absl::string_view ns, const nlohmann::json& pod,
                                           absl::Time deadline);

  // GET /api/v1/namespaces/{ns}/pods/{name}. NotFound when it does not exist.
  absl::StatusOr<nlohmann::json> GetPod(absl::string_view ns, absl::string_view name, absl::Time deadline);

  // DELETE /api/v1/namespaces/{ns}/pods/{name} (graceful: the Pod's own grace period), with
  // preconditions.uid when `uid_precondition` is set. OK on 200/202 and when the Pod is already gone (404);
  // FailedPrecondition when the uid differs (a re-created namesake).
  absl::Status DeletePod(absl::string_view ns, absl::string_view name,
                         std::optional<std::string> uid_precondition, absl::Time deadline);

  // PATCH /api/v1/namespaces/{ns}/pods/{name} with an RFC 7386 JSON merge patch (null removes a key, e.g. an
  // annotation): the patched Pod.
  absl::StatusOr<nlohmann::json> PatchPod(absl::string_view ns, absl::string_view name,
                                          const nlohmann::json& merge_patch, absl::Time deadline);

  // GET /api/v1/namespaces/{ns}/pods, or /api/v1/pods when `ns` is "" (cluster-wide), filtered by
  // `label_selector` ("" = all), at most `limit` items (0 = no limit), from `continue_token` ("" = the first
  // page). OutOfRange (IsGone) when the continue token expired: list again from the first page.
  absl::StatusOr<PodList> ListPods(absl::string_view ns, absl::string_view label_selector, int64_t limit,
                                   absl::string_view continue_token, absl::Time deadline);

  // GET /api/v1/namespaces/{ns}/pods/{name}/log: the log text (not following). NotFound when the Pod is gone
  // (logs die with it); InvalidArgument while the container is waiting to start.
  absl::StatusOr<std::string> GetPodLog(absl::string_view ns, absl::string_view name,
                                        const PodLogOptions& options, absl::Time deadline);

  // Watches the Pods of `ns` ("" = cluster-wide) matching `label_selector` from `resource_version` (from a
  // list), with bookmarks, for at most `timeout` (the server's timeoutSeconds), handing each event to
  // `on_event` in order (returning false ends the watch). One attempt, no retries: the caller relists or
  // re-watches. OK when the server ended the stream (timeout) or `on_event` stopped it; OutOfRange (IsGone)
  // when `resource_version` is too old (410, as the HTTP status or an ERROR event): list again; Cancelled by
  // `canceller`; Unavailable when the stream was cut (a partial last line is dropped, never half-applied);
  // other errors as the other calls. Blocks while the stream is open.
  absl::Status WatchPods(absl::string_view ns, absl::string_view label_selector,
                         absl::string_view resource_version, absl::Duration timeout,
                         const std::function<bool(const WatchEvent& event)>& on_event,
                         http::StreamCanceller* canceller);

  // GET of any object by its API path, e.g. "/api/v1/namespaces/{ns}/podtemplates/{name}" or
  // "/apis/flyte.lyft.com/v1alpha1/namespaces/{ns}/flyteworkflows/{name}" (already percent-encoded).
  absl::StatusOr<nlohmann::json> GetObject(absl::string_view path, absl::Time deadline);

  const ClusterConnection& connection() const { return connection_; }
  KubeClientStats stats() const;

 private:
  struct Call;

  KubeClient(ClusterConnection connection, KubeClientOptions options, const Clock* clock,
             std::unique_ptr<http::HttpTransport> transport);

  // Sends `call` (rate limit, token, retries, the 401 re-read) and returns the last response whatever its
  // status, except 429/5xx, which only come back as Unavailable or DeadlineExceeded.
  absl::StatusOr<http::HttpResponse> Execute(const Call& call, absl::Time deadline);
  // The error for a non-2xx response.
  absl::Status ErrorFrom(const Call& call, const http::HttpResponse& response) const;
  // A JSON object from a 2xx response's body, managedFields removed.
  absl::StatusOr<nlohmann::json> ObjectFrom(const Call& call, const http::HttpResponse& response) const;
  double Random() const;

  const ClusterConnection connection_;
  const KubeClientOptions options_;
  const Clock* const clock_;
  const std::unique_ptr<http::HttpTransport> transport_;
  const std::string user_agent_;
  const RetryOptions backoff_;
  TokenProvider tokens_;
  RateLimiter limiter_;

  mutable std::atomic<uint64_t> random_state_{0x853C49E6748FEA9BULL};
  metrics::RegistryOrPrivate registry_;
  metrics::Family<metrics::Counter>* const requests_metric_;
  metrics::Family<metrics::Histogram>* const duration_metric_;
  metrics::Family<metrics::Counter>* const retries_metric_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> retries_{0};
  std::atomic<int64_t> auth_retries_{0};
};

}  // namespace fna::kube

#endif  // FNA_AGENT_KUBE_KUBE_CLIENT_H_
