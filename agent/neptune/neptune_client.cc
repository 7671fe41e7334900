#include "agent/neptune/neptune_client.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/common/secret.h"
#include "agent/common/status_macros.h"
#include "agent/neptune/api_token.h"
#include "agent/neptune/jwt.h"
#include "agent/neptune/operations.h"
#include "agent/version.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kComponent = "neptune";
constexpr size_t kMaxCustomRunIdLength = 36;  // the Python client drops longer custom ids
constexpr size_t kMaxQuotedServerText = 300;

constexpr absl::string_view kConfigPath = "/api/backend/v1/clients/config?alpha=true";
constexpr absl::string_view kOAuthTokenPath = "/api/backend/v1/authorization/oauth-token";
constexpr absl::string_view kProjectPath = "/api/backend/v1/projects/get?projectIdentifier=";
constexpr absl::string_view kExperimentsPath = "/api/leaderboard/v1/experiments";
constexpr absl::string_view kOperationsPath = "/api/leaderboard/v1/attributes/operations?experimentId=";
constexpr absl::string_view kPingPath = "/api/leaderboard/v1/attributes/ping?experimentId=";
constexpr absl::string_view kRefreshSuffix = "/protocol/openid-connect/token";

// The string member `key` of `object`, or "" when it is absent or not a string.
std::string StringMember(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool IsBase64UrlChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '=';
}

// `text` without anything shaped like a JWT (a run of 40+ base64url characters holding two dots or more) and
// without registered secrets, cut to a readable length (at a UTF-8 character boundary): server text that may
// go into logs and statuses.
std::string Scrub(absl::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxQuotedServerText));
  size_t i = 0;
  while (i < text.size()) {
    if (!IsBase64UrlChar(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    int dots = 0;
    while (end < text.size() && (IsBase64UrlChar(text[end]) || text[end] == '.')) {
      if (text[end] == '.') ++dots;
      ++end;
    }
    const absl::string_view word = text.substr(i, end - i);
    out.append(dots >= 2 && word.size() >= 40 ? "[REDACTED]" : std::string(word));
    i = end;
  }
  out = RedactSecrets(out);
  if (out.size() > kMaxQuotedServerText) {
    size_t cut = kMaxQuotedServerText;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = absl::StrCat(out.substr(0, cut), "...");
  }
  return out;
}

// "errorType" of a Neptune error body: a string, or {"name": ...}.
std::string ErrorType(const Json& body) {
  if (!body.is_object()) return "";
  auto it = body.find("errorType");
  if (it == body.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  return StringMember(*it, "name");
}

bool IsTokenExpired(const http::HttpResponse& response) {
  if (response.status != 401) return false;
  return ErrorType(Json::parse(response.body, nullptr, false)) == "AUTHORIZATION_TOKEN_EXPIRED";
}

bool IsRetryableStatus(int status) {
  return status == 408 || status == 500 || status == 502 || status == 503 || status == 504;
}

// The status for a response that is not a success: the code follows the HTTP status, the message names the
// call and quotes Neptune's errorType/title/message (scrubbed).
absl::Status ErrorFromResponse(const http::HttpResponse& response, absl::string_view what) {
  const Json body = Json::parse(response.body, nullptr, false);
  std::string detail;
  if (!body.is_discarded() && body.is_object()) {
    std::string type = ErrorType(body);
    if (type.empty()) type = StringMember(body, "error");  // OAuth: {"error", "error_description"}
    std::string text = StringMember(body, "title");
    if (text.empty()) text = StringMember(body, "message");
    if (text.empty()) text = StringMember(body, "errorDescription");
    if (text.empty()) text = StringMember(body, "error_description");
    detail = absl::StrCat(type, type.empty() || text.empty() ? "" : ": ", text);
  } else {
    detail = std::string(absl::StripAsciiWhitespace(response.body));
  }
  detail = Scrub(detail);
  const std::string message = absl::StrCat(what, ": HTTP ", response.status, " from Neptune",
                                           detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")");
  switch (response.status) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::AlreadyExistsError(message);
    case 402:
    case 422:
      return absl::ResourceExhaustedError(message);
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return absl::UnavailableError(message);
    default:
      return absl::UnknownError(message);
  }
}

bool IsSuccess(const http::HttpResponse& response) { return response.status >= 200 && response.status < 300; }

// Keeps the code, puts `context` in front of the message.
absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

absl::Status ValidateRef(const RunRef& ref) {
  const std::vector<absl::string_view> parts = absl::StrSplit(ref.project, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Neptune project \"", ref.project, "\" is not of the form workspace/project"));
  }
  if (ref.custom_run_id.empty() || ref.custom_run_id.size() > kMaxCustomRunIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "custom run id \"", ref.custom_run_id, "\" must have 1 to ", kMaxCustomRunIdLength, " characters"));
  }
  return absl::OkStatus();
}

// The metric label of a call named "POST attributes/operations": "attributes/operations".
std::string EndpointOf(absl::string_view what) {
  const size_t space = what.find(' ');
  return std::string(space == absl::string_view::npos ? what : what.substr(space + 1));
}

std::string RunKey(const RunRef& ref) { return absl::StrCat(ref.project, "\n", ref.custom_run_id); }

LogFields RunLogFields(const RunRef& ref) {
  return {{"project", ref.project}, {"custom_run_id", ref.custom_run_id}};
}

void LogServerAdvice(const http::HttpResponse& response, absl::string_view what) {
  static constexpr std::pair<const char*, LogLevel> kHeaders[] = {
      {"X-Server-Info", LogLevel::kInfo},
      {"X-Server-Warning", LogLevel::kWarning},
      {"X-Server-Error", LogLevel::kError},
  };
  for (const auto& [name, level] : kHeaders) {
    if (const std::string* value = response.FindHeader(name); value != nullptr) {
      Log(level, kComponent, absl::StrCat("Neptune server says: ", Scrub(*value)),
          {{"call", std::string(what)}});
    }
  }
}

}  // namespace

struct NeptuneClient::CachedRun {
  std::string experiment_id;
  RunInfo info;
  bool initialized = false;  // CreateRun's fields were written
  absl::Time last_used;
};

// One API token's state. `token` is immutable; the rest is guarded by `mu`.
struct NeptuneClient::Session {
  struct Flight {
    bool done = false;
    absl::Status status;
  };
  struct Project {
    std::string id;
    std::string workspace;
    std::string name;
  };

  Session(int rule, Secret source_token, ApiToken api_token, std::string bootstrap)
      : routing_rule(rule),
        given(std::move(source_token)),
        token(std::move(api_token)),
        bootstrap_url(std::move(bootstrap)) {}

  const int routing_rule;  // the first rule that used it, for messages
  const Secret given;      // as the token source returned it (untrimmed), to notice a change
  const ApiToken token;
  const std::string bootstrap_url;  // where clients/config is fetched

  std::mutex mu;
  std::condition_variable flight_done;  // a Once() fill finished
  bool configured ABSL_GUARDED_BY(mu) = false;
  std::string api_url ABSL_GUARDED_BY(mu);  // from the client config
  std::string app_url ABSL_GUARDED_BY(mu);
  bool authenticated ABSL_GUARDED_BY(mu) = false;
  std::string access_token ABSL_GUARDED_BY(mu);
  std::string refresh_token ABSL_GUARDED_BY(mu);
  std::string client_id ABSL_GUARDED_BY(mu);  // azp
  std::string issuer ABSL_GUARDED_BY(mu);     // iss
  absl::Time refresh_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  // Neptune's refusal of the API token, repeated until refused_until.
  absl::Status refused ABSL_GUARDED_BY(mu);
  absl::Time refused_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::map<std::string, Project> projects ABSL_GUARDED_BY(mu);
  std::map<std::string, CachedRun> runs ABSL_GUARDED_BY(mu);  // by RunKey
  std::map<std::string, std::shared_ptr<Flight>> flights ABSL_GUARDED_BY(mu);

  std::string ApiUrl() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return api_url.empty() ? bootstrap_url : api_url; }
  std::string AppUrl() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return app_url.empty() ? ApiUrl() : app_url; }
  std::string Rule() const {
    return routing_rule < 0 ? "the default token" : absl::StrCat("routing rule ", routing_rule, "'s token");
  }
};

NeptuneClient::NeptuneClient(NeptuneClientOptions options, http::HttpTransport* transport, const Clock* clock)
    : options_(std::move(options)),
      user_agent_(options_.user_agent.empty() ? absl::StrCat("flyte-neptune-agent/", kVersion)
                                              : options_.user_agent),
      transport_(transport),
      clock_(clock),
      random_state_(std::random_device{}()),
      registry_(options_.metrics),
      requests_metric_(registry_->AddCounter("flyte_neptune_agent_neptune_requests_total",
                                             "HTTP requests to Neptune, by endpoint and HTTP status (or the "
                                             "transport's error code when no answer came).",
                                             {"endpoint", "status"})),
      duration_metric_(
          registry_->AddHistogram("flyte_neptune_agent_neptune_request_duration_seconds",
                                  "Time from sending a request to Neptune to its answer or error.",
                                  {"endpoint"}, metrics::LatencyBuckets())),
      retries_metric_(registry_->AddCounter(
          "flyte_neptune_agent_neptune_retries_total",
          "Requests to Neptune repeated after a connection error, 408, 429 or 5xx.", {"endpoint"})),
      pinger_(options_.pinger, clock,
              [this](const PingTarget& target, absl::Time deadline) { return Ping(target, deadline); }) {}

NeptuneClient::~NeptuneClient() = default;

NeptuneClientStats NeptuneClient::stats() const {
  NeptuneClientStats stats;
  stats.requests = requests_.load();
  stats.retries = retries_.load();
  stats.token_exchanges = token_exchanges_.load();
  stats.token_refreshes = token_refreshes_.load();
  stats.expired_token_retries = expired_token_retries_.load();
  stats.operation_errors = operation_errors_.load();
  return stats;
}

double NeptuneClient::Random() const {
  if (options_.random) return options_.random();
  std::lock_guard<std::mutex> lock(random_mu_);
  // splitmix64
  uint64_t z = (random_state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

absl::StatusOr<std::shared_ptr<NeptuneClient::Session>> NeptuneClient::SessionFor(int routing_rule) const {
  const std::string rule = routing_rule < 0
                               ? "the default Neptune API token"
                               : absl::StrCat("routing rule ", routing_rule, "'s Neptune API token");
  if (!options_.token_source) return absl::FailedPreconditionError(absl::StrCat("no source for ", rule));
  absl::StatusOr<Secret> token = options_.token_source(routing_rule);
  if (!token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", rule, ": ", token.status().message()));
  }
  if (token->empty()) return absl::FailedPreconditionError(absl::StrCat(rule, " is empty"));
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = sessions_.find(routing_rule); it != sessions_.end() && it->second->given == *token) {
    return it->second;
  }
  for (const auto& [other_rule, session] : sessions_) {
    if (session->given == *token) {
      sessions_[routing_rule] = session;
      return session;
    }
  }
  absl::StatusOr<ApiToken> decoded = DecodeApiToken(*token);
  if (!decoded.ok()) return Annotate(decoded.status(), rule);
  std::string bootstrap = NormalizeBaseUrl(options_.host);
  if (bootstrap.empty()) bootstrap = decoded->BootstrapUrl();
  auto session = std::make_shared<Session>(routing_rule, *token, *std::move(decoded), std::move(bootstrap));
  if (sessions_.count(routing_rule) != 0) {
    Log(LogLevel::kInfo, kComponent, absl::StrCat(rule, " changed: starting a new Neptune session"));
  }
  sessions_[routing_rule] = session;
  return session;
}

absl::Status NeptuneClient::Once(Session& session, const std::string& key, absl::Time deadline,
                                 const std::function<bool()>& ready,
                                 const std::function<absl::Status()>& fill) const {
  std::shared_ptr<Session::Flight> mine;
  {
    std::unique_lock<std::mutex> lock(session.mu);
    while (true) {
      if (ready()) return absl::OkStatus();
      auto it = session.flights.find(key);
      if (it == session.flights.end()) break;
      const std::shared_ptr<Session::Flight> theirs = it->second;
      const absl::Duration left = deadline - clock_->Now();
      // A real-time wait for the injected clock's remaining time (bounded against overflow).
      if (left <= absl::ZeroDuration() ||
          !session.flight_done.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Hours(1))),
                                        [&theirs] { return theirs->done; })) {
        return absl::DeadlineExceededError("deadline passed while another call was talking to Neptune");
      }
      // Their failure is ours too, unless it was only their deadline and ours is later.
      if (!theirs->status.ok() && !(absl::IsDeadlineExceeded(theirs->status) && clock_->Now() < deadline)) {
        return theirs->status;
      }
    }
    mine = std::make_shared<Session::Flight>();
    session.flights[key] = mine;
  }
  absl::Status status = fill();
  {
    std::lock_guard<std::mutex> lock(session.mu);
    mine->done = true;
    mine->status = status;
    session.flights.erase(key);
  }
  session.flight_done.notify_all();
  return status;
}

absl::StatusOr<http::HttpResponse> NeptuneClient::Send(http::HttpRequest request, absl::string_view what,
                                                       absl::Time deadline, Retries retries) const {
  const std::string endpoint = EndpointOf(what);
  std::string problem;
  for (int attempt = 0;; ++attempt) {
    const absl::Time now = clock_->Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": deadline passed", problem.empty() ? "" : " (",
                                                      problem, problem.empty() ? "" : ")"));
    }
    request.deadline = std::min(deadline, now + options_.retry.attempt_timeout);
    ++requests_;
    absl::StatusOr<http::HttpResponse> response = transport_->Send(request);
    requests_metric_
        ->Get({endpoint, response.ok() ? absl::StrCat(response->status)
                                       : absl::StatusCodeToString(response.status().code())})
        ->Increment();
    duration_metric_->Get({endpoint})->Observe(absl::ToDoubleSeconds(clock_->Now() - now));
    std::optional<absl::Duration> wait;
    if (!response.ok()) {
      const bool transient =
          absl::IsUnavailable(response.status()) || absl::IsDeadlineExceeded(response.status());
      if (!transient) return Annotate(response.status(), what);
      if (retries == Retries::kNo) return Annotate(response.status(), what);
      problem = std::string(response.status().message());
    } else {
      LogServerAdvice(*response, what);
      const int status = response->status;
      if (!IsRetryableStatus(status) && status != 429) return response;
      if (retries == Retries::kNo) return response;
      problem = std::string(ErrorFromResponse(*response, what).message());
      if (status == 429) {
        if (const std::string* retry_after = response->FindHeader("Retry-After"); retry_after != nullptr) {
          wait = ParseRetryAfter(*retry_after, clock_->Now());
        }
      }
    }
    // A Retry-After is honoured as given, but never below the first backoff: "Retry-After: 0" from an
    // overloaded server must not become a tight loop.
    const absl::Duration pause = wait.has_value() ? std::max(*wait, options_.retry.initial_backoff)
                                                  : Backoff(options_.retry, attempt, Random());
    if (clock_->Now() + pause >= deadline) {
      return absl::UnavailableError(absl::StrCat(problem, " (gave up after ", attempt + 1,
                                                 attempt == 0 ? " attempt" : " attempts",
                                                 ": the next retry would pass the deadline)"));
    }
    ++retries_;
    retries_metric_->Get({endpoint})->Increment();
    clock_->SleepFor(pause);
  }
}

absl::Status NeptuneClient::FetchClientConfig(Session& session, absl::Time deadline) const {
  http::HttpRequest request;
  request.method = "GET";
  request.url = absl::StrCat(session.bootstrap_url, kConfigPath);
  request.headers = {{"X-Neptune-Api-Token", session.token.token.Reveal()},
                     {"Accept", "application/json"},
                     {"User-Agent", user_agent_},
                     {"X-Neptune-LegacyClient", "false"}};
  FNA_ASSIGN_OR_RETURN(http::HttpResponse response,
                       Send(std::move(request), "GET clients/config", deadline, Retries::kYes));
  if (response.status == 401 || response.status == 403) {
    return Annotate(ErrorFromResponse(response, "GET clients/config"),
                    absl::StrCat("Neptune refused ", session.Rule(), " (check the token file)"));
  }
  if (!IsSuccess(response)) return ErrorFromResponse(response, "GET clients/config");
  const Json config = Json::parse(response.body, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::UnavailableError("GET clients/config: Neptune's answer is not a JSON object");
  }
  std::lock_guard<std::mutex> lock(session.mu);
  session.api_url = NormalizeBaseUrl(StringMember(config, "apiUrl"));
  session.app_url = NormalizeBaseUrl(StringMember(config, "applicationUrl"));
  session.configured = true;
  return absl::OkStatus();
}

absl::Status NeptuneClient::ExchangeApiToken(Session& session, absl::Time deadline) const {
  http::HttpRequest request;
  request.method = "GET";
  {
    std::lock_guard<std::mutex> lock(session.mu);
    request.url = absl::StrCat(session.ApiUrl(), kOAuthTokenPath);
  }
  request.headers = {{"X-Neptune-Api-Token", session.token.token.Reveal()},
                     {"Accept", "application/json"},
                     {"User-Agent", user_agent_}};
  ++token_exchanges_;
  FNA_ASSIGN_OR_RETURN(http::HttpResponse response,
                       Send(std::move(request), "GET oauth-token", deadline, Retries::kYes));
  if (response.status == 401 || response.status == 403) {
    return Annotate(ErrorFromResponse(response, "GET oauth-token"),
                    absl::StrCat("Neptune refused ", session.Rule(), " (check the token file)"));
  }
  if (!IsSuccess(response)) return ErrorFromResponse(response, "GET oauth-token");
  const Json body = Json::parse(response.body, nullptr, false);
  const std::string access = StringMember(body, "accessToken");
  if (access.empty()) return absl::UnavailableError("GET oauth-token: Neptune's answer has no accessToken");
  absl::StatusOr<JwtClaims> claims = DecodeJwtClaims(access);
  if (!claims.ok()) {
    Log(LogLevel::kWarning, kComponent,
        "cannot read the access token's claims; refreshing only when Neptune says it expired",
        {{"error", std::string(claims.status().message())}});
    claims = JwtClaims{};
  }
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(session.mu);
  session.access_token = access;
  session.refresh_token = StringMember(body, "refreshToken");
  session.client_id = claims->authorized_party;
  session.issuer = claims->issuer;
  session.refresh_at = absl::InfiniteFuture();
  if (claims->expires.has_value()) {
    session.refresh_at = *claims->expires - std::min(options_.refresh_margin, (*claims->expires - now) / 2);
  }
  session.authenticated = true;
  return absl::OkStatus();
}

absl::Status NeptuneClient::RefreshAccessToken(Session& session, absl::Time deadline) const {
  http::HttpRequest request;
  request.method = "POST";
  {
    std::lock_guard<std::mutex> lock(session.mu);
    request.url = absl::StrCat(NormalizeBaseUrl(session.issuer), kRefreshSuffix);
    request.body =
        absl::StrCat("grant_type=refresh_token&refresh_token=", http::UrlEncode(session.refresh_token),
                     "&client_id=", http::UrlEncode(session.client_id));
  }
  request.content_type = "application/x-www-form-urlencoded;charset=UTF-8";
  request.headers = {{"Accept", "application/json"}, {"User-Agent", user_agent_}};
  ++token_refreshes_;
  FNA_ASSIGN_OR_RETURN(http::HttpResponse response,
                       Send(std::move(request), "POST openid-connect/token", deadline, Retries::kYes));
  if (!IsSuccess(response)) return ErrorFromResponse(response, "POST openid-connect/token");
  const Json body = Json::parse(response.body, nullptr, false);
  const std::string access = StringMember(body, "access_token");
  if (access.empty()) {
    return absl::UnavailableError("POST openid-connect/token: the answer has no access_token");
  }
  const absl::Time now = clock_->Now();
  std::optional<absl::Time> expires;
  if (absl::StatusOr<JwtClaims> claims = DecodeJwtClaims(access);
      claims.ok() && claims->expires.has_value()) {
    expires = claims->expires;
  } else if (auto it = body.find("expires_in"); it != body.end() && it->is_number()) {
    expires = now + absl::Seconds(std::clamp(it->get<double>(), 0.0, 1e9));
  }
  std::lock_guard<std::mutex> lock(session.mu);
  session.access_token = access;
  if (std::string refresh = StringMember(body, "refresh_token"); !refresh.empty()) {
    session.refresh_token = std::move(refresh);
  }
  session.refresh_at = absl::InfiniteFuture();
  if (expires.has_value()) {
    session.refresh_at = *expires - std::min(options_.refresh_margin, (*expires - now) / 2);
  }
  return absl::OkStatus();
}

absl::Status NeptuneClient::Authenticate(Session& session, absl::Time deadline) const {
  bool configured;
  bool can_refresh;
  {
    std::lock_guard<std::mutex> lock(session.mu);
    configured = session.configured;
    can_refresh = session.authenticated && !session.refresh_token.empty() && !session.issuer.empty();
  }
  if (!configured) FNA_RETURN_IF_ERROR(FetchClientConfig(session, deadline));
  if (can_refresh) {
    const absl::Status refreshed = RefreshAccessToken(session, deadline);
    if (refreshed.ok()) return refreshed;
    const bool refused = absl::IsInvalidArgument(refreshed) || absl::IsUnauthenticated(refreshed) ||
                         absl::IsPermissionDenied(refreshed) || absl::IsNotFound(refreshed) ||
                         absl::IsUnknown(refreshed);
    if (!refused) return refreshed;
    Log(LogLevel::kInfo, kComponent, "Neptune refused the token refresh; exchanging the API token again",
        {{"error", std::string(refreshed.message())}});
  }
  return ExchangeApiToken(session, deadline);
}

absl::StatusOr<std::string> NeptuneClient::AccessToken(Session& session, absl::Time deadline) const {
  const auto fresh = [this, &session]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return session.authenticated && clock_->Now() < session.refresh_at;
  };
  {
    std::lock_guard<std::mutex> lock(session.mu);
    if (clock_->Now() < session.refused_until) return session.refused;
  }
  const auto authenticate = [&]() -> absl::Status {
    const absl::Status status = Authenticate(session, deadline);
    if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
      std::lock_guard<std::mutex> lock(session.mu);
      session.refused = status;
      session.refused_until = clock_->Now() + options_.auth_failure_holdoff;
    }
    return status;
  };
  FNA_RETURN_IF_ERROR(Once(session, "auth", deadline, fresh, authenticate));
  std::lock_guard<std::mutex> lock(session.mu);
  if (!session.authenticated) return absl::InternalError("Neptune session not authenticated");
  return session.access_token;
}

absl::StatusOr<http::HttpResponse> NeptuneClient::AuthorizedCall(Session& session, http::HttpRequest request,
                                                                 absl::string_view what, absl::Time deadline,
                                                                 Retries retries) const {
  for (bool refreshed = false;; refreshed = true) {
    FNA_ASSIGN_OR_RETURN(const std::string access, AccessToken(session, deadline));
    http::HttpRequest attempt = request;
    {
      std::lock_guard<std::mutex> lock(session.mu);  // known once authenticated
      attempt.url = absl::StrCat(session.ApiUrl(), request.url);
    }
    attempt.headers.push_back({"Authorization", absl::StrCat("Bearer ", access)});
    FNA_ASSIGN_OR_RETURN(http::HttpResponse response, Send(std::move(attempt), what, deadline, retries));
    if (refreshed || !IsTokenExpired(response)) return response;
    ++expired_token_retries_;
    Log(LogLevel::kInfo, kComponent, "Neptune says the access token expired: refreshing it once",
        {{"call", std::string(what)}});
    std::lock_guard<std::mutex> lock(session.mu);
    if (session.access_token == access)
      session.refresh_at = absl::InfinitePast();  // others may have renewed it
  }
}

absl::StatusOr<std::string> NeptuneClient::ProjectId(Session& session, const std::string& project,
                                                     absl::Time deadline) const {
  const auto known = [&session, &project]()
                         ABSL_NO_THREAD_SAFETY_ANALYSIS { return session.projects.count(project) != 0; };
  const auto lookup = [&]() -> absl::Status {
    http::HttpRequest request;
    request.method = "GET";
    request.url = absl::StrCat(kProjectPath, http::UrlEncode(project));
    request.headers = {
        {"Accept", "application/json"}, {"User-Agent", user_agent_}, {"X-Neptune-LegacyClient", "false"}};
    FNA_ASSIGN_OR_RETURN(
        http::HttpResponse response,
        AuthorizedCall(session, std::move(request), "GET projects/get", deadline, Retries::kYes));
    if (response.status == 404) {
      return Annotate(
          ErrorFromResponse(response, "GET projects/get"),
          absl::StrCat("Neptune project ", project, " does not exist or ", session.Rule(), " cannot see it"));
    }
    if (!IsSuccess(response)) return ErrorFromResponse(response, "GET projects/get");
    const Json body = Json::parse(response.body, nullptr, false);
    Session::Project info;
    info.id = StringMember(body, "id");
    if (info.id.empty())
      return absl::UnavailableError("GET projects/get: Neptune's answer has no project id");
    if (auto version = body.find("version");
        version != body.end() && version->is_number_integer() && version->get<int64_t>() < 2) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Neptune project ", project, " is a legacy (version 1) project, which the API cannot write to"));
    }
    info.workspace = StringMember(body, "organizationName");
    info.name = StringMember(body, "name");
    std::lock_guard<std::mutex> lock(session.mu);
    session.projects[project] = std::move(info);
    return absl::OkStatus();
  };
  FNA_RETURN_IF_ERROR(Once(session, absl::StrCat("project\n", project), deadline, known, lookup));
  std::lock_guard<std::mutex> lock(session.mu);
  auto it = session.projects.find(project);
  if (it == session.projects.end())
    return absl::UnavailableError("project lookup raced with a session reset");
  return it->second.id;
}

absl::StatusOr<NeptuneClient::CachedRun> NeptuneClient::EnsureExperiment(Session& session, const RunRef& ref,
                                                                         absl::Time deadline) const {
  const std::string key = RunKey(ref);
  const auto known = [&session, &key]()
                         ABSL_NO_THREAD_SAFETY_ANALYSIS { return session.runs.count(key) != 0; };
  const auto create = [&]() -> absl::Status {
    FNA_ASSIGN_OR_RETURN(const std::string project_id, ProjectId(session, ref.project, deadline));
    Json body = {{"projectIdentifier", project_id},
                 {"parentId", project_id},
                 {"type", "run"},
                 {"customId", ref.custom_run_id},
                 {"cliVersion", options_.cli_version}};
    http::HttpRequest request;
    request.method = "POST";
    request.url = std::string(kExperimentsPath);
    request.headers = {{"Accept", "application/json"},
                       {"User-Agent", user_agent_},
                       {"X-Neptune-LegacyClient", "false"},
                       {"X-Neptune-CliVersion", options_.cli_version}};
    request.content_type = "application/json";
    request.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    FNA_ASSIGN_OR_RETURN(
        http::HttpResponse response,
        AuthorizedCall(session, std::move(request), "POST experiments", deadline, Retries::kYes));
    if (response.status == 404) {
      std::lock_guard<std::mutex> lock(session.mu);
      session.projects.erase(ref.project);  // deleted and maybe re-created: look it up again next time
    }
    if (!IsSuccess(response)) return ErrorFromResponse(response, "POST experiments");
    const Json experiment = Json::parse(response.body, nullptr, false);
    CachedRun run;
    run.experiment_id = StringMember(experiment, "id");
    run.info.run_id = StringMember(experiment, "shortId");
    if (run.experiment_id.empty() || run.info.run_id.empty()) {
      return absl::UnavailableError("POST experiments: Neptune's answer has no id or shortId");
    }
    if (auto trashed = experiment.find("trashed");
        trashed != experiment.end() && trashed->is_boolean() && trashed->get<bool>()) {
      Log(LogLevel::kWarning, kComponent,
          "the run with this custom id is in Neptune's trash; writing to it anyway", RunLogFields(ref));
    }
    std::lock_guard<std::mutex> lock(session.mu);
    std::string workspace;
    std::string name;
    if (auto project = session.projects.find(ref.project); project != session.projects.end()) {
      workspace = project->second.workspace;
      name = project->second.name;
    }
    if (workspace.empty() || name.empty()) {
      const std::vector<std::string> parts = absl::StrSplit(ref.project, '/');
      workspace = parts[0];
      name = parts[1];
    }
    run.info.url = absl::StrCat(session.AppUrl(), "/", http::UrlEncode(workspace), "/", http::UrlEncode(name),
                                "/e/", http::UrlEncode(run.info.run_id));
    run.last_used = clock_->Now();
    if (session.runs.size() >= options_.max_cached_runs) {
      // Forget the least recently used tenth; they are found again (by custom id) when needed.
      std::vector<std::pair<absl::Time, std::string>> by_use;
      by_use.reserve(session.runs.size());
      for (const auto& [k, cached] : session.runs) by_use.emplace_back(cached.last_used, k);
      const size_t drop = std::max<size_t>(1, by_use.size() / 10);
      std::nth_element(by_use.begin(), by_use.begin() + (drop - 1), by_use.end());
      for (size_t i = 0; i < drop; ++i) session.runs.erase(by_use[i].second);
    }
    session.runs[key] = std::move(run);
    return absl::OkStatus();
  };
  FNA_RETURN_IF_ERROR(Once(session, absl::StrCat("experiment\n", key), deadline, known, create));
  std::lock_guard<std::mutex> lock(session.mu);
  auto it = session.runs.find(key);
  if (it == session.runs.end()) return absl::UnavailableError("run lookup raced with the run cache");
  it->second.last_used = clock_->Now();
  return it->second;
}

absl::Status NeptuneClient::ExecuteOperations(Session& session, const RunRef& ref,
                                              const std::string& experiment_id,
                                              const std::vector<nlohmann::ordered_json>& batches,
                                              absl::Time deadline) const {
  for (const nlohmann::ordered_json& batch : batches) {
    http::HttpRequest request;
    request.method = "POST";
    request.url = absl::StrCat(kOperationsPath, http::UrlEncode(experiment_id));
    request.headers = {
        {"Accept", "application/json"}, {"User-Agent", user_agent_}, {"X-Neptune-LegacyClient", "false"}};
    request.content_type = "application/json";
    request.body = SerializeBatch(batch);
    FNA_ASSIGN_OR_RETURN(
        http::HttpResponse response,
        AuthorizedCall(session, std::move(request), "POST attributes/operations", deadline, Retries::kYes));
    if (response.status == 404) {
      std::lock_guard<std::mutex> lock(session.mu);
      session.runs.erase(RunKey(ref));
    }
    if (!IsSuccess(response)) return ErrorFromResponse(response, "POST attributes/operations");
    const Json errors = Json::parse(response.body, nullptr, false);
    if (!errors.is_array() || errors.empty()) continue;
    operation_errors_ += static_cast<int64_t>(errors.size());
    for (const Json& error : errors) {
      LogFields log_fields = RunLogFields(ref);
      log_fields.emplace_back("error_type", Scrub(ErrorType(error)));
      log_fields.emplace_back("error", Scrub(StringMember(error, "errorDescription")));
      Log(LogLevel::kWarning, kComponent, "Neptune refused an operation", log_fields);
    }
    if (errors.size() >= batch.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "POST attributes/operations: Neptune refused all ", batch.size(), " operations (",
          Scrub(ErrorType(errors[0])), ": ", Scrub(StringMember(errors[0], "errorDescription")), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RunInfo> NeptuneClient::CreateRun(const RunRef& ref, const std::vector<Field>& fields,
                                                 absl::Time deadline) {
  FNA_RETURN_IF_ERROR(ValidateRef(ref));
  FNA_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, SessionFor(ref.routing_rule));
  const std::string key = RunKey(ref);
  std::optional<CachedRun> cached;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    if (auto it = session->runs.find(key); it != session->runs.end() && it->second.initialized) {
      it->second.last_used = clock_->Now();
      cached = it->second;
    }
  }
  if (cached.has_value()) {
    pinger_.Touch(ref, cached->experiment_id);
    return cached->info;
  }
  // A bad path fails before any request.
  FNA_ASSIGN_OR_RETURN(const std::vector<nlohmann::ordered_json> batches, BuildOperationBatches(fields));
  FNA_ASSIGN_OR_RETURN(CachedRun run, EnsureExperiment(*session, ref, deadline));
  FNA_RETURN_IF_ERROR(ExecuteOperations(*session, ref, run.experiment_id, batches, deadline));
  {
    std::lock_guard<std::mutex> lock(session->mu);
    if (auto it = session->runs.find(key); it != session->runs.end()) it->second.initialized = true;
  }
  pinger_.Touch(ref, run.experiment_id);
  return run.info;
}

absl::Status NeptuneClient::Write(const RunRef& ref, const std::vector<Field>& fields, absl::Time deadline) {
  FNA_RETURN_IF_ERROR(ValidateRef(ref));
  FNA_ASSIGN_OR_RETURN(const std::vector<nlohmann::ordered_json> batches, BuildOperationBatches(fields));
  FNA_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, SessionFor(ref.routing_rule));
  FNA_ASSIGN_OR_RETURN(CachedRun run, EnsureExperiment(*session, ref, deadline));
  FNA_RETURN_IF_ERROR(ExecuteOperations(*session, ref, run.experiment_id, batches, deadline));
  const bool final = std::any_of(fields.begin(), fields.end(),
                                 [this](const Field& field) { return field.path == options_.final_field; });
  if (final) {
    pinger_.MarkFinal(ref);
  } else {
    pinger_.Touch(ref, run.experiment_id);
  }
  return absl::OkStatus();
}

absl::Status NeptuneClient::Ping(const PingTarget& target, absl::Time deadline) const {
  FNA_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, SessionFor(target.ref.routing_rule));
  http::HttpRequest request;
  request.method = "POST";
  request.url = absl::StrCat(kPingPath, http::UrlEncode(target.experiment_id));
  request.headers = {{"User-Agent", user_agent_}};
  FNA_ASSIGN_OR_RETURN(
      http::HttpResponse response,
      AuthorizedCall(*session, std::move(request), "POST attributes/ping", deadline, Retries::kNo));
  if (!IsSuccess(response)) return ErrorFromResponse(response, "POST attributes/ping");
  return absl::OkStatus();
}

int NeptuneClient::RunDue() { return pinger_.RunDue(); }

void NeptuneClient::MarkFinal(const RunRef& ref) { pinger_.MarkFinal(ref); }

std::string NeptuneClient::FallbackLink(const RunRef& ref) const {
  std::string base = NormalizeBaseUrl(options_.application_url);
  if (base.empty()) {
    std::shared_ptr<Session> session;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = sessions_.find(ref.routing_rule); it != sessions_.end()) session = it->second;
    }
    if (session != nullptr) {
      std::lock_guard<std::mutex> lock(session->mu);
      base = session->AppUrl();
    } else if (!options_.host.empty()) {
      base = NormalizeBaseUrl(options_.host);
    } else if (options_.token_source) {
      if (absl::StatusOr<Secret> token = options_.token_source(ref.routing_rule); token.ok()) {
        if (absl::StatusOr<ApiToken> decoded = DecodeApiToken(*token); decoded.ok())
          base = decoded->BootstrapUrl();
      }
    }
  }
  if (base.empty()) return "";
  std::string workspace = ref.project;
  std::string project;
  if (const size_t slash = ref.project.find('/'); slash != std::string::npos) {
    workspace = ref.project.substr(0, slash);
    project = ref.project.substr(slash + 1);
  }
  return absl::StrCat(
      base, "/", http::UrlEncode(workspace), "/", http::UrlEncode(project), "?query=(",
      http::UrlEncode(absl::StrCat("`sys/custom_run_id`:string = \"", ref.custom_run_id, "\"")),
      ")&lbViewUnpacked=true");
}

}  // namespace fna::neptune
