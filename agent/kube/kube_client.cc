#include "agent/kube/kube_client.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "agent/common/secret.h"
#include "agent/common/status_macros.h"
#include "agent/version.h"

namespace fna::kube {

using Json = nlohmann::json;

// One API request and what it is about (for messages).
struct KubeClient::Call {
  std::string method;
  std::string path;          // percent-encoded, with its query
  std::string content_type;  // "" without a body
  std::string body;
  std::string verb;      // create, get, list, delete, patch
  std::string resource;  // "pods", or "<plural>.<group>" outside the core group
  std::string ns;        // "" cluster-wide
  std::string name;      // "" for collections

  // `get pods "x" in namespace "ns"`, `create pods in namespace "ns"`, `list pods cluster-wide`.
  std::string Describe() const {
    std::string text = absl::StrCat(verb, " ", resource);
    if (!name.empty()) absl::StrAppend(&text, " \"", name, "\"");
    if (!ns.empty()) {
      absl::StrAppend(&text, " in namespace \"", ns, "\"");
    } else if (name.empty()) {
      absl::StrAppend(&text, " cluster-wide");
    }
    return text;
  }
  // `create pods in namespace "ns"` / `list pods cluster-wide`: what an RBAC role grants.
  std::string Permission() const {
    return absl::StrCat(verb, " ", resource,
                        ns.empty() ? " cluster-wide" : absl::StrCat(" in namespace \"", ns, "\""));
  }
};

namespace {

constexpr char kPrefix[] = "kubernetes API: ";

absl::Status Error(absl::StatusCode code, absl::string_view what, absl::string_view detail) {
  return absl::Status(code, RedactSecrets(absl::StrCat(kPrefix, what, ": ", detail)));
}

// What a Status body says (kubernetes-executor.md §3.2); for a body that is not a Status, its start.
struct ApiStatus {
  std::string reason;
  std::string message;
  std::vector<std::string> fields;  // details.causes[].field
  std::optional<int64_t> retry_after_seconds;
};

// At most `max` characters of `text` on one line.
std::string Snippet(absl::string_view text, size_t max = 200) {
  std::string line;
  for (char c : absl::StripAsciiWhitespace(text)) {
    if (line.size() >= max) {
      line += "...";
      break;
    }
    line.push_back(absl::ascii_iscntrl(static_cast<unsigned char>(c)) ? ' ' : c);
  }
  return line;
}

ApiStatus ParseStatus(const http::HttpResponse& response) {
  ApiStatus status;
  const Json body = Json::parse(response.body, nullptr, false);
  if (!body.is_object() || body.value("kind", "") != "Status") {
    status.message = response.body.empty() ? "(empty body)" : Snippet(response.body);
    return status;
  }
  if (body.contains("reason") && body["reason"].is_string())
    status.reason = body["reason"].get<std::string>();
  if (body.contains("message") && body["message"].is_string()) {
    status.message = Snippet(body["message"].get<std::string>(), 2000);
  }
  const Json details = body.value("details", Json::object());
  if (details.is_object()) {
    if (details.contains("retryAfterSeconds") && details["retryAfterSeconds"].is_number_integer()) {
      status.retry_after_seconds = details["retryAfterSeconds"].get<int64_t>();
    }
    if (details.contains("causes") && details["causes"].is_array()) {
      for (const Json& cause : details["causes"]) {
        if (cause.is_object() && cause.contains("field") && cause["field"].is_string()) {
          status.fields.push_back(cause["field"].get<std::string>());
        }
      }
    }
  }
  return status;
}

// "503 ServiceUnavailable: <message>".
std::string Describe(int code, const ApiStatus& status) {
  return absl::StrCat(code, status.reason.empty() ? "" : " ", status.reason, ": ", status.message);
}

// What to wait before retrying a 429 or 5xx, when the server says: Retry-After, else
// details.retryAfterSeconds.
std::optional<absl::Duration> RetryAfter(const http::HttpResponse& response, const ApiStatus& status,
                                         absl::Time now) {
  if (const std::string* header = response.FindHeader("Retry-After"); header != nullptr) {
    if (std::optional<absl::Duration> wait = ParseRetryAfter(*header, now); wait.has_value()) return wait;
  }
  if (status.retry_after_seconds.has_value() && *status.retry_after_seconds >= 0) {
    return absl::Seconds(*status.retry_after_seconds);
  }
  return std::nullopt;
}

void StripManagedFields(Json& object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    object["metadata"].erase("managedFields");
  }
}

std::string PodsPath(absl::string_view ns) {
  return ns.empty() ? "/api/v1/pods" : absl::StrCat("/api/v1/namespaces/", http::UrlEncode(ns), "/pods");
}

std::string PodPath(absl::string_view ns, absl::string_view name) {
  return absl::StrCat(PodsPath(ns), "/", http::UrlEncode(name));
}

}  // namespace

bool IsGone(const absl::Status& status) { return absl::IsOutOfRange(status); }

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Create(
    ClusterConnection connection, KubeClientOptions options, const Clock* clock,
    std::unique_ptr<http::HttpTransport> transport) {
  while (absl::EndsWith(connection.server, "/")) connection.server.pop_back();
  if (connection.source.empty()) connection.source = connection.server;
  if (absl::Status url = http::ParseUrl(connection.server).status(); !url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kPrefix, "bad server URL of ", connection.source, ": ", url.message()));
  }
  if (transport == nullptr) {
    http::HttplibTransportOptions transport_options;
    transport_options.ca_cert_file = connection.ca_file;
    transport_options.allow_self_signed = connection.insecure_skip_tls_verify;
    transport_options.client_cert_file = connection.client_cert_file;
    transport_options.client_key_file = connection.client_key_file;
    transport_options.tls_server_name = connection.tls_server_name;
    transport_options.https_proxy = options.https_proxy;
    transport_options.http_proxy = options.http_proxy;
    transport_options.no_proxy = options.no_proxy;
    absl::StatusOr<std::unique_ptr<http::HttplibTransport>> made =
        http::HttplibTransport::Create(std::move(transport_options), clock);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          absl::StrCat(kPrefix, connection.source, ": ", made.status().message()));
    }
    transport = *std::move(made);
  }
  return std::unique_ptr<KubeClient>(
      new KubeClient(std::move(connection), std::move(options), clock, std::move(transport)));
}

KubeClient::KubeClient(ClusterConnection connection, KubeClientOptions options, const Clock* clock,
                       std::unique_ptr<http::HttpTransport> transport)
    : connection_(std::move(connection)),
      options_(std::move(options)),
      clock_(clock),
      transport_(std::move(transport)),
      user_agent_(options_.user_agent.empty() ? absl::StrCat("flyte-neptune-agent/", kVersion)
                                              : options_.user_agent),
      tokens_(connection_.token, connection_.token_file, clock),
      limiter_(options_.qps, options_.burst, clock),
      registry_(options_.metrics),
      requests_metric_(registry_->AddCounter("flyte_neptune_agent_kubernetes_requests_total",
                                             "Requests to the Kubernetes API, by verb, resource and HTTP "
                                             "status (or the transport's error code when "
                                             "no answer came).",
                                             {"verb", "resource", "code"})),
      duration_metric_(
          registry_->AddHistogram("flyte_neptune_agent_kubernetes_request_duration_seconds",
                                  "Time from sending a request to the Kubernetes API to its answer "
                                  "(for a watch: to the end of the stream).",
                                  {"verb", "resource"}, metrics::LatencyBuckets())),
      retries_metric_(
          registry_->AddCounter("flyte_neptune_agent_kubernetes_retries_total",
                                "Requests to the Kubernetes API repeated after a connection error, "
                                "429 or 5xx, or after a 401 with the token file re-read.",
                                {"verb", "resource"})) {}

KubeClient::~KubeClient() = default;

KubeClientStats KubeClient::stats() const {
  KubeClientStats stats;
  stats.requests = requests_.load();
  stats.retries = retries_.load();
  stats.auth_retries = auth_retries_.load();
  return stats;
}

double KubeClient::Random() const {
  if (options_.random) return options_.random();
  // splitmix64 over an atomic counter
  uint64_t z = random_state_.fetch_add(0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

absl::StatusOr<http::HttpResponse> KubeClient::Execute(const Call& call, absl::Time deadline) {
  const std::string what = call.Describe();
  std::string problem;  // why the last attempt failed
  const auto last = [&problem]() {
    return problem.empty() ? std::string() : absl::StrCat(" (last: ", problem, ")");
  };
  bool reauthenticated = false;
  for (int attempt = 0;;) {
    if (clock_->Now() >= deadline) {
      return Error(absl::StatusCode::kDeadlineExceeded, what, absl::StrCat("deadline passed", last()));
    }
    if (absl::Status waited = limiter_.Wait(deadline); !waited.ok()) {
      return Error(absl::StatusCode::kDeadlineExceeded, what, absl::StrCat(waited.message(), last()));
    }
    absl::StatusOr<Secret> token = tokens_.Token();
    if (!token.ok()) return Error(token.status().code(), what, token.status().message());

    http::HttpRequest request;
    request.method = call.method;
    request.url = absl::StrCat(connection_.server, call.path);
    request.headers = {{"Accept", "application/json"}, {"User-Agent", user_agent_}};
    if (!token->empty())
      request.headers.push_back({"Authorization", absl::StrCat("Bearer ", token->Reveal())});
    request.content_type = call.content_type;
    request.body = call.body;
    request.deadline = std::min(deadline, clock_->Now() + options_.request_timeout);
    ++requests_;
    const absl::Time sent = clock_->Now();
    absl::StatusOr<http::HttpResponse> response = transport_->Send(request);
    requests_metric_
        ->Get({call.verb, call.resource,
               response.ok() ? absl::StrCat(response->status)
                             : absl::StatusCodeToString(response.status().code())})
        ->Increment();
    duration_metric_->Get({call.verb, call.resource})->Observe(absl::ToDoubleSeconds(clock_->Now() - sent));

    std::optional<absl::Duration> wait;
    if (!response.ok()) {
      const absl::Status& failed = response.status();
      // Untrusted certificates and malformed URLs do not get better by retrying.
      if (!absl::IsUnavailable(failed) && !absl::IsDeadlineExceeded(failed)) {
        return Error(failed.code(), what, failed.message());
      }
      problem = std::string(failed.message());
    } else if (response->status == 401 && tokens_.rotates() && !reauthenticated) {
      // The token may have rotated since it was last read: read the file again and repeat once.
      tokens_.Invalidate();
      reauthenticated = true;
      ++auth_retries_;
      retries_metric_->Get({call.verb, call.resource})->Increment();
      continue;
    } else if (response->status == 429 || response->status >= 500) {
      const ApiStatus status = ParseStatus(*response);
      problem = Describe(response->status, status);
      wait = RetryAfter(*response, status, clock_->Now());
    } else {
      if (response->status == 401) tokens_.Invalidate();  // the next call reads the file again
      return response;
    }
    if (attempt >= options_.max_retries) {
      return Error(
          absl::StatusCode::kUnavailable, what,
          absl::StrCat("gave up after ", attempt + 1, attempt == 0 ? " attempt: " : " attempts: ", problem));
    }
    const absl::Duration pause = wait.has_value() ? *wait : Backoff(backoff_, attempt, Random());
    if (clock_->Now() + pause >= deadline) {
      return Error(absl::StatusCode::kDeadlineExceeded, what,
                   absl::StrCat("the next retry (in ", absl::FormatDuration(pause),
                                ") would pass the deadline", last()));
    }
    ++retries_;
    retries_metric_->Get({call.verb, call.resource})->Increment();
    ++attempt;
    clock_->SleepFor(pause);
  }
}

absl::Status KubeClient::ErrorFrom(const Call& call, const http::HttpResponse& response) const {
  const ApiStatus status = ParseStatus(response);
  const std::string what = call.Describe();
  const std::string described = Describe(response.status, status);
  switch (response.status) {
    case 400:
    case 413:
    case 415:
      return Error(absl::StatusCode::kInvalidArgument, what, described);
    case 422:
      return Error(absl::StatusCode::kInvalidArgument, what,
                   status.fields.empty()
                       ? described
                       : absl::StrCat(described, " (fields: ", absl::StrJoin(status.fields, ", "), ")"));
    case 401:
      return Error(
          absl::StatusCode::kUnauthenticated, what,
          absl::StrCat(described, " (the API server refused the credentials of ", connection_.source,
                       tokens_.rotates() ? absl::StrCat(", also after re-reading ", connection_.token_file)
                                         : std::string(),
                       ")"));
    case 403:
      return absl::PermissionDeniedError(
          RedactSecrets(absl::StrCat(kPrefix, "forbidden to ", call.Permission(), ": ", status.message)));
    case 404:
      return Error(absl::StatusCode::kNotFound, what, described);
    case 409:
      return Error(status.reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                                    : absl::StatusCode::kFailedPrecondition,
                   what, described);
    case 410:
      return Error(absl::StatusCode::kOutOfRange, what,
                   absl::StrCat(described, " (list again from the start)"));
    default:
      return Error(absl::StatusCode::kUnknown, what, absl::StrCat("unexpected HTTP status ", described));
  }
}

absl::StatusOr<Json> KubeClient::ObjectFrom(const Call& call, const http::HttpResponse& response) const {
  Json object = Json::parse(response.body, nullptr, false);
  if (!object.is_object()) {
    return Error(absl::StatusCode::kInternal, call.Describe(),
                 absl::StrCat("HTTP ", response.status,
                              " but the body is not a JSON object: ", Snippet(response.body)));
  }
  StripManagedFields(object);
  return object;
}

absl::StatusOr<Json> KubeClient::CreatePod(absl::string_view ns, const Json& pod, absl::Time deadline) {
  Call call;
  call.method = "POST";
  call.path = PodsPath(ns);
  call.content_type = "application/json";
  call.body = pod.dump();
  call.verb = "create";
  call.resource = "pods";
  call.ns = std::string(ns);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  return ObjectFrom(call, response);
}

absl::StatusOr<Json> KubeClient::GetPod(absl::string_view ns, absl::string_view name, absl::Time deadline) {
  Call call;
  call.method = "GET";
  call.path = PodPath(ns, name);
  call.verb = "get";
  call.resource = "pods";
  call.ns = std::string(ns);
  call.name = std::string(name);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  return ObjectFrom(call, response);
}

absl::Status KubeClient::DeletePod(absl::string_view ns, absl::string_view name,
                                   std::optional<std::string> uid_precondition, absl::Time deadline) {
  Call call;
  call.method = "DELETE";
  call.path = PodPath(ns, name);
  if (uid_precondition.has_value()) {
    call.content_type = "application/json";
    call.body =
        Json{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"preconditions", {{"uid", *uid_precondition}}}}
            .dump();
  }
  call.verb = "delete";
  call.resource = "pods";
  call.ns = std::string(ns);
  call.name = std::string(name);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 == 2 || response.status == 404) return absl::OkStatus();
  return ErrorFrom(call, response);
}

absl::StatusOr<Json> KubeClient::PatchPod(absl::string_view ns, absl::string_view name,
                                          const Json& merge_patch, absl::Time deadline) {
  Call call;
  call.method = "PATCH";
  call.path = PodPath(ns, name);
  call.content_type = "application/merge-patch+json";
  call.body = merge_patch.dump();
  call.verb = "patch";
  call.resource = "pods";
  call.ns = std::string(ns);
  call.name = std::string(name);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  return ObjectFrom(call, response);
}

absl::StatusOr<PodList> KubeClient::ListPods(absl::string_view ns, absl::string_view label_selector,
                                             int64_t limit, absl::string_view continue_token,
                                             absl::Time deadline) {
  std::vector<std::string> query;
  if (!label_selector.empty())
    query.push_back(absl::StrCat("labelSelector=", http::UrlEncode(label_selector)));
  if (limit > 0) query.push_back(absl::StrCat("limit=", limit));
  if (!continue_token.empty()) query.push_back(absl::StrCat("continue=", http::UrlEncode(continue_token)));
  Call call;
  call.method = "GET";
  call.path = query.empty() ? PodsPath(ns) : absl::StrCat(PodsPath(ns), "?", absl::StrJoin(query, "&"));
  call.verb = "list";
  call.resource = "pods";
  call.ns = std::string(ns);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  FNA_ASSIGN_OR_RETURN(Json list, ObjectFrom(call, response));
  PodList pods;
  const Json metadata = list.value("metadata", Json::object());
  if (metadata.is_object()) {
    pods.resource_version = metadata.value("resourceVersion", "");
    pods.continue_token = metadata.value("continue", "");
  }
  if (list.contains("items") && list["items"].is_array()) {
    for (Json& item : list["items"]) {
      StripManagedFields(item);
      pods.items.push_back(std::move(item));
    }
  }
  return pods;
}

absl::StatusOr<std::string> KubeClient::GetPodLog(absl::string_view ns, absl::string_view name,
                                                  const PodLogOptions& options, absl::Time deadline) {
  std::vector<std::string> query;
  if (!options.container.empty())
    query.push_back(absl::StrCat("container=", http::UrlEncode(options.container)));
  if (options.timestamps) query.push_back("timestamps=true");
  if (options.tail_lines.has_value()) query.push_back(absl::StrCat("tailLines=", *options.tail_lines));
  if (options.limit_bytes.has_value()) query.push_back(absl::StrCat("limitBytes=", *options.limit_bytes));
  if (options.since_time.has_value()) {
    query.push_back(absl::StrCat(
        "sinceTime=",
        http::UrlEncode(absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", *options.since_time, absl::UTCTimeZone()))));
  }
  Call call;
  call.method = "GET";
  call.path = absl::StrCat(PodPath(ns, name), "/log");
  if (!query.empty()) absl::StrAppend(&call.path, "?", absl::StrJoin(query, "&"));
  call.verb = "get";
  call.resource = "pods/log";
  call.ns = std::string(ns);
  call.name = std::string(name);
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  return response.body;
}

absl::Status KubeClient::WatchPods(absl::string_view ns, absl::string_view label_selector,
                                   absl::string_view resource_version, absl::Duration timeout,
                                   const std::function<bool(const WatchEvent& event)>& on_event,
                                   http::StreamCanceller* canceller) {
  Call call;
  call.method = "GET";
  call.verb = "watch";
  call.resource = "pods";
  call.ns = std::string(ns);
  std::vector<std::string> query = {"watch=1", "allowWatchBookmarks=true",
                                    absl::StrCat("timeoutSeconds=", absl::ToInt64Seconds(timeout))};
  if (!resource_version.empty())
    query.push_back(absl::StrCat("resourceVersion=", http::UrlEncode(resource_version)));
  if (!label_selector.empty())
    query.push_back(absl::StrCat("labelSelector=", http::UrlEncode(label_selector)));
  call.path = absl::StrCat(PodsPath(ns), "?", absl::StrJoin(query, "&"));
  const std::string what = call.Describe();
  // Connecting and the first byte are bounded like any call; the stream then lasts up to `timeout`.
  const absl::Time deadline = clock_->Now() + timeout + options_.request_timeout;
  if (absl::Status waited = limiter_.Wait(deadline); !waited.ok()) {
    return Error(absl::StatusCode::kDeadlineExceeded, what, waited.message());
  }
  absl::StatusOr<Secret> token = tokens_.Token();
  if (!token.ok()) return Error(token.status().code(), what, token.status().message());
  http::HttpRequest request;
  request.method = "GET";
  request.url = absl::StrCat(connection_.server, call.path);
  request.headers = {{"Accept", "application/json"}, {"User-Agent", user_agent_}};
  if (!token->empty()) request.headers.push_back({"Authorization", absl::StrCat("Bearer ", token->Reveal())});
  request.deadline = deadline;
  ++requests_;

  std::string pending;  // bytes after the last complete line
  absl::Status ended;   // an ERROR event, or an event that is not JSON
  const auto on_data = [&](absl::string_view data) {
    pending.append(data.data(), data.size());
    size_t start = 0;
    for (size_t newline; (newline = pending.find('\n', start)) != std::string::npos; start = newline + 1) {
      const absl::string_view line =
          absl::StripAsciiWhitespace(absl::string_view(pending).substr(start, newline - start));
      if (line.empty()) continue;
      Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("type") ||
          !parsed["type"].is_string()) {
        ended = Error(absl::StatusCode::kInternal, what, "the watch sent an event that is not JSON");
        return false;
      }
      WatchEvent event{parsed["type"].get<std::string>(), std::move(parsed["object"])};
      if (event.type == "ERROR") {
        const int code = event.object.is_object() ? event.object.value("code", 0) : 0;
        const std::string message = event.object.is_object() ? event.object.value("message", "") : "";
        ended = Error(code == 410 ? absl::StatusCode::kOutOfRange : absl::StatusCode::kUnavailable, what,
                      absl::StrCat("ERROR event ", code, ": ", message));
        return false;
      }
      StripManagedFields(event.object);
      if (!on_event(event)) return false;
    }
    pending.erase(0, start);
    return true;
  };
  const absl::Time sent = clock_->Now();
  absl::StatusOr<http::HttpResponse> response = transport_->Stream(request, on_data, canceller);
  requests_metric_
      ->Get({call.verb, call.resource,
             response.ok() ? absl::StrCat(response->status)
                           : absl::StatusCodeToString(response.status().code())})
      ->Increment();
  duration_metric_->Get({call.verb, call.resource})->Observe(absl::ToDoubleSeconds(clock_->Now() - sent));
  if (!ended.ok()) return ended;
  if (!response.ok()) {
    if (absl::IsCancelled(response.status()))
      return absl::CancelledError(absl::StrCat(kPrefix, what, ": cancelled"));
    return Error(response.status().code(), what, response.status().message());
  }
  if (response->status / 100 != 2) {
    if (response->status == 401) tokens_.Invalidate();
    return ErrorFrom(call, *response);
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> KubeClient::GetObject(absl::string_view path, absl::Time deadline) {
  Call call;
  call.method = "GET";
  call.path = std::string(path);
  call.verb = "get";
  // /api/v1/[namespaces/{ns}/]{resource}/{name} or
  // /apis/{group}/{version}/[namespaces/{ns}/]{resource}/{name}
  std::vector<std::string> parts = absl::StrSplit(path.substr(0, path.find('?')), '/', absl::SkipEmpty());
  const bool core = !parts.empty() && parts[0] == "api";
  const size_t start = core ? 2 : 3;
  std::vector<std::string> rest;
  if (parts.size() > start) rest.assign(parts.begin() + static_cast<std::ptrdiff_t>(start), parts.end());
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    call.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.size() >= 2) {
    call.resource = core ? rest[0] : absl::StrCat(rest[0], ".", parts[1]);
    call.name = rest[1];
  } else {
    call.resource = std::string(path);
  }
  FNA_ASSIGN_OR_RETURN(const http::HttpResponse response, Execute(call, deadline));
  if (response.status / 100 != 2) return ErrorFrom(call, response);
  return ObjectFrom(call, response);
}

}  // namespace fna::kube
