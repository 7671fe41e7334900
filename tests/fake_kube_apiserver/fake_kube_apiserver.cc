#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "tests/fake_kube_apiserver/label_selector.h"

namespace fna::fake_kube {

using Json = nlohmann::json;

// An API path, parsed as the API server's request-info resolver does.
struct FakeKubeApiServer::Route {
  std::string group;          // "" for the core group
  std::string group_version;  // "v1", "flyte.lyft.com/v1alpha1"
  std::string resource;       // plural
  std::string subresource;    // "log", "status", or ""
  std::string ns;
  std::string name;
  std::string verb;

  std::string ResourceName() const {
    return subresource.empty() ? resource : absl::StrCat(resource, "/", subresource);
  }
  // "pods", or "flyteworkflows.flyte.lyft.com" for other groups, as messages name resources.
  std::string Qualified() const { return group.empty() ? resource : absl::StrCat(resource, ".", group); }
  ObjectKey Key() const { return ObjectKey{group_version, resource, ns, name}; }
};

struct FakeKubeApiServer::Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// An open watch stream.
struct FakeKubeApiServer::Watch {
  Route route;
  LabelSelector selector;
  int64_t sent = 0;  // resourceVersion of the last change sent
  bool bookmarks = false;
  int64_t bookmark_generation = 0;
  int64_t close_generation = 0;
  int64_t cut_generation = 0;
  std::chrono::steady_clock::time_point end;
  std::string pending;  // lines to send first
  bool finished = false;
};

namespace {

using Route = FakeKubeApiServer::Route;

bool IsTrue(absl::string_view value) { return value == "1" || value == "true"; }

std::optional<Route> ParseRoute(absl::string_view method, absl::string_view path, bool watch) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  Route route;
  size_t i = 0;
  if (parts.size() >= 2 && parts[0] == "api") {
    route.group_version = parts[1];
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    route.group = parts[1];
    route.group_version = absl::StrCat(parts[1], "/", parts[2]);
    i = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(i), parts.end());
  if (rest.empty()) return std::nullopt;
  if (rest[0] == "namespaces" && rest.size() >= 3) {
    if (rest.size() > 5) return std::nullopt;
    route.ns = rest[1];
    route.resource = rest[2];
    if (rest.size() > 3) route.name = rest[3];
    if (rest.size() > 4) route.subresource = rest[4];
  } else {
    if (rest.size() > 3) return std::nullopt;
    route.resource = rest[0];
    if (rest.size() > 1) route.name = rest[1];
    if (rest.size() > 2) route.subresource = rest[2];
  }
  if (method == "GET") {
    route.verb = !route.name.empty() ? "get" : watch ? "watch" : "list";
  } else if (method == "POST") {
    route.verb = "create";
  } else if (method == "PUT") {
    route.verb = "update";
  } else if (method == "PATCH") {
    route.verb = "patch";
  } else if (method == "DELETE") {
    route.verb = route.name.empty() ? "deletecollection" : "delete";
  } else {
    route.verb = absl::AsciiStrToLower(method);
  }
  return route;
}

std::string KindOf(const std::string& resource) {
  static const auto* const kKinds =
      new std::map<std::string, std::string>{{"pods", "Pod"},
                                             {"podtemplates", "PodTemplate"},
                                             {"flyteworkflows", "FlyteWorkflow"},
                                             {"namespaces", "Namespace"},
                                             {"events", "Event"},
                                             {"configmaps", "ConfigMap"},
                                             {"secrets", "Secret"},
                                             {"serviceaccounts", "ServiceAccount"}};
  const auto it = kKinds->find(resource);
  if (it != kKinds->end()) return it->second;
  std::string kind = resource;
  if (absl::EndsWith(kind, "s")) kind.pop_back();
  if (!kind.empty()) kind[0] = absl::ascii_toupper(kind[0]);
  return kind;
}

Json StatusJson(int code, absl::string_view reason, absl::string_view message, Json details = nullptr) {
  Json status = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", reason},
                 {"code", code}};
  if (!details.is_null()) status["details"] = std::move(details);
  return status;
}

Json Details(const Route& route, absl::string_view name) {
  Json details = Json::object();
  if (!name.empty()) details["name"] = name;
  if (!route.group.empty()) details["group"] = route.group;
  details["kind"] = route.resource;
  return details;
}

// The Status the API server sends for `code` when nothing more specific applies (faults).
Json GenericStatus(int code, std::optional<int> retry_after_seconds) {
  std::string reason;
  std::string message;
  switch (code) {
    case 400:
      reason = "BadRequest";
      message = "the server rejected our request for an unknown reason";
      break;
    case 401:
      reason = "Unauthorized";
      message = "Unauthorized";
      break;
    case 403:
      reason = "Forbidden";
      message = "forbidden";
      break;
    case 404:
      reason = "NotFound";
      message = "the server could not find the requested resource";
      break;
    case 409:
      reason = "Conflict";
      message = "the server reported a conflict";
      break;
    case 410:
      reason = "Expired";
      message = "the resource version is too old";
      break;
    case 429:
      reason = "TooManyRequests";
      message = "Too many requests, please try again later.";
      break;
    case 500:
      reason = "InternalError";
      message = "Internal error occurred: injected fault";
      break;
    case 503:
      reason = "ServiceUnavailable";
      message = "The server is currently unable to handle the request";
      break;
    case 504:
      reason = "Timeout";
      message =
          "The server was unable to return a response in the time allotted, but may still be processing "
          "the request";
      break;
    default:
      message = absl::StrCat(
          "an error on the server (\"injected fault\") has prevented the request from "
          "succeeding");
      break;
  }
  Json details = nullptr;
  if (retry_after_seconds.has_value()) details = Json{{"retryAfterSeconds", *retry_after_seconds}};
  if (code == 500) {
    if (details.is_null()) details = Json::object();
    details["causes"] = Json::array({Json{{"message", "injected fault"}}});
  }
  return StatusJson(code, reason, message, std::move(details));
}

std::map<std::string, std::string> LabelsOf(const Json& object) {
  std::map<std::string, std::string> labels;
  if (!object.is_object()) return labels;
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return labels;
  const auto found = metadata->find("labels");
  if (found == metadata->end() || !found->is_object()) return labels;
  for (const auto& [key, value] : found->items()) {
    if (value.is_string()) labels[key] = value.get<std::string>();
  }
  return labels;
}

std::string StringAt(const Json& object, std::initializer_list<const char*> path) {
  const Json* node = &object;
  for (const char* key : path) {
    if (!node->is_object()) return "";
    const auto it = node->find(key);
    if (it == node->end()) return "";
    node = &*it;
  }
  return node->is_string() ? node->get<std::string>() : "";
}

// A field selector: "field=value", "field==value", "field!=value", comma-separated.
struct FieldRequirement {
  std::string field;
  bool equal = true;
  std::string value;
};

absl::StatusOr<std::vector<FieldRequirement>> ParseFieldSelector(absl::string_view text) {
  std::vector<FieldRequirement> requirements;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    FieldRequirement requirement;
    size_t at = part.find("!=");
    size_t skip = 2;
    if (at != absl::string_view::npos) {
      requirement.equal = false;
    } else if ((at = part.find("==")) == absl::string_view::npos) {
      at = part.find('=');
      skip = 1;
    }
    if (at == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", part, "'; can't understand '", part, "'"));
    }
    requirement.field = std::string(absl::StripAsciiWhitespace(part.substr(0, at)));
    requirement.value = std::string(absl::StripAsciiWhitespace(part.substr(at + skip)));
    requirements.push_back(std::move(requirement));
  }
  return requirements;
}

// InvalidArgument ("field label not supported") for fields the resource does not index.
absl::StatusOr<bool> FieldsMatch(const std::vector<FieldRequirement>& requirements, const Route& route,
                                 const Json& object) {
  for (const FieldRequirement& r : requirements) {
    std::string actual;
    if (r.field == "metadata.name") {
      actual = StringAt(object, {"metadata", "name"});
    } else if (r.field == "metadata.namespace") {
      actual = StringAt(object, {"metadata", "namespace"});
    } else if (route.resource == "pods" && r.field == "status.phase") {
      actual = StringAt(object, {"status", "phase"});
    } else if (route.resource == "pods" && r.field == "spec.nodeName") {
      actual = StringAt(object, {"spec", "nodeName"});
    } else {
      return absl::InvalidArgumentError(absl::StrCat("field label not supported: ", r.field));
    }
    if ((actual == r.value) != r.equal) return false;
  }
  return true;
}

std::string ContinueToken(int64_t rv, const ObjectKey& last) {
  const Json token = {
      {"v", "meta.k8s.io/v1"}, {"rv", rv}, {"start", absl::StrCat(last.ns, "/", last.name, "\x01")}};
  return absl::WebSafeBase64Escape(token.dump());
}

struct ContinuePoint {
  int64_t rv = 0;
  std::string after;  // "ns/name" of the last object returned
};

std::optional<ContinuePoint> ParseContinue(const std::string& text) {
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(text, &decoded)) return std::nullopt;
  const Json token = Json::parse(decoded, nullptr, false);
  if (!token.is_object() || !token.contains("rv") || !token["rv"].is_number_integer() ||
      !token.contains("start") || !token["start"].is_string()) {
    return std::nullopt;
  }
  ContinuePoint point;
  point.rv = token["rv"].get<int64_t>();
  absl::string_view start = token["start"].get_ref<const std::string&>();
  if (!absl::ConsumeSuffix(&start, "\x01")) return std::nullopt;
  point.after = std::string(start);
  return point;
}

// Validates a Pod's spec as the API server's validation does for the fields tests exercise.
void ValidatePod(const Json& pod, Json& causes) {
  const auto add = [&causes](absl::string_view reason, absl::string_view message, absl::string_view field) {
    causes.push_back(Json{{"reason", reason}, {"message", message}, {"field", field}});
  };
  const Json spec = pod.value("spec", Json());
  const Json containers = spec.is_object() ? spec.value("containers", Json()) : Json();
  if (!containers.is_array() || containers.empty()) {
    add("FieldValueRequired", "Required value", "spec.containers");
  } else {
    std::set<std::string> names;
    for (size_t i = 0; i < containers.size(); ++i) {
      const std::string prefix = absl::StrCat("spec.containers[", i, "]");
      const std::string name = StringAt(containers[i], {"name"});
      if (name.empty()) {
        add("FieldValueRequired", "Required value", prefix + ".name");
      } else if (const std::string reason = CheckDns1123Label(name); !reason.empty()) {
        add("FieldValueInvalid", absl::StrCat("Invalid value: \"", name, "\": ", reason), prefix + ".name");
      } else if (!names.insert(name).second) {
        add("FieldValueDuplicate", absl::StrCat("Duplicate value: \"", name, "\""), prefix + ".name");
      }
      if (StringAt(containers[i], {"image"}).empty())
        add("FieldValueRequired", "Required value", prefix + ".image");
    }
  }
  const std::string policy = spec.is_object() ? StringAt(spec, {"restartPolicy"}) : "";
  if (!policy.empty() && policy != "Always" && policy != "OnFailure" && policy != "Never") {
    add("FieldValueNotSupported",
        absl::StrCat("Unsupported value: \"", policy,
                     "\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        "spec.restartPolicy");
  }
}

// Label keys and values, and annotation keys.
void ValidateMetadata(const Json& metadata, Json& causes) {
  const auto add = [&causes](absl::string_view message, absl::string_view field) {
    causes.push_back(Json{{"reason", "FieldValueInvalid"}, {"message", message}, {"field", field}});
  };
  if (!metadata.is_object()) return;
  if (const auto labels = metadata.find("labels"); labels != metadata.end() && labels->is_object()) {
    for (const auto& [key, value] : labels->items()) {
      if (const std::string reason = CheckQualifiedName(key); !reason.empty()) {
        add(absl::StrCat("Invalid value: \"", key, "\": ", reason), "metadata.labels");
      }
      const std::string text = value.is_string() ? value.get<std::string>() : value.dump();
      if (const std::string reason = CheckLabelValue(text); !value.is_string() || !reason.empty()) {
        add(absl::StrCat("Invalid value: \"", text, "\": ", reason.empty() ? "must be a string" : reason),
            absl::StrCat("metadata.labels"));
      }
    }
  }
  if (const auto annotations = metadata.find("annotations");
      annotations != metadata.end() && annotations->is_object()) {
    for (const auto& [key, value] : annotations->items()) {
      if (const std::string reason = CheckQualifiedName(absl::AsciiStrToLower(key)); !reason.empty()) {
        add(absl::StrCat("Invalid value: \"", key, "\": ", reason), "metadata.annotations");
      }
    }
  }
}

// "Pod \"x\" is invalid: field: message" or "...: [a: m, b: n]".
std::string InvalidMessage(const std::string& kind, const std::string& name, const Json& causes) {
  std::vector<std::string> parts;
  for (const Json& cause : causes) {
    parts.push_back(
        absl::StrCat(cause["field"].get<std::string>(), ": ", cause["message"].get<std::string>()));
  }
  const std::string list = parts.size() == 1 ? parts[0] : absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  return absl::StrCat(kind, " \"", name, "\" is invalid: ", list);
}

void AddPodDefaults(Json& pod) {
  Json& spec = pod["spec"];
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  for (Json& container : spec["containers"]) {
    if (!container.contains("terminationMessagePath"))
      container["terminationMessagePath"] = "/dev/termination-log";
    if (!container.contains("terminationMessagePolicy")) container["terminationMessagePolicy"] = "File";
    if (!container.contains("imagePullPolicy")) {
      const std::string image = container.value("image", "");
      const size_t slash = image.rfind('/');
      const absl::string_view last =
          absl::string_view(image).substr(slash == std::string::npos ? 0 : slash + 1);
      const bool latest = !absl::StrContains(last, ':') || absl::EndsWith(last, ":latest");
      container["imagePullPolicy"] = latest && !absl::StrContains(image, '@') ? "Always" : "IfNotPresent";
    }
  }
  pod["status"] = Json{{"phase", "Pending"}, {"qosClass", "BestEffort"}};
}

// A UUID-shaped uid, distinct for each `n`.
std::string Uid(int64_t n) { return absl::StrFormat("00000000-0000-4000-8000-%012d", n); }

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

// Drops empty labels, annotations and finalizers, which the API server omits.
void DropEmptyMetadata(Json& metadata) {
  for (const char* field : {"labels", "annotations", "finalizers"}) {
    if (metadata.contains(field) && (metadata[field].is_null() || metadata[field].empty()))
      metadata.erase(field);
  }
}

bool IsTerminating(const Json& object) {
  return !StringAt(object, {"metadata", "deletionTimestamp"}).empty();
}

bool HasFinalizers(const Json& object) {
  const Json* metadata = object.contains("metadata") ? &object.at("metadata") : nullptr;
  return metadata != nullptr && metadata->contains("finalizers") && metadata->at("finalizers").is_array() &&
         !metadata->at("finalizers").empty();
}

std::string RawQuery(const httplib::Request& req) {
  const size_t question = req.target.find('?');
  return question == std::string::npos ? "" : req.target.substr(question + 1);
}

bool IsInternalHeader(absl::string_view name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT";
}

// The line a watch sends for one event.
std::string EventLine(absl::string_view type, const Route& route, Json object) {
  if (object.is_object() && type != "ERROR") {
    object["kind"] = KindOf(route.resource);
    object["apiVersion"] = route.group_version;
  }
  return absl::StrCat(Json{{"type", type}, {"object", std::move(object)}}.dump(), "\n");
}

}  // namespace

// --- lifecycle ---

FakeKubeApiServer::FakeKubeApiServer(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      deletion_mode_(options_.deletion_mode) {}

absl::StatusOr<std::unique_ptr<FakeKubeApiServer>> FakeKubeApiServer::Start(Options options) {
  std::unique_ptr<FakeKubeApiServer> server(new FakeKubeApiServer(std::move(options)));
  if (absl::Status listening = server->Listen(); !listening.ok()) return listening;
  return server;
}

absl::Status FakeKubeApiServer::Listen() {
  const bool tls = !options_.tls_cert_file.empty() && !options_.tls_key_file.empty();
  if (tls) {
    const Options& o = options_;
    server_ = std::make_unique<httplib::SSLServer>([&o](SSL_CTX& ctx) {
      if (SSL_CTX_use_certificate_chain_file(&ctx, o.tls_cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(&ctx, o.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return false;
      }
      if (!o.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(&ctx, o.client_ca_file.c_str(), nullptr) != 1) return false;
        SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(o.client_ca_file.c_str()));
        SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);  // asked for, not required
      }
      return true;
    });
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load the TLS certificate ", options_.tls_cert_file,
                                                   ", its key or the client CA ", options_.client_ca_file));
  }
  const size_t threads = static_cast<size_t>(std::max(2, options_.worker_threads));
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_tcp_nodelay(true);  // no Nagle/delayed-ACK stall between a response's header and body writes
  server_->set_keep_alive_max_count(1000);
  const auto handler = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Patch(".*", handler);
  server_->Delete(".*", handler);
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ < 0) return absl::UnavailableError("cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  while (!server_->is_running()) std::this_thread::yield();
  return absl::OkStatus();
}

FakeKubeApiServer::~FakeKubeApiServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string FakeKubeApiServer::url() const {
  const bool tls = !options_.tls_cert_file.empty() && !options_.tls_key_file.empty();
  return absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", port_);
}

std::string FakeKubeApiServer::Now() const { return Rfc3339(clock_->Now()); }

// --- control ---

void FakeKubeApiServer::AcceptToken(const std::string& token, const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[token] = user;
}

void FakeKubeApiServer::RevokeToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.erase(token);
}

void FakeKubeApiServer::Forbid(const std::string& verb, const std::string& resource,
                               std::optional<std::string> ns) {
  std::lock_guard<std::mutex> lock(mu_);
  forbidden_.insert(ForbidRule{verb, resource, std::move(ns)});
}

void FakeKubeApiServer::Allow(const std::string& verb, const std::string& resource,
                              std::optional<std::string> ns) {
  std::lock_guard<std::mutex> lock(mu_);
  forbidden_.erase(ForbidRule{verb, resource, std::move(ns)});
}

void FakeKubeApiServer::AddFault(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(fault));
}

void FakeKubeApiServer::FailNext(const std::string& method, const std::string& path_prefix, int count,
                                 int status, const std::string& retry_after) {
  Fault fault;
  fault.method = method;
  fault.path_prefix = path_prefix;
  fault.count = count;
  fault.status = status;
  fault.retry_after = retry_after;
  AddFault(std::move(fault));
}

void FakeKubeApiServer::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

std::optional<Json> FakeKubeApiServer::GetPod(const std::string& ns, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Json* pod = store_.Get(ObjectKey{"v1", "pods", ns, name});
  if (pod == nullptr) return std::nullopt;
  return *pod;
}

std::optional<Json> FakeKubeApiServer::GetObject(const std::string& path) const {
  const std::optional<Route> route = ParseRoute("GET", path, false);
  if (!route.has_value() || route->name.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  const Json* object = store_.Get(route->Key());
  if (object == nullptr) return std::nullopt;
  return *object;
}

absl::StatusOr<Json> FakeKubeApiServer::PutObject(const std::string& path, Json object) {
  const std::optional<Route> route = ParseRoute("PUT", path, false);
  if (!route.has_value() || route->name.empty() || !route->subresource.empty() || !object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("not an object path, or not an object: ", path));
  }
  Json& metadata = object["metadata"];
  metadata["name"] = route->name;
  if (!route->ns.empty()) metadata["namespace"] = route->ns;
  if (!object.contains("kind")) object["kind"] = KindOf(route->resource);
  if (!object.contains("apiVersion")) object["apiVersion"] = route->group_version;
  std::lock_guard<std::mutex> lock(mu_);
  if (!metadata.contains("uid")) {
    metadata["uid"] = Uid(++uid_counter_);
  }
  if (!metadata.contains("creationTimestamp")) metadata["creationTimestamp"] = Now();
  Json stored = store_.Put(route->Key(), std::move(object));
  changed_.notify_all();
  return stored;
}

absl::StatusOr<Json> FakeKubeApiServer::SetPodStatus(const std::string& ns, const std::string& name,
                                                     Json status) {
  const ObjectKey key{"v1", "pods", ns, name};
  std::lock_guard<std::mutex> lock(mu_);
  const Json* pod = store_.Get(key);
  if (pod == nullptr) return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found"));
  Json updated = *pod;
  updated["status"] = std::move(status);
  Json stored = store_.Put(key, std::move(updated));
  changed_.notify_all();
  return stored;
}

absl::Status FakeKubeApiServer::DeletePodFromOutside(const std::string& ns, const std::string& name) {
  const ObjectKey key{"v1", "pods", ns, name};
  std::lock_guard<std::mutex> lock(mu_);
  const Json* pod = store_.Get(key);
  if (pod == nullptr) return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found"));
  Json last = *pod;
  if (!IsTerminating(last)) {
    last["metadata"]["deletionTimestamp"] = Now();
    last["metadata"]["deletionGracePeriodSeconds"] = 0;
    store_.Put(key, std::move(last));
  }
  store_.Remove(key);
  finalized_.erase(key);
  changed_.notify_all();
  return absl::OkStatus();
}

absl::Status FakeKubeApiServer::FinalizeDeletion(const std::string& ns, const std::string& name) {
  const ObjectKey key{"v1", "pods", ns, name};
  std::lock_guard<std::mutex> lock(mu_);
  const Json* pod = store_.Get(key);
  if (pod == nullptr) return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found"));
  if (!IsTerminating(*pod))
    return absl::FailedPreconditionError(absl::StrCat("pods \"", name, "\" is not terminating"));
  if (HasFinalizers(*pod)) {
    return absl::FailedPreconditionError(absl::StrCat("pods \"", name, "\" still has finalizers"));
  }
  finalized_.insert(key);
  MaybeRemove(key);
  changed_.notify_all();
  return absl::OkStatus();
}

void FakeKubeApiServer::SetDeletionMode(DeletionMode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  deletion_mode_ = mode;
}

void FakeKubeApiServer::CompactHistory() {
  std::lock_guard<std::mutex> lock(mu_);
  store_.Compact();
}

void FakeKubeApiServer::SendBookmarks() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++bookmark_generation_;
  }
  changed_.notify_all();
}

void FakeKubeApiServer::CloseWatches() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++close_generation_;
  }
  changed_.notify_all();
}

void FakeKubeApiServer::CutWatchesMidEvent() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++cut_generation_;
  }
  changed_.notify_all();
}

int FakeKubeApiServer::open_watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_watches_;
}

std::vector<RequestRecord> FakeKubeApiServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int FakeKubeApiServer::RequestCount(const std::string& verb, const std::string& resource,
                                    std::optional<std::string> ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(requests_.begin(), requests_.end(), [&](const RequestRecord& r) {
    return r.verb == verb && r.resource == resource && (!ns.has_value() || r.ns == *ns);
  }));
}

void FakeKubeApiServer::ClearRequests() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.clear();
}

void FakeKubeApiServer::MaybeRemove(const ObjectKey& key) {
  const Json* object = store_.Get(key);
  if (object == nullptr || !IsTerminating(*object) || HasFinalizers(*object) || finalized_.count(key) == 0)
    return;
  store_.Remove(key);
  finalized_.erase(key);
}

// --- serving ---

std::optional<Fault> FakeKubeApiServer::TakeFault(const std::string& method, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (!it->method.empty() && it->method != method) continue;
    if (!absl::StartsWith(path, it->path_prefix)) continue;
    Fault fault = *it;
    if (--it->count <= 0) faults_.erase(it);
    return fault;
  }
  return std::nullopt;
}

std::string FakeKubeApiServer::Authenticate(const httplib::Request& req) const {
  const std::string authorization = req.get_header_value("Authorization");
  if (!authorization.empty()) {
    absl::string_view token = authorization;
    if (!absl::ConsumePrefix(&token, "Bearer ")) return "";
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = tokens_.find(std::string(token));
    return it == tokens_.end() ? "" : it->second;
  }
  if (req.ssl != nullptr && !options_.client_ca_file.empty()) {
    X509* cert = SSL_get1_peer_certificate(req.ssl);
    if (cert != nullptr) {
      char name[256] = "";
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name));
      X509_free(cert);
      if (SSL_get_verify_result(req.ssl) == X509_V_OK && name[0] != '\0') return name;
    }
  }
  return options_.allow_anonymous ? "system:anonymous" : "";
}

void FakeKubeApiServer::Handle(const httplib::Request& req, httplib::Response& res) {
  RequestRecord record;
  record.method = req.method;
  record.path = req.path;
  record.query = RawQuery(req);
  record.body = req.body;
  for (const auto& [name, value] : req.headers) {
    if (IsInternalHeader(name)) continue;
    record.headers[name] = absl::EqualsIgnoreCase(name, "Authorization")
                               ? (absl::StartsWith(value, "Bearer ") ? "Bearer [REDACTED]" : "[REDACTED]")
                               : value;
  }
  const auto log = [this](RequestRecord r) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(r));
  };
  const std::optional<Route> route =
      ParseRoute(req.method, req.path, req.has_param("watch") && IsTrue(req.get_param_value("watch")));
  if (!route.has_value()) {
    record.status = 404;
    log(std::move(record));
    res.status = 404;
    res.set_content("404 page not found\n", "text/plain; charset=utf-8");
    return;
  }
  record.verb = route->verb;
  record.resource = route->ResourceName();
  record.ns = route->ns;
  record.name = route->name;

  Reply reply;
  if (const std::optional<Fault> fault = TakeFault(req.method, req.path); fault.has_value()) {
    if (fault->action == Fault::Action::kDrop) {
      log(std::move(record));  // status 0: before the client can see the drop and retry
      // The headers go out, then the body fails: the client sees the connection break mid-response.
      res.set_content_provider(
          1, "application/json", [](size_t, size_t, httplib::DataSink&) { return false; }, nullptr);
      return;
    }
    reply.status = fault->status;
    if (fault->body.empty()) {
      reply.body = GenericStatus(fault->status, fault->retry_after_seconds).dump();
    } else {
      reply.body = fault->body;
      reply.content_type = fault->content_type;
    }
    if (!fault->retry_after.empty()) reply.headers.emplace_back("Retry-After", fault->retry_after);
  } else {
    const std::string user = Authenticate(req);
    record.user = user;
    if (user.empty()) {
      reply.status = 401;
      reply.body = StatusJson(401, "Unauthorized", "Unauthorized").dump();
    } else {
      bool forbidden = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const ForbidRule& rule : forbidden_) {
          if (rule.verb == route->verb && rule.resource == route->ResourceName() &&
              (!rule.ns.has_value() || *rule.ns == route->ns)) {
            forbidden = true;
          }
        }
      }
      if (forbidden) {
        const std::string subject = route->name.empty()
                                        ? route->Qualified()
                                        : absl::StrCat(route->Qualified(), " \"", route->name, "\"");
        const std::string scope =
            route->ns.empty() ? "at the cluster scope" : absl::StrCat("in the namespace \"", route->ns, "\"");
        reply.status = 403;
        reply.body = StatusJson(403, "Forbidden",
                                absl::StrCat(subject, " is forbidden: User \"", user, "\" cannot ",
                                             route->verb, " resource \"", route->ResourceName(),
                                             "\" in API group \"", route->group, "\" ", scope),
                                Details(*route, route->name))
                         .dump();
      } else if (route->verb == "watch") {
        ServeWatch(*route, req, res);
        record.status = res.status;
        log(std::move(record));
        return;
      } else {
        reply = Serve(*route, req);
      }
    }
  }
  record.status = reply.status;
  log(std::move(record));
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  res.set_content(reply.body, reply.content_type);
}

FakeKubeApiServer::Reply FakeKubeApiServer::Serve(const Route& route, const httplib::Request& req) {
  if (route.verb == "create" && route.name.empty()) return Create(route, req);
  if (route.verb == "get" && route.subresource.empty()) return Get(route);
  if (route.verb == "get" && route.resource == "pods" && route.subresource == "log") return Log(route, req);
  if (route.verb == "list" && route.subresource.empty()) return List(route, req);
  if (route.verb == "delete" && route.subresource.empty()) return Delete(route, req);
  if (route.verb == "patch" && (route.subresource.empty() || route.subresource == "status"))
    return Patch(route, req);
  Reply reply;
  reply.status = 405;
  reply.body =
      StatusJson(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                 Details(route, route.name))
          .dump();
  return reply;
}

FakeKubeApiServer::Reply FakeKubeApiServer::JsonReply(int status, const Json& body) {
  return {status, body.dump(), "application/json", {}};
}

FakeKubeApiServer::Reply FakeKubeApiServer::Create(const Route& route, const httplib::Request& req) {
  const std::string kind = KindOf(route.resource);
  if (!absl::StartsWith(req.get_header_value("Content-Type"), "application/json")) {
    return JsonReply(415,
                     StatusJson(415, "UnsupportedMediaType",
                                absl::StrCat("the body of the request was in an unknown format - accepted "
                                             "media types include: application/json, application/yaml, "
                                             "application/vnd.kubernetes.protobuf")));
  }
  Json object = Json::parse(req.body, nullptr, false);
  if (object.is_discarded() || !object.is_object()) {
    return JsonReply(400, StatusJson(400, "BadRequest",
                                     absl::StrCat("the object provided is unrecognized (must be of type ",
                                                  kind, "): couldn't get version/kind; json parse error")));
  }
  if (object.contains("kind") && object["kind"] != kind) {
    return JsonReply(400, StatusJson(400, "BadRequest",
                                     absl::StrCat("the object provided is unrecognized (must be of type ",
                                                  kind, "): ", object["kind"].dump())));
  }
  Json& metadata = object["metadata"];
  if (!metadata.is_object()) metadata = Json::object();
  const std::string body_ns = StringAt(metadata, {"namespace"});
  if (!body_ns.empty() && body_ns != route.ns) {
    return JsonReply(400,
                     StatusJson(400, "BadRequest",
                                "the namespace of the provided object does not match the namespace sent on "
                                "the request"));
  }
  const std::string name = StringAt(metadata, {"name"});
  Json causes = Json::array();
  if (name.empty()) {
    causes.push_back(Json{{"reason", "FieldValueRequired"},
                          {"message", "Required value: name or generateName is required"},
                          {"field", "metadata.name"}});
  } else if (const std::string reason = CheckDns1123Subdomain(name); !reason.empty()) {
    causes.push_back(Json{{"reason", "FieldValueInvalid"},
                          {"message", absl::StrCat("Invalid value: \"", name, "\": ", reason)},
                          {"field", "metadata.name"}});
  }
  ValidateMetadata(metadata, causes);
  if (route.resource == "pods") ValidatePod(object, causes);
  if (!causes.empty()) {
    return JsonReply(422, StatusJson(422, "Invalid", InvalidMessage(kind, name, causes),
                                     Json{{"name", name}, {"kind", kind}, {"causes", causes}}));
  }
  Route named = route;
  named.name = name;
  const ObjectKey key = named.Key();

  std::string manager = req.get_param_value("fieldManager");
  if (manager.empty()) {
    const std::string agent = req.get_header_value("User-Agent");
    manager = agent.empty() ? "unknown" : agent.substr(0, agent.find('/'));
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (store_.Get(key) != nullptr) {
    return JsonReply(409, StatusJson(409, "AlreadyExists",
                                     absl::StrCat(route.Qualified(), " \"", name, "\" already exists"),
                                     Details(route, name)));
  }
  object["kind"] = kind;
  object["apiVersion"] = route.group_version;
  if (!route.ns.empty()) metadata["namespace"] = route.ns;
  metadata["uid"] = Uid(++uid_counter_);
  metadata["creationTimestamp"] = Now();
  metadata.erase("deletionTimestamp");
  metadata.erase("deletionGracePeriodSeconds");
  metadata["managedFields"] =
      Json::array({Json{{"manager", manager},
                        {"operation", "Update"},
                        {"apiVersion", route.group_version},
                        {"time", Now()},
                        {"fieldsType", "FieldsV1"},
                        {"fieldsV1", {{"f:metadata", Json::object()}, {"f:spec", Json::object()}}}}});
  DropEmptyMetadata(metadata);
  if (route.resource == "pods") AddPodDefaults(object);
  const Json& stored = store_.Put(key, std::move(object));
  changed_.notify_all();
  return JsonReply(201, stored);
}

FakeKubeApiServer::Reply FakeKubeApiServer::Get(const Route& route) {
  std::lock_guard<std::mutex> lock(mu_);
  const Json* object = store_.Get(route.Key());
  if (object == nullptr) {
    return JsonReply(
        404, StatusJson(404, "NotFound", absl::StrCat(route.Qualified(), " \"", route.name, "\" not found"),
                        Details(route, route.name)));
  }
  return JsonReply(200, *object);
}

void FakeKubeApiServer::AppendPodLog(const std::string& ns, const std::string& name,
                                     const std::string& container,
                                     const std::vector<std::pair<absl::Time, std::string>>& lines) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& log = logs_[absl::StrCat(ns, "/", name, "/", container)];
  log.insert(log.end(), lines.begin(), lines.end());
}

FakeKubeApiServer::Reply FakeKubeApiServer::Log(const Route& route, const httplib::Request& req) {
  std::lock_guard<std::mutex> lock(mu_);
  const Json* pod = store_.Get(ObjectKey{"v1", "pods", route.ns, route.name});
  if (pod == nullptr) {
    return JsonReply(404, StatusJson(404, "NotFound", absl::StrCat("pods \"", route.name, "\" not found"),
                                     Details(route, route.name)));
  }
  std::string container = req.get_param_value("container");
  const Json containers = pod->value("spec", Json::object()).value("containers", Json::array());
  if (container.empty()) {
    if (containers.size() != 1) {
      return JsonReply(400,
                       StatusJson(400, "BadRequest",
                                  absl::StrCat("a container name must be specified for pod ", route.name)));
    }
    container = containers[0].value("name", "");
  }
  // The kubelet has no log for a container that has not started.
  bool started = false;
  for (const Json& status : pod->value("status", Json::object()).value("containerStatuses", Json::array())) {
    if (status.value("name", "") != container || !status.contains("state")) continue;
    started = status["state"].contains("running") || status["state"].contains("terminated");
  }
  if (!started) {
    return JsonReply(400, StatusJson(400, "BadRequest",
                                     absl::StrCat("container \"", container, "\" in pod \"", route.name,
                                                  "\" is waiting to start: ContainerCreating")));
  }
  std::vector<std::pair<absl::Time, std::string>> lines;
  if (auto it = logs_.find(absl::StrCat(route.ns, "/", route.name, "/", container)); it != logs_.end()) {
    lines = it->second;
  }
  if (req.has_param("sinceTime")) {
    absl::Time since;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, req.get_param_value("sinceTime"), &since, &error)) {
      return JsonReply(400, StatusJson(400, "BadRequest", absl::StrCat("sinceTime: ", error)));
    }
    lines.erase(
        std::remove_if(lines.begin(), lines.end(), [&](const auto& line) { return line.first < since; }),
        lines.end());
  }
  if (int64_t tail = 0; req.has_param("tailLines") &&
                        absl::SimpleAtoi(req.get_param_value("tailLines"), &tail) && tail >= 0 &&
                        static_cast<size_t>(tail) < lines.size()) {
    lines.erase(lines.begin(), lines.end() - tail);
  }
  const bool timestamps = IsTrue(req.get_param_value("timestamps"));
  std::string text;
  for (const auto& [time, line] : lines) {
    if (timestamps) {
      absl::StrAppend(&text, absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", time, absl::UTCTimeZone()), " ");
    }
    absl::StrAppend(&text, line, "\n");
  }
  if (int64_t limit = 0; req.has_param("limitBytes") &&
                         absl::SimpleAtoi(req.get_param_value("limitBytes"), &limit) && limit >= 0 &&
                         static_cast<size_t>(limit) < text.size()) {
    text.resize(static_cast<size_t>(limit));
  }
  return {200, text, "text/plain", {}};
}

FakeKubeApiServer::Reply FakeKubeApiServer::List(const Route& route, const httplib::Request& req) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(req.get_param_value("labelSelector"));
  if (!selector.ok()) return JsonReply(400, StatusJson(400, "BadRequest", selector.status().message()));
  absl::StatusOr<std::vector<FieldRequirement>> fields =
      ParseFieldSelector(req.get_param_value("fieldSelector"));
  if (!fields.ok()) return JsonReply(400, StatusJson(400, "BadRequest", fields.status().message()));
  int64_t limit = 0;
  if (req.has_param("limit") && (!absl::SimpleAtoi(req.get_param_value("limit"), &limit) || limit < 0)) {
    return JsonReply(400, StatusJson(400, "BadRequest", "limit must be a non-negative integer"));
  }
  std::optional<ContinuePoint> from;
  if (const std::string token = req.get_param_value("continue"); !token.empty()) {
    from = ParseContinue(token);
    if (!from.has_value()) {
      return JsonReply(
          400,
          StatusJson(
              400, "BadRequest",
              "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (from.has_value() && from->rv < store_.compacted()) {
    return JsonReply(
        410,
        StatusJson(410, "Expired",
                   "The provided continue parameter is too old to display a consistent list result. You can "
                   "start a new list without the continue parameter, or use the continue token in this "
                   "response to retrieve the remainder of the results. Continuing with the provided token "
                   "results in an inconsistent list - objects that were created, modified, or deleted "
                   "between the time the first chunk was returned and now may show up in the list."));
  }
  const int64_t list_rv = from.has_value() ? from->rv : store_.resource_version();
  Json items = Json::array();
  std::optional<ObjectKey> last;
  int64_t remaining = 0;
  for (const auto& [key, object] : store_.List(route.group_version, route.resource, route.ns)) {
    if (from.has_value() && absl::StrCat(key.ns, "/", key.name) <= from->after) continue;
    if (!selector->Matches(LabelsOf(*object))) continue;
    absl::StatusOr<bool> matches = FieldsMatch(*fields, route, *object);
    if (!matches.ok()) return JsonReply(400, StatusJson(400, "BadRequest", matches.status().message()));
    if (!*matches) continue;
    if (limit > 0 && static_cast<int64_t>(items.size()) == limit) {
      ++remaining;
      continue;
    }
    Json item = *object;
    item.erase("kind");
    item.erase("apiVersion");
    items.push_back(std::move(item));
    last = key;
  }
  Json metadata = {{"resourceVersion", std::to_string(list_rv)}};
  if (remaining > 0 && last.has_value()) {
    metadata["continue"] = ContinueToken(list_rv, *last);
    if (selector->empty() && fields->empty()) metadata["remainingItemCount"] = remaining;
  }
  return JsonReply(200, Json{{"kind", absl::StrCat(KindOf(route.resource), "List")},
                             {"apiVersion", route.group_version},
                             {"metadata", std::move(metadata)},
                             {"items", std::move(items)}});
}

FakeKubeApiServer::Reply FakeKubeApiServer::Delete(const Route& route, const httplib::Request& req) {
  Json options = Json::object();
  if (!absl::StripAsciiWhitespace(req.body).empty()) {
    options = Json::parse(req.body, nullptr, false);
    if (options.is_discarded() || !options.is_object()) {
      return JsonReply(
          400, StatusJson(400, "BadRequest", "the body of the request was not a valid DeleteOptions"));
    }
  }
  std::optional<int64_t> grace;
  if (int64_t seconds = 0; req.has_param("gracePeriodSeconds") &&
                           absl::SimpleAtoi(req.get_param_value("gracePeriodSeconds"), &seconds)) {
    grace = seconds;
  } else if (options.contains("gracePeriodSeconds") && options["gracePeriodSeconds"].is_number_integer()) {
    grace = options["gracePeriodSeconds"].get<int64_t>();
  }
  const ObjectKey key = route.Key();
  std::lock_guard<std::mutex> lock(mu_);
  const Json* current = store_.Get(key);
  if (current == nullptr) {
    return JsonReply(
        404, StatusJson(404, "NotFound", absl::StrCat(route.Qualified(), " \"", route.name, "\" not found"),
                        Details(route, route.name)));
  }
  const Json preconditions = options.value("preconditions", Json::object());
  const auto conflict = [&](absl::string_view what, const std::string& wanted, const std::string& actual) {
    return JsonReply(
        409, StatusJson(409, "Conflict",
                        absl::StrCat("Operation cannot be fulfilled on ", route.Qualified(), " \"",
                                     route.name, "\": Precondition failed: ", what,
                                     " in precondition: ", wanted, ", ", what, " in object meta: ", actual),
                        Details(route, route.name)));
  };
  if (const std::string uid = StringAt(preconditions, {"uid"}); !uid.empty()) {
    if (const std::string actual = StringAt(*current, {"metadata", "uid"}); uid != actual) {
      return conflict("UID", uid, actual);
    }
  }
  if (const std::string rv = StringAt(preconditions, {"resourceVersion"}); !rv.empty()) {
    if (const std::string actual = StringAt(*current, {"metadata", "resourceVersion"}); rv != actual) {
      return conflict("ResourceVersion", rv, actual);
    }
  }
  if (IsTerminating(*current)) return JsonReply(200, *current);
  if (!grace.has_value()) {
    grace = route.resource == "pods"
                ? current->value("spec", Json::object()).value("terminationGracePeriodSeconds", 30)
                : 0;
  }
  Json deleted = *current;
  deleted["metadata"]["deletionTimestamp"] = Rfc3339(clock_->Now() + absl::Seconds(*grace));
  deleted["metadata"]["deletionGracePeriodSeconds"] = *grace;
  Json last = store_.Put(key, std::move(deleted));
  if (route.resource != "pods" || *grace == 0 || deletion_mode_ == DeletionMode::kImmediate) {
    finalized_.insert(key);
    MaybeRemove(key);
  }
  changed_.notify_all();
  return JsonReply(200, last);
}

FakeKubeApiServer::Reply FakeKubeApiServer::Patch(const Route& route, const httplib::Request& req) {
  if (!absl::StartsWith(req.get_header_value("Content-Type"), "application/merge-patch+json")) {
    return JsonReply(415,
                     StatusJson(415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format - accepted media types "
                                "include: application/json-patch+json, application/merge-patch+json, "
                                "application/apply-patch+yaml"));
  }
  const Json patch = Json::parse(req.body, nullptr, false);
  if (patch.is_discarded() || !patch.is_object()) {
    return JsonReply(400, StatusJson(400, "BadRequest", "error decoding patch: invalid JSON"));
  }
  const std::string kind = KindOf(route.resource);
  const ObjectKey key = route.Key();
  std::lock_guard<std::mutex> lock(mu_);
  const Json* current = store_.Get(key);
  if (current == nullptr) {
    return JsonReply(
        404, StatusJson(404, "NotFound", absl::StrCat(route.Qualified(), " \"", route.name, "\" not found"),
                        Details(route, route.name)));
  }
  if (const std::string rv = StringAt(patch, {"metadata", "resourceVersion"});
      !rv.empty() && rv != StringAt(*current, {"metadata", "resourceVersion"})) {
    return JsonReply(409, StatusJson(409, "Conflict",
                                     absl::StrCat("Operation cannot be fulfilled on ", route.Qualified(),
                                                  " \"", route.name,
                                                  "\": the object has been modified; please apply your "
                                                  "changes to the latest version and try again"),
                                     Details(route, route.name)));
  }
  Json patched = *current;
  patched.merge_patch(patch);
  if (route.subresource == "status") {
    Json only_status = *current;
    only_status["status"] = patched.value("status", Json::object());
    patched = std::move(only_status);
  } else if (current->contains("status")) {
    patched["status"] = current->at("status");
  }
  for (const char* field : {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                            "deletionGracePeriodSeconds", "managedFields"}) {
    if (current->at("metadata").contains(field)) {
      patched["metadata"][field] = current->at("metadata").at(field);
    } else {
      patched["metadata"].erase(field);
    }
  }
  DropEmptyMetadata(patched["metadata"]);
  Json causes = Json::array();
  ValidateMetadata(patched["metadata"], causes);
  if (route.resource == "pods" && patched.value("spec", Json()) != current->value("spec", Json())) {
    causes.push_back(
        Json{{"reason", "FieldValueForbidden"},
             {"message",
              "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
              "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only "
              "additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it "
              "to be set to 1 if it was previously negative)"},
             {"field", "spec"}});
  }
  if (!causes.empty()) {
    return JsonReply(422, StatusJson(422, "Invalid", InvalidMessage(kind, route.name, causes),
                                     Json{{"name", route.name}, {"kind", kind}, {"causes", causes}}));
  }
  if (patched == *current) return JsonReply(200, *current);  // a no-op keeps the resourceVersion
  Json stored = store_.Put(key, std::move(patched));
  MaybeRemove(key);  // finalizers removed from a terminating object
  changed_.notify_all();
  return JsonReply(200, stored);
}

void FakeKubeApiServer::ServeWatch(const Route& route, const httplib::Request& req, httplib::Response& res) {
  auto watch = std::make_shared<Watch>();
  watch->route = route;
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(req.get_param_value("labelSelector"));
  if (!selector.ok()) {
    res.status = 400;
    res.set_content(StatusJson(400, "BadRequest", selector.status().message()).dump(), "application/json");
    return;
  }
  watch->selector = *std::move(selector);
  watch->bookmarks = IsTrue(req.get_param_value("allowWatchBookmarks"));
  int64_t timeout_seconds = 0;
  if (!absl::SimpleAtoi(req.get_param_value("timeoutSeconds"), &timeout_seconds)) timeout_seconds = 0;
  watch->end = timeout_seconds > 0 ? std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds)
                                   : std::chrono::steady_clock::time_point::max();
  const std::string from = req.get_param_value("resourceVersion");
  {
    std::lock_guard<std::mutex> lock(mu_);
    watch->bookmark_generation = bookmark_generation_;
    watch->close_generation = close_generation_;
    watch->cut_generation = cut_generation_;
    int64_t rv = 0;
    if (from.empty() || from == "0") {
      for (const auto& [key, object] : store_.List(route.group_version, route.resource, route.ns)) {
        if (watch->selector.Matches(LabelsOf(*object))) watch->pending += EventLine("ADDED", route, *object);
      }
      watch->sent = store_.resource_version();
    } else if (!absl::SimpleAtoi(from, &rv)) {
      res.status = 400;
      res.set_content(
          StatusJson(400, "BadRequest", absl::StrCat("invalid resource version: \"", from, "\"")).dump(),
          "application/json");
      return;
    } else if (rv < store_.compacted()) {
      watch->pending = EventLine(
          "ERROR", route,
          StatusJson(410, "Expired",
                     absl::StrCat("too old resource version: ", rv, " (", store_.compacted(), ")")));
      watch->finished = true;
    } else {
      watch->sent = rv;
    }
    ++open_watches_;
  }
  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  res.set_chunked_content_provider(
      "application/json",
      [this, watch](size_t, httplib::DataSink& sink) {
        std::string out;
        bool end = false;
        bool cut = false;
        {
          std::unique_lock<std::mutex> lock(mu_);
          out = std::move(watch->pending);
          watch->pending.clear();
          end = watch->finished;
          while (out.empty() && !end) {
            for (const StoredEvent& event : store_.EventsAfter(watch->sent)) {
              watch->sent = event.resource_version;
              const ObjectKey& key = event.key;
              if (key.group_version != watch->route.group_version || key.resource != watch->route.resource ||
                  (!watch->route.ns.empty() && key.ns != watch->route.ns)) {
                continue;
              }
              const bool now = event.type != "DELETED" && watch->selector.Matches(LabelsOf(event.object));
              const bool was = !event.previous.is_null() && watch->selector.Matches(LabelsOf(event.previous));
              if (event.type == "DELETED") {
                if (was) out += EventLine("DELETED", watch->route, event.object);
              } else if (now) {
                out += EventLine(was ? "MODIFIED" : "ADDED", watch->route, event.object);
              } else if (was) {
                out += EventLine("DELETED", watch->route, event.object);
              }
            }
            if (watch->bookmarks && watch->bookmark_generation != bookmark_generation_) {
              watch->bookmark_generation = bookmark_generation_;
              out += EventLine(
                  "BOOKMARK", watch->route,
                  Json{{"metadata", {{"resourceVersion", std::to_string(store_.resource_version())}}}});
            }
            if (watch->cut_generation != cut_generation_) {
              cut = true;
              end = true;
            }
            if (stopping_ || watch->close_generation != close_generation_ ||
                std::chrono::steady_clock::now() >= watch->end) {
              end = true;
            }
            if (out.empty() && !end) changed_.wait_for(lock, std::chrono::milliseconds(200));
          }
        }
        if (cut) {
          // Half an event line, then the connection breaks: the client must drop it, not apply it.
          if (out.empty()) out = R"({"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"cut)";
          sink.write(out.data(), out.size() / 2);
          return false;
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (end) sink.done();
        return true;
      },
      [this](bool) {
        std::lock_guard<std::mutex> lock(mu_);
        --open_watches_;
      });
}

}  // namespace fna::fake_kube
