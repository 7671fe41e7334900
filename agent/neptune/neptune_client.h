#ifndef FNA_AGENT_NEPTUNE_NEPTUNE_CLIENT_H_
#define FNA_AGENT_NEPTUNE_NEPTUNE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"
#include "agent/metrics/metrics.h"
#include "agent/neptune/pinger.h"
#include "agent/neptune/tracker.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {

// The API token of a routing rule (RunRef::routing_rule; -1 for the agent's default). Called on every
// CreateRun/Write/ping, so it must be cheap (e.g. a token file re-read only when its mtime changes); a new
// value starts a new session (new OAuth tokens, empty caches). Its error messages must not contain a token.
using TokenSource = std::function<absl::StatusOr<Secret>(int routing_rule)>;

struct NeptuneClientOptions {
  TokenSource token_source;

  // The Neptune server's base URL, e.g. "https://neptune.example.com" ("https://" assumed without a scheme),
  // where every session starts (GET clients/config). "" uses each token's api_url, else its api_address.
  std::string host;

  // The Neptune web app's base URL, e.g. "https://neptune.example.com", for FallbackLink. "" uses the
  // applicationUrl of the server's client config once known, before that the token's API URL.
  std::string application_url;

  // Sent as User-Agent on every request. "" means "flyte-neptune-agent/<version>".
  std::string user_agent;
  // Sent as createExperiment's cliVersion and X-Neptune-CliVersion. Servers know the Python client's version
  // scheme; this client speaks that client's 1.14 protocol.
  std::string cli_version = "1.14.1";

  RetryOptions retry;
  // The access token is refreshed when less than this is left before its "exp" (or half its lifetime, if
  // shorter).
  absl::Duration refresh_margin = absl::Seconds(30);
  // After Neptune refused the API token (401/403 from clients/config or oauth-token), calls with that token
  // fail at once with the same error for this long instead of asking again (every GetTask poll would). A
  // changed token is tried at once.
  absl::Duration auth_failure_holdoff = absl::Minutes(1);

  PingerOptions pinger;
  // A Write holding this field is the run's final write: the run stops being pinged.
  std::string final_field = "flyte/phase";

  // Runs remembered per session (custom id -> run); the least recently used tenth is forgotten beyond this.
  size_t max_cached_runs = 100000;

  // Uniform samples of [0, 1) for the backoff jitter; null: a thread-safe pseudo-random generator. Tests set
  // a constant to make waits exact.
  std::function<double()> random;

  // Where the requests are counted, by endpoint ("experiments", "attributes/operations", ...):
  // flyte_neptune_agent_neptune_requests_total{endpoint,status} (status: the HTTP status, or the transport's
  // error code when no answer came), flyte_neptune_agent_neptune_request_duration_seconds{endpoint} and
  // flyte_neptune_agent_neptune_retries_total{endpoint}. The pings: `pinger.metrics`. Not owned; null: not
  // exported.
  metrics::Registry* metrics = nullptr;
};

// Counters, for tests and metrics. Monotonic.
struct NeptuneClientStats {
  int64_t requests = 0;               // HTTP requests handed to the transport (pings included)
  int64_t retries = 0;                // requests repeated after a connection error, 408, 429 or 5xx
  int64_t token_exchanges = 0;        // GET oauth-token
  int64_t token_refreshes = 0;        // POST {iss}/protocol/openid-connect/token
  int64_t expired_token_retries = 0;  // calls repeated after 401 AUTHORIZATION_TOKEN_EXPIRED
  int64_t operation_errors = 0;       // per-operation errors reported in executeOperations' 200 responses
};

// The Tracker for a Neptune 2.x server, over its legacy REST API (the protocol of the Python `neptune` 1.x
// client; neptune-protocol.md §3 and §10).
//
// Sessions. One per distinct API token (routing rules with the same token share one): the client config
// (GET /api/backend/v1/clients/config?alpha=true with X-Neptune-Api-Token; later calls go to its apiUrl, web
// links use its applicationUrl), the OAuth tokens (GET /api/backend/v1/authorization/oauth-token; the JWT's
// exp/azp/iss are read unverified), the project cache (GET /api/backend/v1/projects/get) and the run cache.
// The access token is refreshed (POST {iss}/protocol/openid-connect/token, a form with grant_type,
// refresh_token, client_id=azp) before it expires; a refresh the server refuses is replaced by a new
// exchange. A request answered 401 with errorType AUTHORIZATION_TOKEN_EXPIRED is repeated exactly once,
// after one refresh; a second 401 fails the call. Concurrent calls needing the same bootstrap step, project
// or run wait for the one call doing it (until their deadlines) instead of repeating it.
//
// Runs. CreateRun: createExperiment (POST /api/leaderboard/v1/experiments, {projectIdentifier and parentId:
// the project uuid, type "run", customId, cliVersion}; the same customId gives the same run), then
// executeOperations with `fields`; once both succeeded the run is cached and later CreateRun calls for it
// (every GetTask poll) send nothing. RunInfo.run_id is the short id, RunInfo.url
// "{applicationUrl}/{workspace}/{project}/e/{shortId}". Write: executeOperations (POST
// /api/leaderboard/v1/attributes/operations?experimentId=<uuid>) with `fields` as BuildOperationBatches
// shapes them (sorted, merged, limited, at most 1000 per request). Per-operation errors in a 200 response
// are logged and counted; the call fails (FailedPrecondition) only when every operation of a request was
// refused.
//   Write for a run this process has not seen (a restart, another replica) cannot tell "never created" from
// "created elsewhere" (the API finds runs by custom id only through createExperiment), so it calls
// createExperiment, which creates the run if needed: Write never returns NotFound for a missing run, only
// when Neptune answers 404 (the run or project was deleted).
//
// Pings. Runs created or written, and not final, are pinged by RunDue() (POST
// /api/leaderboard/v1/attributes/ping?experimentId=<uuid>, no retries), see Pinger. A Write holding
// `final_field` ends the run's pings; so does MarkFinal.
//
// Errors and retries. Connection errors, 408, 500, 502, 503 and 504 are retried with capped exponential
// backoff and jitter (RetryOptions); 429 waits for Retry-After (seconds or an HTTP date, at least
// initial_backoff), or backs off without one; other statuses are not retried. Every wait is Clock::SleepFor
// and never goes past the call's deadline: a call gives up when the next wait would (Unavailable, naming the
// last problem) or when the deadline has passed (DeadlineExceeded). A token Neptune refuses (401/403 at
// clients/config or oauth-token) is Unauthenticated/PermissionDenied and is not asked about again for
// `auth_failure_holdoff`. Other codes: NotFound (404: project or run), InvalidArgument (400, a bad RunRef,
// a field path without segments), ResourceExhausted (402/422: quota, read-only workspace),
// FailedPrecondition (untrusted TLS certificate, no token configured, every operation refused). Messages
// name the endpoint, the HTTP status and Neptune's errorType and title; never a token.
//
// Secrets. The API token is a fna::Secret and goes only into X-Neptune-Api-Token headers. The OAuth access
// and refresh tokens live only inside the session and go only into Authorization headers and the refresh
// form; they are not registered with the log redactor (which would keep every refreshed token forever), so
// server text quoted in errors and logs is scrubbed of anything shaped like a JWT as well.
//
// Idempotency: every request may be sent again after a lost answer: createExperiment is idempotent by
// customId, the operations are assigns and set unions.
//
// Thread safety: safe for concurrent use, including concurrent calls for the same run. `transport` and
// `clock` (not owned) must outlive the client; RunDue must not be running when the client is destroyed.
//
// Wiring (agent/main.cc): one http::HttplibTransport (options from the configuration and the proxy variables)
// and one NeptuneClient for the process, a TokenSource reading the token file of each routing rule, and a
// PeriodicThread calling RunDue() about every second, stopped before the client is destroyed.
class NeptuneClient final : public Tracker {
 public:
  NeptuneClient(NeptuneClientOptions options, http::HttpTransport* transport, const Clock* clock);
  ~NeptuneClient() override;
  NeptuneClient(const NeptuneClient&) = delete;
  NeptuneClient& operator=(const NeptuneClient&) = delete;

  absl::StatusOr<RunInfo> CreateRun(const RunRef& ref, const std::vector<Field>& fields,
                                    absl::Time deadline) override;
  absl::Status Write(const RunRef& ref, const std::vector<Field>& fields, absl::Time deadline) override;

  // "{base}/{workspace}/{project}?query=(`sys/custom_run_id`:string = "<id>")&lbViewUnpacked=true", the
  // query percent-encoded: the project's runs table filtered to the run (the link format the flytekit
  // Neptune plugin documents, with sys/custom_run_id for flyte/execution_id). {base} is
  // `application_url`, else the session's applicationUrl once known, else `host`, else the token's URL; ""
  // when none is available. No network call.
  std::string FallbackLink(const RunRef& ref) const override;

  // Pings the runs that are due (Pinger::RunDue). Call it from a periodic thread, every second or so.
  int RunDue();
  // Stops pinging the run (e.g. when finalization happens without a Write holding `final_field`).
  void MarkFinal(const RunRef& ref);

  NeptuneClientStats stats() const;
  const Pinger& pinger() const { return pinger_; }

 private:
  struct Session;
  struct CachedRun;
  enum class Retries { kYes, kNo };

  absl::StatusOr<std::shared_ptr<Session>> SessionFor(int routing_rule) const;
  // Runs `fill` unless `ready()` (evaluated under the session's lock) holds, at most one `fill` per key at a
  // time; concurrent callers wait for it (until `deadline`) and share its outcome.
  absl::Status Once(Session& session, const std::string& key, absl::Time deadline,
                    const std::function<bool()>& ready, const std::function<absl::Status()>& fill) const;

  absl::StatusOr<std::string> AccessToken(Session& session, absl::Time deadline) const;
  absl::Status Authenticate(Session& session, absl::Time deadline) const;
  absl::Status FetchClientConfig(Session& session, absl::Time deadline) const;
  absl::Status ExchangeApiToken(Session& session, absl::Time deadline) const;
  absl::Status RefreshAccessToken(Session& session, absl::Time deadline) const;

  // Sends `request` (with the bearer token) under the retry policy, refreshing once on an expired token.
  // `request.url` is the path and query: the session's apiUrl goes in front once it is known.
  absl::StatusOr<http::HttpResponse> AuthorizedCall(Session& session, http::HttpRequest request,
                                                    absl::string_view what, absl::Time deadline,
                                                    Retries retries) const;
  // Sends `request` under the retry policy: returns the first response that is not retried, or an error.
  absl::StatusOr<http::HttpResponse> Send(http::HttpRequest request, absl::string_view what,
                                          absl::Time deadline, Retries retries) const;

  absl::StatusOr<std::string> ProjectId(Session& session, const std::string& project,
                                        absl::Time deadline) const;
  absl::StatusOr<CachedRun> EnsureExperiment(Session& session, const RunRef& ref, absl::Time deadline) const;
  absl::Status ExecuteOperations(Session& session, const RunRef& ref, const std::string& experiment_id,
                                 const std::vector<nlohmann::ordered_json>& batches,
                                 absl::Time deadline) const;
  absl::Status Ping(const PingTarget& target, absl::Time deadline) const;

  double Random() const;

  const NeptuneClientOptions options_;
  const std::string user_agent_;
  http::HttpTransport* const transport_;
  const Clock* const clock_;

  mutable std::mutex mu_;
  mutable std::map<int, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);  // by routing rule

  mutable std::mutex random_mu_;
  mutable uint64_t random_state_ ABSL_GUARDED_BY(random_mu_);

  mutable std::atomic<int64_t> requests_{0};
  mutable std::atomic<int64_t> retries_{0};
  mutable std::atomic<int64_t> token_exchanges_{0};
  mutable std::atomic<int64_t> token_refreshes_{0};
  mutable std::atomic<int64_t> expired_token_retries_{0};
  mutable std::atomic<int64_t> operation_errors_{0};

  metrics::RegistryOrPrivate registry_;
  metrics::Family<metrics::Counter>* const requests_metric_;
  metrics::Family<metrics::Histogram>* const duration_metric_;
  metrics::Family<metrics::Counter>* const retries_metric_;

  Pinger pinger_;  // last: its ping function uses the members above
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_NEPTUNE_CLIENT_H_
