#ifndef FNA_AGENT_NEPTUNE_FAKE_NEPTUNE_TRANSPORT_H_
#define FNA_AGENT_NEPTUNE_FAKE_NEPTUNE_TRANSPORT_H_

// For tests only: an http::HttpTransport that plays a Neptune 2.x server in memory.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/http/http_transport.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {

// A fake Neptune behind a fake transport: serves clients/config, oauth-token, the OpenID refresh,
// projects/get, experiments (idempotent by customId), attributes/operations (applied to an in-memory
// attribute map) and ping, checking the API token (its api_key) and bearer tokens. Access tokens are JWTs
// ("none" signature) expiring `token_lifetime` after issue on the given clock. Every request is recorded.
// Faults: Inject() answers the next n requests whose path contains a string with a canned response or
// transport error instead. Thread-safe.
class FakeNeptuneTransport final : public http::HttpTransport {
 public:
  static constexpr absl::string_view kBase = "https://neptune.test";
  static constexpr absl::string_view kApiBase = "https://api.neptune.test";
  static constexpr absl::string_view kAppBase = "https://app.neptune.test";
  static constexpr absl::string_view kIssuer = "https://api.neptune.test/auth/realms/neptune";

  struct Run {
    std::string id;
    std::string short_id;
    std::string project_id;
    std::string custom_id;
    std::map<std::string, nlohmann::json> attributes;  // path -> {"type": ..., "value": ...}
    int pings = 0;
  };

  FakeNeptuneTransport(const Clock* clock, std::string api_token)
      : clock_(clock), api_token_(std::move(api_token)) {
    projects_["ws/proj"] = "11111111-1111-4111-8111-111111111111";
    projects_["ws/other"] = "22222222-2222-4222-8222-222222222222";
  }

  // The token of an API key for this fake: base64 of {"api_address": kBase, "api_key": key}.
  static std::string MakeApiToken(absl::string_view key = "secret-api-key-0123456789") {
    nlohmann::json token = {{"api_address", std::string(kBase)}, {"api_key", std::string(key)}};
    return absl::Base64Escape(token.dump());
  }

  absl::StatusOr<http::HttpResponse> Send(const http::HttpRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (absl::StrContains(request.url, it->path_part) && it->remaining > 0) {
        if (--it->remaining == 0) {
          auto result = it->result;
          faults_.erase(it);
          return result;
        }
        return it->result;
      }
    }
    return Serve(request);
  }

  // The next `n` requests whose URL contains `path_part` get `result`.
  void Inject(absl::string_view path_part, int n, absl::StatusOr<http::HttpResponse> result) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.push_back(Fault{std::string(path_part), n, std::move(result)});
  }
  static http::HttpResponse Response(int status, std::string body = "",
                                     std::vector<http::HttpHeader> headers = {}) {
    http::HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    return response;
  }

  // Makes every access token issued so far answer 401 AUTHORIZATION_TOKEN_EXPIRED.
  void ExpireAccessTokens() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [token, expiry] : access_tokens_) expiry = absl::InfinitePast();
  }
  // Refuses refresh requests (400 invalid_grant) from now on.
  void RefuseRefreshes(bool refuse) {
    std::lock_guard<std::mutex> lock(mu_);
    refuse_refresh_ = refuse;
  }
  void set_token_lifetime(absl::Duration lifetime) {
    std::lock_guard<std::mutex> lock(mu_);
    token_lifetime_ = lifetime;
  }
  // Answers every operation with this many leading errors (0: none).
  void set_operation_errors(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    operation_errors_ = n;
  }

  std::vector<http::HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // "METHOD path?query" of each request, the origin dropped.
  std::vector<std::string> RequestLines() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> lines;
    for (const http::HttpRequest& request : requests_)
      lines.push_back(absl::StrCat(request.method, " ", Target(request.url)));
    return lines;
  }
  void ClearRequests() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.clear();
  }
  std::vector<Run> runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Run> result;
    for (const auto& [id, run] : runs_) result.push_back(run);
    return result;
  }
  std::string last_access_token() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_access_token_;
  }

  static std::string Target(const std::string& url) {
    const size_t scheme = url.find("://");
    const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return slash == std::string::npos ? "/" : url.substr(slash);
  }
  static const std::string* Header(const http::HttpRequest& request, absl::string_view name) {
    for (const http::HttpHeader& header : request.headers) {
      if (absl::EqualsIgnoreCase(header.name, name)) return &header.value;
    }
    return nullptr;
  }
  static std::string Query(const std::string& url, absl::string_view key) {
    const size_t q = url.find('?');
    if (q == std::string::npos) return "";
    for (absl::string_view pair : absl::StrSplit(absl::string_view(url).substr(q + 1), '&')) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.first == key) return Decode(kv.second);
    }
    return "";
  }
  static std::string Decode(absl::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '%' && i + 2 < text.size()) {
        int value = 0;
        if (absl::SimpleHexAtoi(text.substr(i + 1, 2), &value)) {
          out.push_back(static_cast<char>(value));
          i += 2;
          continue;
        }
      }
      out.push_back(text[i] == '+' ? ' ' : text[i]);
    }
    return out;
  }

 private:
  struct Fault {
    std::string path_part;
    int remaining;
    absl::StatusOr<http::HttpResponse> result;
  };

  static http::HttpResponse Json(int status, const nlohmann::json& body) {
    return Response(status, body.dump());
  }
  static http::HttpResponse Error(int status, absl::string_view type, absl::string_view title) {
    return Json(status, {{"errorType", std::string(type)}, {"title", std::string(title)}});
  }

  std::string MintJwt() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time expiry = clock_->Now() + token_lifetime_;
    nlohmann::json payload = {{"exp", absl::ToUnixSeconds(expiry)},
                              {"azp", "neptune-client"},
                              {"iss", std::string(kIssuer)},
                              {"n", ++minted_}};
    std::string token =
        absl::StrCat(absl::WebSafeBase64Escape(R"({"alg":"none","typ":"JWT"})"), ".",
                     absl::WebSafeBase64Escape(payload.dump()), ".c2lnbmF0dXJlLXNpZ25hdHVyZQ");
    access_tokens_[token] = expiry;
    last_access_token_ = token;
    return token;
  }

  // Whether the request's API token carries the api_key of the token the fake was made with.
  bool ApiTokenOk(const http::HttpRequest& request) const {
    const std::string* token = Header(request, "X-Neptune-Api-Token");
    return token != nullptr && !ApiKey(*token).empty() && ApiKey(*token) == ApiKey(api_token_);
  }
  static std::string ApiKey(const std::string& token) {
    std::string decoded;
    if (!absl::Base64Unescape(token, &decoded)) return "";
    const nlohmann::json json = nlohmann::json::parse(decoded, nullptr, false);
    if (!json.is_object() || !json.contains("api_key") || !json["api_key"].is_string()) return "";
    return json["api_key"].get<std::string>();
  }

  // The 401 for a request whose bearer is missing, unknown or expired; nullopt when it is fine.
  std::optional<http::HttpResponse> CheckBearer(const http::HttpRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string* auth = Header(request, "Authorization");
    if (auth == nullptr || !absl::StartsWith(*auth, "Bearer "))
      return Error(401, "UNAUTHORIZED", "no bearer");
    auto it = access_tokens_.find(auth->substr(7));
    if (it == access_tokens_.end()) return Error(401, "UNAUTHORIZED", "unknown bearer");
    if (clock_->Now() >= it->second)
      return Error(401, "AUTHORIZATION_TOKEN_EXPIRED", "Authorization token expired");
    return std::nullopt;
  }

  http::HttpResponse Serve(const http::HttpRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string target = Target(request.url);
    const std::string path = target.substr(0, target.find('?'));
    if (path == "/api/backend/v1/clients/config") {
      if (!absl::StartsWith(request.url, kBase)) return Response(404);
      return Json(200, {{"apiUrl", std::string(kApiBase)},
                        {"applicationUrl", std::string(kAppBase)},
                        {"pyLibVersions", {{"minRecommendedVersion", nullptr}}},
                        {"security", {{"clientId", "neptune-client"}, {"openIdDiscovery", ""}}}});
    }
    if (!absl::StartsWith(request.url, kApiBase)) return Response(404);
    if (path == "/api/backend/v1/authorization/oauth-token") {
      if (!ApiTokenOk(request)) return Error(401, "API_TOKEN_INVALID", "Invalid API token");
      const std::string refresh = absl::StrCat("refresh-", ++minted_);
      refresh_tokens_.insert(refresh);
      return Json(200, {{"accessToken", MintJwt()}, {"refreshToken", refresh}, {"username", "agent"}});
    }
    if (path == "/auth/realms/neptune/protocol/openid-connect/token") {
      std::map<std::string, std::string> form;
      for (absl::string_view pair : absl::StrSplit(request.body, '&')) {
        std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
        form[std::string(kv.first)] = Decode(kv.second);
      }
      if (refuse_refresh_ || form["grant_type"] != "refresh_token" || form["client_id"] != "neptune-client" ||
          refresh_tokens_.count(form["refresh_token"]) == 0) {
        return Json(400, {{"error", "invalid_grant"}, {"error_description", "Invalid refresh token"}});
      }
      const std::string refresh = absl::StrCat("refresh-", ++minted_);
      refresh_tokens_.insert(refresh);
      return Json(200, {{"access_token", MintJwt()},
                        {"refresh_token", refresh},
                        {"expires_in", absl::ToInt64Seconds(token_lifetime_)}});
    }
    if (auto denied = CheckBearer(request); denied.has_value()) return *denied;
    if (path == "/api/backend/v1/projects/get") {
      auto it = projects_.find(Query(request.url, "projectIdentifier"));
      if (it == projects_.end()) return Error(404, "PROJECT_NOT_FOUND", "Project not found");
      const std::vector<std::string> parts = absl::StrSplit(it->first, '/');
      return Json(200, {{"id", it->second},
                        {"name", parts[1]},
                        {"organizationName", parts[0]},
                        {"projectKey", "PROJ"},
                        {"version", 2}});
    }
    if (path == "/api/leaderboard/v1/experiments" && request.method == "POST") {
      const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
      if (!body.is_object() || body.value("type", "") != "run") return Error(400, "BAD_REQUEST", "bad body");
      const std::string project_id = body.value("projectIdentifier", "");
      bool known = false;
      for (const auto& [name, id] : projects_) known = known || id == project_id;
      if (!known) return Error(404, "PROJECT_NOT_FOUND", "Project not found");
      const std::string custom = body.value("customId", "");
      for (const auto& [id, run] : runs_) {
        if (run.project_id == project_id && !custom.empty() && run.custom_id == custom)
          return Experiment(run);
      }
      Run run;
      run.id = absl::StrCat("00000000-0000-4000-8000-", absl::StrFormat("%012d", runs_.size() + 1));
      run.short_id = absl::StrCat("PROJ-", runs_.size() + 1);
      run.project_id = project_id;
      run.custom_id = custom;
      runs_[run.id] = run;
      return Experiment(run);
    }
    if (path == "/api/leaderboard/v1/attributes/operations") {
      auto it = runs_.find(Query(request.url, "experimentId"));
      if (it == runs_.end()) return Error(404, "EXPERIMENT_NOT_FOUND", "Experiment not found");
      const nlohmann::json ops = nlohmann::json::parse(request.body, nullptr, false);
      if (!ops.is_array()) return Error(400, "BAD_REQUEST", "not an array");
      nlohmann::json errors = nlohmann::json::array();
      for (size_t i = 0; i < ops.size(); ++i) {
        if (static_cast<int>(i) < operation_errors_) {
          errors.push_back({{"errorType", "metadata_inconsistency"}, {"errorDescription", "refused"}});
          continue;
        }
        const nlohmann::json& op = ops[i];
        for (const auto& [key, value] : op.items()) {
          if (key == "path") continue;
          nlohmann::json& attribute = it->second.attributes[op["path"].get<std::string>()];
          if (key == "insertStrings") {
            attribute["type"] = "stringSet";
            for (const auto& v : value["values"]) attribute["values"].push_back(v);
          } else {
            attribute["type"] = key;
            attribute["value"] = value.contains("value") ? value["value"] : value["valueMilliseconds"];
          }
        }
      }
      return Json(200, errors);
    }
    if (path == "/api/leaderboard/v1/attributes/ping") {
      auto it = runs_.find(Query(request.url, "experimentId"));
      if (it == runs_.end()) return Error(404, "EXPERIMENT_NOT_FOUND", "Experiment not found");
      ++it->second.pings;
      return Response(200);
    }
    return Response(404);
  }

  static http::HttpResponse Experiment(const Run& run) {
    return Json(200, {{"id", run.id},
                      {"shortId", run.short_id},
                      {"organizationId", "33333333-3333-4333-8333-333333333333"},
                      {"organizationName", "ws"},
                      {"projectId", run.project_id},
                      {"projectName", "proj"},
                      {"parentId", run.project_id},
                      {"type", "run"},
                      {"trashed", false},
                      {"customId", run.custom_id}});
  }

  const Clock* const clock_;
  const std::string api_token_;
  mutable std::mutex mu_;
  std::vector<http::HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> projects_ ABSL_GUARDED_BY(mu_);  // ws/proj -> uuid
  std::map<std::string, Run> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> access_tokens_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refresh_tokens_ ABSL_GUARDED_BY(mu_);
  std::string last_access_token_ ABSL_GUARDED_BY(mu_);
  absl::Duration token_lifetime_ ABSL_GUARDED_BY(mu_) = absl::Minutes(5);
  bool refuse_refresh_ ABSL_GUARDED_BY(mu_) = false;
  int operation_errors_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t minted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fna::neptune

#endif  // FNA_AGENT_NEPTUNE_FAKE_NEPTUNE_TRANSPORT_H_
