#include "tests/neptune_emulator/emulator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/testing/fake_clock.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/neptune_emulator/swagger_validator.h"
#include "tests/neptune_emulator/websocket.h"

extern char** environ;

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kProject[] = "ws/proj";
constexpr char kConfigPath[] = "/api/backend/v1/clients/config";
constexpr char kOauthPath[] = "/api/backend/v1/authorization/oauth-token";
constexpr char kTokenPath[] = "/auth/realms/neptune/protocol/openid-connect/token";
constexpr char kProjectPath[] = "/api/backend/v1/projects/get";
constexpr char kExperimentsPath[] = "/api/leaderboard/v1/experiments";
constexpr char kAttributesPath[] = "/api/leaderboard/v1/attributes";
constexpr char kOperationsPath[] = "/api/leaderboard/v1/attributes/operations";
constexpr char kPingPath[] = "/api/leaderboard/v1/attributes/ping";

// The Swagger documents, loaded independently of the emulator, to check its responses.
const SwaggerSpec& Spec(const std::string& name) {
  static const auto* const specs = [] {
    auto* m = new std::map<std::string, std::unique_ptr<SwaggerSpec>>();
    for (const char* n : {"backend", "leaderboard"}) {
      auto spec = SwaggerSpec::Load(DefaultSpecsDir() + "/" + n + ".json");
      if (!spec.ok()) std::abort();
      (*m)[n] = *std::move(spec);
    }
    return m;
  }();
  return *specs->at(name);
}

// Checks `body` against the schema the documents declare for `method path` and `status`.
void ExpectMatchesSpec(const std::string& method, const std::string& path, int status,
                       const std::string& body) {
  const SwaggerSpec* spec = &Spec("backend");
  const SwaggerSpec::Operation* op = spec->FindOperation(method, path);
  if (op == nullptr) {
    spec = &Spec("leaderboard");
    op = spec->FindOperation(method, path);
  }
  ASSERT_NE(op, nullptr) << method << " " << path;
  const json parsed = body.empty() ? json() : json::parse(body);
  absl::Status valid = spec->ValidateResponse(*op, status, parsed);
  EXPECT_TRUE(valid.ok()) << method << " " << path << ": " << valid << "\n" << body;
}

json JwtPayload(const std::string& jwt) {
  std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  EXPECT_EQ(parts.size(), 3u) << jwt;
  std::string payload;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(parts.at(1), &payload));
  return json::parse(payload);
}

httplib::Headers Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { StartEmulator(NeptuneEmulator::Options()); }

  void StartEmulator(NeptuneEmulator::Options options) {
    client_.reset();
    emulator_.reset();
    options.clock = &clock_;
    options.projects = {{kProject, "PROJ"}};
    auto emulator = NeptuneEmulator::Start(std::move(options));
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    client_ = NewClient();
  }

  std::unique_ptr<httplib::Client> NewClient() {
    auto client = std::make_unique<httplib::Client>(emulator_->base_url());
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);
    client->set_read_timeout(10, 0);
    return client;
  }

  std::string Exchange() {
    auto res = client_->Get(kOauthPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : httplib::to_string(res.error()));
    return res ? json::parse(res->body).value("accessToken", "") : "";
  }

  // Exchanges the API token, looks the project up and creates (or gets) a run; returns its Experiment JSON.
  json CreateRun(const std::string& custom_id = "") {
    if (token_.empty()) token_ = Exchange();
    json body = {{"projectIdentifier", ProjectId()},
                 {"parentId", ProjectId()},
                 {"type", "run"},
                 {"cliVersion", "fna-test"}};
    if (!custom_id.empty()) body["customId"] = custom_id;
    auto res = client_->Post(kExperimentsPath, Bearer(token_), body.dump(), "application/json");
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : httplib::to_string(res.error()));
    return res ? json::parse(res->body) : json();
  }

  std::string ProjectId() {
    auto projects = emulator_->Projects();
    return projects.empty() ? "" : projects[0].id;
  }

  httplib::Result Execute(const std::string& run_id, const json& operations) {
    return client_->Post(absl::StrCat(kOperationsPath, "?experimentId=", run_id), Bearer(token_),
                         operations.dump(), "application/json");
  }

  FakeClock clock_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::unique_ptr<httplib::Client> client_;
  std::string token_;
};

TEST_F(EmulatorTest, ServesTheSwaggerDocumentsWithoutHost) {
  for (const char* name : {"backend", "leaderboard"}) {
    auto res = client_->Get(absl::StrCat("/api/", name, "/swagger.json"));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    const json doc = json::parse(res->body);
    EXPECT_FALSE(doc.contains("host"));
    EXPECT_EQ(doc["swagger"], "2.0");
    EXPECT_EQ(doc["paths"].size(), Spec(name).document()["paths"].size());
  }
}

TEST_F(EmulatorTest, HappyPathFromConfigToAttributes) {
  // Client config, with the raw API token.
  auto config = client_->Get(absl::StrCat(kConfigPath, "?alpha=true"),
                             {{"X-Neptune-Api-Token", emulator_->api_token()}});
  ASSERT_TRUE(config);
  ASSERT_EQ(config->status, 200) << config->body;
  ExpectMatchesSpec("GET", kConfigPath, 200, config->body);
  const json cfg = json::parse(config->body);
  EXPECT_EQ(cfg["apiUrl"], emulator_->base_url());
  EXPECT_EQ(cfg["applicationUrl"], emulator_->base_url());
  EXPECT_TRUE(cfg["pyLibVersions"].is_object());
  EXPECT_EQ(cfg["multiPartUpload"]["enabled"], false);
  EXPECT_EQ(cfg["artifacts"]["enabled"], false);
  EXPECT_EQ(cfg["sysNameSetByBackend"], false);
  EXPECT_EQ(cfg["security"]["clientId"], kDefaultClientId);

  // OIDC discovery, for neptune-scale-style clients.
  auto discovery =
      client_->Get(std::string(cfg["security"]["openIdDiscovery"]).substr(emulator_->base_url().size()));
  ASSERT_TRUE(discovery);
  EXPECT_EQ(json::parse(discovery->body)["token_endpoint"], emulator_->base_url() + kTokenPath);

  // API token → JWTs.
  auto oauth = client_->Get(kOauthPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  ASSERT_TRUE(oauth);
  ASSERT_EQ(oauth->status, 200) << oauth->body;
  ExpectMatchesSpec("GET", kOauthPath, 200, oauth->body);
  const json tokens = json::parse(oauth->body);
  EXPECT_EQ(tokens["username"], "emulator-user");
  const json claims = JwtPayload(tokens["accessToken"]);
  EXPECT_EQ(claims["iss"], emulator_->base_url() + kRealmPath);
  EXPECT_EQ(claims["azp"], kDefaultClientId);
  EXPECT_EQ(claims["exp"], absl::ToUnixSeconds(clock_.Now() + absl::Minutes(5)));
  EXPECT_EQ(JwtPayload(tokens["refreshToken"])["typ"], "Refresh");

  // Refresh, as the 1.x client does right away: {iss}/protocol/openid-connect/token.
  const std::string form = absl::StrCat("grant_type=refresh_token&client_id=", std::string(claims["azp"]),
                                        "&refresh_token=", std::string(tokens["refreshToken"]));
  auto refreshed = client_->Post(kTokenPath, {{"Accept", "application/json"}}, form,
                                 "application/x-www-form-urlencoded;charset=UTF-8");
  ASSERT_TRUE(refreshed);
  ASSERT_EQ(refreshed->status, 200) << refreshed->body;
  const json refresh = json::parse(refreshed->body);
  EXPECT_EQ(refresh["token_type"], "Bearer");
  EXPECT_EQ(refresh["expires_in"], 300);
  EXPECT_TRUE(refresh["refresh_token"].is_string());
  token_ = refresh["access_token"];

  // Project lookup.
  auto project = client_->Get(absl::StrCat(kProjectPath, "?projectIdentifier=", kProject), Bearer(token_));
  ASSERT_TRUE(project);
  ASSERT_EQ(project->status, 200) << project->body;
  ExpectMatchesSpec("GET", kProjectPath, 200, project->body);
  const json project_dto = json::parse(project->body);
  EXPECT_EQ(project_dto["version"], 2);
  EXPECT_EQ(project_dto["projectKey"], "PROJ");
  EXPECT_EQ(project_dto["organizationName"], "ws");
  EXPECT_EQ(project_dto["name"], "proj");
  const std::string project_id = project_dto["id"];

  // createExperiment twice with one customId: one run.
  const json create = {{"projectIdentifier", project_id},
                       {"parentId", project_id},
                       {"type", "run"},
                       {"cliVersion", "1.14.1"},
                       {"customId", "flyte-attempt-1"}};
  httplib::Headers headers = Bearer(token_);
  headers.emplace("X-Neptune-CliVersion", "1.14.1");
  auto first = client_->Post(kExperimentsPath, headers, create.dump(), "application/json");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  ExpectMatchesSpec("POST", kExperimentsPath, 200, first->body);
  auto second = client_->Post(kExperimentsPath, headers, create.dump(), "application/json");
  ASSERT_TRUE(second);
  ASSERT_EQ(second->status, 200) << second->body;
  const json run = json::parse(first->body);
  EXPECT_EQ(json::parse(second->body), run);
  EXPECT_EQ(run["shortId"], "PROJ-1");
  EXPECT_EQ(run["customId"], "flyte-attempt-1");
  EXPECT_EQ(run["projectId"], project_id);
  EXPECT_EQ(run["type"], "run");
  const std::string run_id = run["id"];
  // Another custom id (or none) is another run.
  EXPECT_EQ(CreateRun("flyte-attempt-2")["shortId"], "PROJ-2");
  EXPECT_EQ(CreateRun()["shortId"], "PROJ-3");

  // getExperiment by UUID and by qualified short id.
  for (const std::string& id : {run_id, std::string("ws/proj/PROJ-1")}) {
    auto got = client_->Get(absl::StrCat(kExperimentsPath, "?experimentId=", id), Bearer(token_));
    ASSERT_TRUE(got);
    ASSERT_EQ(got->status, 200) << got->body;
    ExpectMatchesSpec("GET", kExperimentsPath, 200, got->body);
    EXPECT_EQ(json::parse(got->body)["id"], run_id);
  }

  // executeOperations with every operation type.
  const json operations = json::parse(R"json([
    {"path": "sys/name", "assignString": {"value": "my run"}},
    {"path": "sys/description", "assignString": {"value": "a description"}},
    {"path": "sys/tags", "insertStrings": {"values": ["flyte", "agent", "tmp"]}},
    {"path": "sys/tags", "removeStrings": {"values": ["tmp"]}},
    {"path": "sys/group_tags", "insertStrings": {"values": ["exec-1"]}},
    {"path": "sys/failed", "assignBool": {"value": false}},
    {"path": "sys/hostname", "assignString": {"value": "node-1"}},
    {"path": "flyte/project", "assignString": {"value": "flytesnacks"}},
    {"path": "flyte/retry_attempt", "assignInt": {"value": 2}},
    {"path": "flyte/duration_seconds", "assignFloat": {"value": 1.5}},
    {"path": "flyte/started_at", "assignDatetime": {"valueMilliseconds": 1767225600123}},
    {"path": "flyte/cached", "assignBool": {"value": true}},
    {"path": "flyte/complex", "assignComplex": {"__type": {"name": "T"}, "__content": "c"}},
    {"path": "metrics/loss", "configFloatSeries": {"min": 0, "max": 10, "unit": "nats"}},
    {"path": "metrics/loss", "logFloats": {"entries": [
      {"value": 0.5, "step": 1, "timestampMilliseconds": 1767225600000},
      {"value": 0.25, "timestampMilliseconds": 1767225601000}]}},
    {"path": "metrics/old", "logFloats": {"entries": [{"value": 1, "timestampMilliseconds": 1}]}},
    {"path": "metrics/old", "clearFloatSeries": {}},
    {"path": "logs/out", "logStrings": {"entries": [{"value": "hello", "timestampMilliseconds": 3}]}},
    {"path": "logs/err", "logStrings": {"entries": [{"value": "x", "timestampMilliseconds": 3}]}},
    {"path": "logs/err", "clearStringSeries": {}},
    {"path": "images/a", "logImages": {"entries": [
      {"value": {"data": "aGVsbG8=", "name": "n", "description": "d"}, "timestampMilliseconds": 4}]}},
    {"path": "images/b", "logImages": {"entries": [{"timestampMilliseconds": 4}]}},
    {"path": "images/b", "clearImageSeries": {}},
    {"path": "set/s", "insertStrings": {"values": ["a"]}},
    {"path": "set/s", "clearStringSet": {}},
    {"path": "files", "deleteFiles": {"filePaths": ["a.txt"]}},
    {"path": "tmp/x", "assignString": {"value": "gone"}},
    {"path": "tmp/x", "deleteAttribute": {}}
  ])json");
  auto executed = Execute(run_id, operations);
  ASSERT_TRUE(executed);
  ASSERT_EQ(executed->status, 200) << executed->body;
  ExpectMatchesSpec("POST", kOperationsPath, 200, executed->body);
  EXPECT_EQ(json::parse(executed->body), json::array());

  // Ping: 200 with no content.
  clock_.Advance(absl::Seconds(10));
  auto ping = client_->Post(absl::StrCat(kPingPath, "?experimentId=", run_id), Bearer(token_), "", "");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
  EXPECT_EQ(ping->body, "");

  // Readback through the API, with exact types.
  auto attributes = client_->Get(absl::StrCat(kAttributesPath, "?experimentId=", run_id), Bearer(token_));
  ASSERT_TRUE(attributes);
  ASSERT_EQ(attributes->status, 200) << attributes->body;
  ExpectMatchesSpec("GET", kAttributesPath, 200, attributes->body);
  const json dto = json::parse(attributes->body);
  std::map<std::string, json> by_name;
  for (const json& a : dto["attributes"]) by_name[a["name"]] = a;
  auto type_of = [&](const std::string& path) {
    return by_name.count(path) ? by_name[path]["type"] : json();
  };
  EXPECT_EQ(type_of("flyte/project"), "string");
  EXPECT_EQ(by_name["flyte/project"]["stringProperties"]["value"], "flytesnacks");
  EXPECT_EQ(type_of("flyte/retry_attempt"), "int");
  EXPECT_EQ(by_name["flyte/retry_attempt"]["intProperties"]["value"], 2);
  EXPECT_EQ(type_of("flyte/duration_seconds"), "float");
  EXPECT_EQ(type_of("flyte/started_at"), "datetime");
  EXPECT_EQ(by_name["flyte/started_at"]["datetimeProperties"]["value"], "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(type_of("flyte/cached"), "bool");
  EXPECT_EQ(type_of("flyte/complex"), "complex");
  EXPECT_EQ(type_of("sys/tags"), "stringSet");
  EXPECT_EQ(by_name["sys/tags"]["stringSetProperties"]["values"], json({"agent", "flyte"}));
  EXPECT_EQ(type_of("metrics/loss"), "floatSeries");
  EXPECT_EQ(by_name["metrics/loss"]["floatSeriesProperties"]["last"], 0.25);
  EXPECT_EQ(by_name["metrics/loss"]["floatSeriesProperties"]["lastStep"], 2.0);
  EXPECT_EQ(type_of("logs/out"), "stringSeries");
  EXPECT_EQ(type_of("images/a"), "imageSeries");
  EXPECT_EQ(type_of("sys/state"), "experimentState");
  EXPECT_EQ(type_of("sys/ping_time"), "datetime");
  EXPECT_EQ(type_of("tmp/x"), json());
  EXPECT_EQ(type_of("files"), json());
  EXPECT_EQ(dto["systemAttributes"]["name"]["value"], "my run");
  EXPECT_EQ(dto["systemAttributes"]["shortId"]["value"], "PROJ-1");
  EXPECT_EQ(dto["systemAttributes"]["customId"]["value"], "flyte-attempt-1");
  EXPECT_EQ(dto["systemAttributes"]["state"]["value"], "running");
  EXPECT_EQ(dto["systemAttributes"]["hostname"]["value"], "node-1");

  // The same through the inspection API.
  std::optional<RunSnapshot> snapshot = emulator_->RunByCustomId(kProject, "flyte-attempt-1");
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->id, run_id);
  EXPECT_EQ(snapshot->short_id, "PROJ-1");
  EXPECT_EQ(snapshot->project, kProject);
  const auto& a = snapshot->attributes;
  EXPECT_EQ(a.at("sys/name"), (Attribute{"string", "my run", nullptr}));
  EXPECT_EQ(a.at("sys/description"), (Attribute{"string", "a description", nullptr}));
  EXPECT_EQ(a.at("sys/tags"), (Attribute{"stringSet", json({"agent", "flyte"}), nullptr}));
  EXPECT_EQ(a.at("sys/group_tags"), (Attribute{"stringSet", json({"exec-1"}), nullptr}));
  EXPECT_EQ(a.at("sys/failed"), (Attribute{"bool", false, nullptr}));
  EXPECT_EQ(a.at("sys/id"), (Attribute{"string", "PROJ-1", nullptr}));
  EXPECT_EQ(a.at("sys/custom_run_id"), (Attribute{"string", "flyte-attempt-1", nullptr}));
  EXPECT_EQ(a.at("sys/state"), (Attribute{"experimentState", "running", nullptr}));
  EXPECT_EQ(a.at("sys/ping_time"), (Attribute{"datetime", absl::ToUnixMillis(clock_.Now()), nullptr}));
  EXPECT_EQ(a.at("flyte/project"), (Attribute{"string", "flytesnacks", nullptr}));
  EXPECT_EQ(a.at("flyte/retry_attempt"), (Attribute{"int", 2, nullptr}));
  EXPECT_EQ(a.at("flyte/duration_seconds"), (Attribute{"float", 1.5, nullptr}));
  EXPECT_TRUE(a.at("flyte/duration_seconds").value.is_number_float());
  EXPECT_EQ(a.at("flyte/started_at"), (Attribute{"datetime", 1767225600123, nullptr}));
  EXPECT_EQ(a.at("flyte/cached"), (Attribute{"bool", true, nullptr}));
  EXPECT_EQ(a.at("flyte/complex"), (Attribute{"complex", {{"type", "T"}, {"content", "c"}}, nullptr}));
  EXPECT_EQ(a.at("metrics/loss"),
            (Attribute{"floatSeries",
                       json::parse(R"([{"step":1.0,"value":0.5,"timestampMilliseconds":1767225600000},
                                       {"step":2.0,"value":0.25,"timestampMilliseconds":1767225601000}])"),
                       {{"min", 0}, {"max", 10}, {"unit", "nats"}}}));
  EXPECT_EQ(a.at("metrics/old"), (Attribute{"floatSeries", json::array(), nullptr}));
  EXPECT_EQ(a.at("logs/out"),
            (Attribute{"stringSeries",
                       json::parse(R"([{"step":0.0,"value":"hello","timestampMilliseconds":3}])"), nullptr}));
  EXPECT_EQ(a.at("logs/err"), (Attribute{"stringSeries", json::array(), nullptr}));
  EXPECT_EQ(
      a.at("images/a").value,
      json::parse(R"([{"step":0.0,"timestampMilliseconds":4,"name":"n","description":"d","dataLength":8}])"));
  EXPECT_EQ(a.at("images/b"), (Attribute{"imageSeries", json::array(), nullptr}));
  EXPECT_EQ(a.at("set/s"), (Attribute{"stringSet", json::array(), nullptr}));
  EXPECT_EQ(a.count("tmp/x"), 0u);
  EXPECT_EQ(a.count("files"), 0u);
  EXPECT_EQ(emulator_->RunById("PROJ-1")->id, run_id);
  EXPECT_EQ(emulator_->RunById(run_id)->short_id, "PROJ-1");
  EXPECT_EQ(emulator_->Runs().size(), 3u);

  // Listing projects and organizations, as the client does to suggest projects.
  auto list = client_->Get(
      "/api/backend/v1/projects?searchTerm=pro&limit=5&sortBy=lastViewed&"
      "sortDirection=descending&userRelation=memberOrHigher",
      Bearer(token_));
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  ExpectMatchesSpec("GET", "/api/backend/v1/projects", 200, list->body);
  EXPECT_EQ(json::parse(list->body)["entries"][0]["name"], "proj");
  auto orgs = client_->Get("/api/backend/v1/myOrganizations", Bearer(token_));
  ASSERT_TRUE(orgs);
  ASSERT_EQ(orgs->status, 200) << orgs->body;
  ExpectMatchesSpec("GET", "/api/backend/v1/myOrganizations", 200, orgs->body);
  EXPECT_EQ(json::parse(orgs->body)[0]["name"], "ws");

  // One kept-alive connection carried all of it.
  EXPECT_EQ(emulator_->ConnectionCount(), 1);
  EXPECT_EQ(emulator_->RequestCount("POST", kExperimentsPath), 4);
  EXPECT_EQ(emulator_->RequestCount("POST", kPingPath), 1);
}

struct Case {
  std::string name;
  std::string method;
  std::string path;  // with query
  httplib::Headers headers;
  std::string body;
  std::string content_type;
  int status;
  std::string message;  // substring of the response body
};

TEST_F(EmulatorTest, EveryOperationTheClientUsesRejectsBrokenRequests) {
  const std::string token = Exchange();
  const std::string run_id = CreateRun()["id"];
  const std::string api_token = emulator_->api_token();
  const std::string foreign_key_token = ApiTokenFor(emulator_->base_url(), "someone-else");
  const std::string project_id = ProjectId();
  const httplib::Headers auth = Bearer(token);
  const std::string ops = absl::StrCat(kOperationsPath, "?experimentId=", run_id);
  const std::string refresh_token =
      json::parse(client_->Get(kOauthPath, {{"X-Neptune-Api-Token", api_token}})->body)["refreshToken"];
  const char* const kForm = "application/x-www-form-urlencoded";
  const std::string create_ok = json({{"projectIdentifier", project_id}, {"type", "run"}}).dump();
  // clang-format off
  const std::vector<Case> cases = {
      // clients/config
      {"config without token", "GET", kConfigPath, {}, "", "", 401, "Missing X-Neptune-Api-Token"},
      {"config with a foreign token", "GET", kConfigPath, {{"X-Neptune-Api-Token", foreign_key_token}}, "", "", 401,
       "Invalid API token"},
      {"config with garbage", "GET", kConfigPath, {{"X-Neptune-Api-Token", "not a token"}}, "", "", 401,
       "Invalid API token"},
      // oauth-token
      {"oauth without header", "GET", kOauthPath, {}, "", "", 400, "header.X-Neptune-Api-Token: required"},
      {"oauth with a foreign key", "GET", kOauthPath, {{"X-Neptune-Api-Token", foreign_key_token}}, "", "", 401,
       R"({"code":401,"message":"Invalid API token: unknown api_key"})"},
      {"oauth with garbage", "GET", kOauthPath, {{"X-Neptune-Api-Token", "e30="}}, "", "", 401,
       "Invalid API token: API token has no api_address"},
      // refresh
      {"refresh without grant_type", "POST", kTokenPath, {}, "client_id=neptune-cli&refresh_token=x", kForm, 400,
       R"("error":"invalid_request")"},
      {"refresh with another grant", "POST", kTokenPath, {}, "grant_type=password&client_id=neptune-cli", kForm, 400,
       R"("error":"unsupported_grant_type")"},
      {"refresh as JSON", "POST", kTokenPath, {}, R"({"grant_type":"refresh_token"})", "application/json", 415,
       "invalid_request"},
      {"refresh with a bad token", "POST", kTokenPath, {},
       "grant_type=refresh_token&client_id=neptune-cli&refresh_token=a.b.c", kForm, 400, R"("error":"invalid_grant")"},
      {"refresh with an access token", "POST", kTokenPath, {},
       "grant_type=refresh_token&client_id=neptune-cli&refresh_token=" + token, kForm, 400,
       R"("error":"invalid_grant")"},
      {"refresh for another client", "POST", kTokenPath, {}, "grant_type=refresh_token&client_id=x&refresh_token=" +
       refresh_token, kForm, 401, R"("error":"invalid_client")"},
      {"refresh without client_id", "POST", kTokenPath, {}, "grant_type=refresh_token&refresh_token=" + refresh_token,
       kForm, 401, R"("error":"invalid_client")"},
      // projects/get
      {"project without identifier", "GET", kProjectPath, auth, "", "", 400, "query.projectIdentifier: required"},
      {"unknown project", "GET", absl::StrCat(kProjectPath, "?projectIdentifier=ws/nope"), auth, "", "", 404,
       "Project ws/nope not found"},
      {"project without bearer", "GET", absl::StrCat(kProjectPath, "?projectIdentifier=ws/proj"), {}, "", "", 401,
       "Missing Authorization header"},
      {"project with a forged bearer", "GET", absl::StrCat(kProjectPath, "?projectIdentifier=ws/proj"),
       Bearer(token.substr(0, token.rfind('.')) + ".AAAA"), "", "", 401, "Invalid access token"},
      // createExperiment
      {"create without body", "POST", kExperimentsPath, auth, "", "application/json", 400, "body: required"},
      {"create with a bad type", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"type", "runn"}}).dump(), "application/json", 400,
       R"(body.type: expected one of \"run\")"},
      {"create with a bad parentId", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"parentId", "p"}, {"type", "run"}}).dump(), "application/json", 400,
       R"(body.parentId: expected string (uuid), got \"p\")"},
      {"create with a numeric customId", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"type", "run"}, {"customId", 5}}).dump(), "application/json", 400,
       "body.customId: expected string, got 5"},
      {"create with a long customId", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"type", "run"}, {"customId", std::string(37, 'x')}}).dump(),
       "application/json", 400, "body.customId: longer than 36 characters"},
      {"create without type", "POST", kExperimentsPath, auth, json({{"projectIdentifier", project_id}}).dump(),
       "application/json", 400, "body.type: required"},
      {"create without project", "POST", kExperimentsPath, auth, json({{"type", "run"}}).dump(), "application/json",
       400, "body.projectIdentifier: required"},
      {"create in an unknown project", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", "ws/nope"}, {"type", "run"}}).dump(), "application/json", 404,
       "Project ws/nope not found"},
      {"create with another parent", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"parentId", run_id}, {"type", "run"}}).dump(), "application/json",
       400, "body.parentId: must be the project's id"},
      {"create with git info missing fields", "POST", kExperimentsPath, auth,
       json({{"projectIdentifier", project_id}, {"type", "run"}, {"gitInfo", {{"repositoryDirty", true}}}}).dump(),
       "application/json", 400, "body.gitInfo.attributeName: required"},
      {"create as text", "POST", kExperimentsPath, auth, create_ok, "text/plain", 415,
       "Content-Type 'text/plain' is not supported"},
      {"create without bearer", "POST", kExperimentsPath, {}, create_ok, "application/json", 401,
       "Missing Authorization header"},
      // getExperiment
      {"unknown experiment", "GET", absl::StrCat(kExperimentsPath, "?experimentId=ws/proj/PROJ-99"), auth, "", "", 404,
       R"("errorType":"EXPERIMENT_NOT_FOUND")"},
      // executeOperations
      {"operations with a string int", "POST", ops, auth,
       R"([{"path":"a","assignString":{"value":"v"}},{"path":"b","assignBool":{"value":true}},)"
       R"({"path":"c","assignFloat":{"value":1}},{"path":"d","assignInt":{"value":"x"}}])",
       "application/json", 400, R"(body[3].assignInt.value: expected integer (int32), got \"x\")"},
      {"operations with an int beyond int32", "POST", ops, auth, R"([{"path":"a","assignInt":{"value":2147483648}}])",
       "application/json", 400, "body[0].assignInt.value: expected integer (int32), got 2147483648 (out of range)"},
      {"operations with two operations in one", "POST", ops, auth,
       R"([{"path":"a","assignInt":{"value":1},"assignString":{"value":"v"}}])", "application/json", 400,
       "body[0]: more than one operation (assignInt, assignString)"},
      {"operations with no operation", "POST", ops, auth, R"([{"path":"a","cliVersion":"1"}])", "application/json",
       400, "body[0]: no operation"},
      {"operations without path", "POST", ops, auth, R"([{"assignInt":{"value":1}}])", "application/json", 400,
       "body[0].path: required"},
      {"operations with an empty segment", "POST", ops, auth, R"([{"path":"a//b","assignInt":{"value":1}}])",
       "application/json", 400, "body[0].path: empty segment"},
      {"operations without timestamp", "POST", ops, auth, R"([{"path":"m","logFloats":{"entries":[{"value":1}]}}])",
       "application/json", 400, "body[0].logFloats.entries[0].timestampMilliseconds: required"},
      {"operations as an object", "POST", ops, auth, R"({"path":"a"})", "application/json", 400,
       "body: expected array, got an object"},
      {"operations with a string step", "POST", ops, auth,
       R"([{"path":"m","logFloats":{"entries":[{"value":1,"step":"1","timestampMilliseconds":1}]}}])",
       "application/json", 400, R"(body[0].logFloats.entries[0].step: expected number (double), got \"1\")"},
      {"operations without experiment", "POST", kOperationsPath, auth, "[]", "application/json", 400,
       "query.experimentId: required"},
      {"operations on an unknown run", "POST", absl::StrCat(kOperationsPath, "?experimentId=", project_id), auth,
       "[]", "application/json", 404, "EXPERIMENT_NOT_FOUND"},
      {"operations as a form", "POST", ops, auth, "[]", kForm, 415,
       "Content-Type 'application/x-www-form-urlencoded' is not supported"},
      {"operations without bearer", "POST", ops, {}, "[]", "application/json", 401, "Missing Authorization header"},
      // ping
      {"ping without experiment", "POST", kPingPath, auth, "", "", 400, "query.experimentId: required"},
      {"ping of an unknown run", "POST", absl::StrCat(kPingPath, "?experimentId=", project_id), auth, "", "", 404,
       "EXPERIMENT_NOT_FOUND"},
      {"ping without bearer", "POST", absl::StrCat(kPingPath, "?experimentId=", run_id), {}, "", "", 401,
       "Missing Authorization header"},
      {"ping with a refresh token as bearer", "POST", absl::StrCat(kPingPath, "?experimentId=", run_id),
       Bearer(refresh_token), "", "", 401, "not an access token issued by this server"},
      {"ping with a malformed bearer", "POST", absl::StrCat(kPingPath, "?experimentId=", run_id), Bearer("x.y.z"), "",
       "", 401, "Invalid access token"},
      // attributes
      {"attributes of an unknown run", "GET", absl::StrCat(kAttributesPath, "?experimentId=nope"), auth, "", "", 404,
       "EXPERIMENT_NOT_FOUND"},
      // routes
      {"unknown path", "GET", "/api/leaderboard/v1/nope", auth, "", "", 404, "No endpoint GET"},
      {"wrong method", "DELETE", kPingPath, auth, "", "", 405, "not allowed"},
      {"operation not emulated", "GET", "/api/backend/v1/userProfile", auth, "", "", 501,
       "getUserProfile (GET /api/backend/v1/userProfile) is not implemented"},
  };
  // clang-format on
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    httplib::Request req;
    req.method = c.method;
    req.path = c.path;
    req.headers = c.headers;
    req.body = c.body;
    if (!c.content_type.empty()) req.set_header("Content-Type", c.content_type);
    auto res = client_->send(req);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, c.status) << res->body;
    EXPECT_THAT(res->body, HasSubstr(c.message));
    if (c.status != 415 && c.path != kTokenPath) {
      const json body = json::parse(res->body);
      EXPECT_EQ(body["code"], c.status);  // the backend document's Error shape
      EXPECT_TRUE(body["message"].is_string());
    }
  }
  // Nothing of that reached the run.
  EXPECT_THAT(emulator_->RunById(run_id)->attributes, Not(testing::Contains(testing::Key("a"))));
  EXPECT_EQ(emulator_->Runs().size(), 1u);
}

TEST_F(EmulatorTest, InconsistentOperationsAreReportedInA200) {
  const std::string run_id = CreateRun("inconsistent")["id"];
  auto first = Execute(run_id, json::parse(R"([
    {"path": "flyte/phase", "assignString": {"value": "RUNNING"}},
    {"path": "metrics/acc", "logFloats": {"entries": [{"value": 0.1, "step": 5, "timestampMilliseconds": 1}]}}
  ])"));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->body, "[]");

  auto res = Execute(run_id, json::parse(R"([
    {"path": "flyte/phase", "assignInt": {"value": 1}},
    {"path": "sys/state", "assignString": {"value": "idle"}},
    {"path": "sys/id", "assignString": {"value": "X-1"}},
    {"path": "sys/custom_run_id", "assignString": {"value": "other"}},
    {"path": "sys/creation_time", "assignDatetime": {"valueMilliseconds": 1}},
    {"path": "sys/ping_time", "assignDatetime": {"valueMilliseconds": 1}},
    {"path": "sys/owner", "assignString": {"value": "me"}},
    {"path": "sys/whatever", "assignString": {"value": "me"}},
    {"path": "sys/name", "assignInt": {"value": 1}},
    {"path": "sys/tags", "assignString": {"value": "t"}},
    {"path": "sys/name", "deleteAttribute": {}},
    {"path": "metrics/acc", "logFloats": {"entries": [{"value": 0.2, "step": 4, "timestampMilliseconds": 2}]}},
    {"path": "metrics/acc", "logFloats": {"entries": [
      {"value": 0.3, "step": 6, "timestampMilliseconds": 3}, {"value": 0.4, "step": 6, "timestampMilliseconds": 4}]}},
    {"path": "flyte/phase/sub", "assignString": {"value": "x"}},
    {"path": "flyte", "assignString": {"value": "x"}},
    {"path": "flyte/phase", "assignString": {"value": "DONE", "currentValueCond": "QUEUED"}},
    {"path": "flyte/name", "assignString": {"value": "ok"}},
    {"path": "metrics/acc", "logFloats": {"entries": [{"value": 0.5, "timestampMilliseconds": 5}]}}
  ])"));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  ExpectMatchesSpec("POST", kOperationsPath, 200, res->body);
  const json errors = json::parse(res->body);
  ASSERT_EQ(errors.size(), 16u) << errors.dump(2);
  for (const json& e : errors) EXPECT_EQ(e["errorType"], "metadata_inconsistency") << e;
  EXPECT_THAT(std::string(errors[0]["errorDescription"]),
              HasSubstr("flyte/phase: the attribute is of type string"));
  EXPECT_THAT(std::string(errors[1]["errorDescription"]), HasSubstr("sys/state: the attribute is read-only"));
  EXPECT_THAT(std::string(errors[10]["errorDescription"]),
              HasSubstr("Cannot delete system attribute sys/name"));
  EXPECT_THAT(std::string(errors[11]["errorDescription"]),
              HasSubstr("step 4 is not greater than the previous step 5"));
  EXPECT_THAT(std::string(errors[12]["errorDescription"]),
              HasSubstr("step 6 is not greater than the previous step 6"));
  EXPECT_THAT(std::string(errors[13]["errorDescription"]),
              HasSubstr("flyte/phase is an attribute, not a namespace"));
  EXPECT_THAT(std::string(errors[14]["errorDescription"]), HasSubstr("it is a namespace"));
  EXPECT_THAT(std::string(errors[15]["errorDescription"]), HasSubstr("current value is not \"QUEUED\""));

  // Failed operations changed nothing (a rejected batch of points is rejected whole); the others applied.
  const RunSnapshot run = *emulator_->RunById(run_id);
  EXPECT_EQ(run.attributes.at("flyte/phase"), (Attribute{"string", "RUNNING", nullptr}));
  EXPECT_EQ(run.attributes.at("flyte/name"), (Attribute{"string", "ok", nullptr}));
  EXPECT_EQ(run.attributes.at("sys/custom_run_id").value, "inconsistent");
  EXPECT_EQ(run.attributes.at("sys/name"), (Attribute{"string", "", nullptr}));
  EXPECT_EQ(run.attributes.count("sys/whatever"), 0u);
  EXPECT_EQ(run.attributes.at("metrics/acc").value,
            json::parse(R"([{"step":5.0,"value":0.1,"timestampMilliseconds":1},
                            {"step":6.0,"value":0.5,"timestampMilliseconds":5}])"));
}

TEST_F(EmulatorTest, ExpiredAccessTokensAre401AndRefreshRecovers) {
  token_ = Exchange();
  auto oauth = client_->Get(kOauthPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  const std::string refresh_token = json::parse(oauth->body)["refreshToken"];
  const std::string project = absl::StrCat(kProjectPath, "?projectIdentifier=", kProject);
  ASSERT_EQ(client_->Get(project, Bearer(token_))->status, 200);

  // Natural expiry on the emulator's clock.
  clock_.Advance(absl::Minutes(5));
  auto expired = client_->Get(project, Bearer(token_));
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->status, 401);
  EXPECT_EQ(json::parse(expired->body), json({{"code", 401},
                                              {"message", "Authorization token expired"},
                                              {"errorType", "AUTHORIZATION_TOKEN_EXPIRED"}}));

  auto refresh = [&](const std::string& token) {
    return client_->Post(kTokenPath, {},
                         "grant_type=refresh_token&client_id=neptune-cli&refresh_token=" + token,
                         "application/x-www-form-urlencoded");
  };
  auto refreshed = refresh(refresh_token);
  ASSERT_TRUE(refreshed);
  ASSERT_EQ(refreshed->status, 200) << refreshed->body;
  const json tokens = json::parse(refreshed->body);
  EXPECT_EQ(client_->Get(project, Bearer(tokens["access_token"]))->status, 200);

  // Forced expiry: access tokens die, refresh tokens still work.
  emulator_->ExpireAccessTokens();
  auto forced = client_->Get(project, Bearer(tokens["access_token"]));
  EXPECT_EQ(forced->status, 401);
  EXPECT_THAT(forced->body, HasSubstr("AUTHORIZATION_TOKEN_EXPIRED"));
  auto again = refresh(tokens["refresh_token"]);
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(client_->Get(project, Bearer(json::parse(again->body)["access_token"]))->status, 200);

  // Forced expiry of refresh tokens too: only a new API-token exchange recovers.
  emulator_->ExpireAccessTokens(/*refresh_tokens_too=*/true);
  auto dead = refresh(json::parse(again->body)["refresh_token"]);
  EXPECT_EQ(dead->status, 400);
  EXPECT_THAT(dead->body, HasSubstr("invalid_grant"));
  EXPECT_EQ(client_->Get(project, Bearer(Exchange()))->status, 200);

  // Refresh tokens expire on their own after 30 minutes.
  auto fresh = client_->Get(kOauthPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(refresh(json::parse(fresh->body)["refreshToken"])->status, 400);
}

TEST_F(EmulatorTest, StateIsRunningWhilePingedAndIdleAfterTheTimeout) {
  const std::string run_id = CreateRun()["id"];
  auto state = [&] { return emulator_->RunById(run_id)->attributes.at("sys/state").value; };
  EXPECT_EQ(state(), "running");
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(state(), "running");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(state(), "idle");
  // Operations alone do not count as a ping.
  ASSERT_EQ(Execute(run_id, json::parse(R"([{"path":"a","assignInt":{"value":1}}])"))->status, 200);
  EXPECT_EQ(state(), "idle");
  auto ping = client_->Post(absl::StrCat(kPingPath, "?experimentId=", run_id), Bearer(token_), "", "");
  ASSERT_EQ(ping->status, 200);
  EXPECT_EQ(state(), "running");
  EXPECT_EQ(emulator_->RunById(run_id)->attributes.at("sys/ping_time").value,
            absl::ToUnixMillis(clock_.Now()));
}

TEST_F(EmulatorTest, FailsTheNextRequestsThenSucceeds) {
  const std::string run_id = CreateRun()["id"];
  emulator_->FailNext(kOperationsPath, 2, 503);
  const json ops = json::parse(R"([{"path":"a","assignInt":{"value":1}}])");
  auto r1 = Execute(run_id, ops);
  auto r2 = Execute(run_id, ops);
  auto r3 = Execute(run_id, ops);
  EXPECT_EQ(r1->status, 503);
  EXPECT_EQ(json::parse(r1->body)["code"], 503);
  EXPECT_EQ(r2->status, 503);
  EXPECT_EQ(r3->status, 200);
  EXPECT_EQ(emulator_->RequestCount("POST", kOperationsPath), 3);
  EXPECT_THAT(emulator_->PendingFaults(), IsEmpty());
  const std::vector<RequestRecord> log = emulator_->Requests();
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log[log.size() - 3].fault, "respond");
  EXPECT_EQ(log[log.size() - 1].fault, "");
  EXPECT_EQ(log[log.size() - 1].body, log[log.size() - 3].body);  // what was sent is kept

  // 429 with Retry-After, only for the method asked.
  Fault throttle;
  throttle.path_prefix = "/api/leaderboard/";
  throttle.method = "POST";
  throttle.status = 429;
  throttle.retry_after = "2";
  throttle.body = R"({"code":429,"message":"Too many requests"})";
  emulator_->AddFault(throttle);
  EXPECT_EQ(client_->Get(absl::StrCat(kExperimentsPath, "?experimentId=", run_id), Bearer(token_))->status,
            200);
  auto limited = Execute(run_id, ops);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "2");
  EXPECT_EQ(limited->body, R"({"code":429,"message":"Too many requests"})");
  EXPECT_EQ(Execute(run_id, ops)->status, 200);
}

TEST_F(EmulatorTest, DropsTheConnectionWithoutAResponse) {
  const std::string run_id = CreateRun()["id"];
  Fault drop;
  drop.path_prefix = kPingPath;
  drop.action = Fault::Action::kDrop;
  emulator_->AddFault(drop);
  const std::string ping = absl::StrCat(kPingPath, "?experimentId=", run_id);
  auto dropped = client_->Post(ping, Bearer(token_), "", "");
  EXPECT_FALSE(dropped);
  auto retried = client_->Post(ping, Bearer(token_), "", "");
  ASSERT_TRUE(retried) << httplib::to_string(retried.error());
  EXPECT_EQ(retried->status, 200);
  const std::vector<RequestRecord> log = emulator_->Requests();
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[log.size() - 2].status, 0);
  EXPECT_EQ(log[log.size() - 2].fault, "drop");
  EXPECT_NE(log[log.size() - 2].connection, log[log.size() - 1].connection);
  EXPECT_EQ(emulator_->ConnectionCount(), 2);

  // Dropped after processing: the operations were applied although the client saw no answer.
  Fault lost;
  lost.path_prefix = kOperationsPath;
  lost.action = Fault::Action::kDrop;
  lost.after_processing = true;
  emulator_->AddFault(lost);
  EXPECT_FALSE(Execute(run_id, json::parse(R"([{"path":"applied","assignBool":{"value":true}}])")));
  EXPECT_EQ(emulator_->RunById(run_id)->attributes.at("applied").value, true);
}

TEST_F(EmulatorTest, DelaysAreRealTimeAndSeenByTheClient) {
  Fault slow;
  slow.path_prefix = kConfigPath;
  slow.action = Fault::Action::kDelay;
  slow.delay = absl::Milliseconds(300);
  emulator_->AddFault(slow);
  const absl::Time start = absl::Now();
  auto res = client_->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_GE(elapsed, absl::Milliseconds(300));

  // A client with a shorter read timeout gives up.
  emulator_->AddFault(slow);
  auto impatient = NewClient();
  impatient->set_read_timeout(0, 50 * 1000);
  auto timed_out = impatient->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  EXPECT_FALSE(timed_out);
}

TEST_F(EmulatorTest, OutagesFailEverythingButKeepTheState) {
  const json run = CreateRun("survivor");
  ASSERT_EQ(Execute(run["id"], json::parse(R"([{"path":"kept","assignInt":{"value":7}}])"))->status, 200);

  emulator_->SetOutage(Outage::kUnavailable);
  for (const char* path : {kConfigPath, kOauthPath, "/api/backend/swagger.json"}) {
    auto res = client_->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << path;
  }
  EXPECT_EQ(Execute(run["id"], json::parse("[]"))->status, 503);
  // Control endpoints still work.
  EXPECT_EQ(client_->Get("/_emulator/health")->status, 200);

  emulator_->SetOutage(Outage::kDrop);
  EXPECT_FALSE(client_->Get(kConfigPath));

  emulator_->SetOutage(Outage::kNone);
  EXPECT_EQ(CreateRun("survivor"), run);
  EXPECT_EQ(emulator_->RunByCustomId(kProject, "survivor")->attributes.at("kept").value, 7);
  EXPECT_EQ(Execute(run["id"], json::parse("[]"))->status, 200);
}

TEST_F(EmulatorTest, ControlEndpointsDriveFaultsAndInspection) {
  const json run = CreateRun("ctl");
  auto fault = client_->Post("/_emulator/faults",
                             R"({"pathPrefix":"/api/leaderboard/v1/attributes/ping",)"
                             R"("count":1,"status":502,"retryAfter":"1"})",
                             "application/json");
  ASSERT_EQ(fault->status, 200) << fault->body;
  EXPECT_EQ(json::parse(client_->Get("/_emulator/faults")->body)[0]["status"], 502);
  auto ping = client_->Post(absl::StrCat(kPingPath, "?experimentId=", std::string(run["id"])), Bearer(token_),
                            "", "");
  EXPECT_EQ(ping->status, 502);
  EXPECT_EQ(ping->get_header_value("Retry-After"), "1");
  EXPECT_EQ(client_->Post("/_emulator/faults", R"({"stauts":500})", "application/json")->status, 400);

  auto by_custom = client_->Get("/_emulator/run?project=ws/proj&customId=ctl");
  ASSERT_EQ(by_custom->status, 200) << by_custom->body;
  const json snapshot = json::parse(by_custom->body);
  EXPECT_EQ(snapshot["id"], run["id"]);
  EXPECT_EQ(snapshot["attributes"]["sys/custom_run_id"], json({{"type", "string"}, {"value", "ctl"}}));
  EXPECT_EQ(client_->Get("/_emulator/run?id=PROJ-1")->status, 200);
  EXPECT_EQ(client_->Get("/_emulator/run?id=PROJ-9")->status, 404);

  auto added =
      client_->Post("/_emulator/projects", R"({"project":"other/space","key":"OTH"})", "application/json");
  ASSERT_EQ(added->status, 200) << added->body;
  EXPECT_EQ(json::parse(added->body)["projectKey"], "OTH");
  EXPECT_EQ(
      client_->Get(absl::StrCat(kProjectPath, "?projectIdentifier=other/space"), Bearer(token_))->status,
      200);
  EXPECT_EQ(client_->Post("/_emulator/projects", R"({"project":"bad"})", "application/json")->status, 400);

  EXPECT_EQ(client_->Put("/_emulator/outage", R"({"mode":"unavailable"})", "application/json")->status, 200);
  EXPECT_EQ(client_->Get(kConfigPath)->status, 503);
  EXPECT_EQ(client_->Put("/_emulator/outage", R"({"mode":"none"})", "application/json")->status, 200);

  EXPECT_EQ(client_->Post("/_emulator/tokens/expire", "{}", "application/json")->status, 200);
  EXPECT_THAT(client_->Get(absl::StrCat(kProjectPath, "?projectIdentifier=ws/proj"), Bearer(token_))->body,
              HasSubstr("AUTHORIZATION_TOKEN_EXPIRED"));

  const json requests = json::parse(client_->Get("/_emulator/requests")->body);
  EXPECT_EQ(requests["counts"]["POST /api/leaderboard/v1/experiments"], 1);
  EXPECT_EQ(requests["connections"], 1);
  EXPECT_EQ(requests["requests"].back()["status"], 401);

  EXPECT_EQ(client_->Post("/_emulator/reset", "", "")->status, 200);
  EXPECT_THAT(emulator_->Runs(), IsEmpty());
  EXPECT_THAT(emulator_->Requests(), IsEmpty());
  EXPECT_EQ(emulator_->ConnectionCount(), 0);
  EXPECT_EQ(emulator_->Projects().size(), 2u);
}

TEST_F(EmulatorTest, CredentialsNeverReachTheRequestLog) {
  const std::string api_token = emulator_->api_token();
  auto oauth = client_->Get(kOauthPath, {{"X-Neptune-Api-Token", api_token}});
  const json tokens = json::parse(oauth->body);
  const std::string access = tokens["accessToken"], refresh = tokens["refreshToken"];
  client_->Get(kConfigPath, {{"X-Neptune-Api-Token", api_token}});
  client_->Post(kTokenPath, "grant_type=refresh_token&client_id=neptune-cli&refresh_token=" + refresh,
                "application/x-www-form-urlencoded");
  client_->Get(absl::StrCat(kProjectPath, "?projectIdentifier=ws/proj"), Bearer(access));

  json log = json::array();
  for (const RequestRecord& r : emulator_->Requests()) log.push_back(RequestRecordToJson(r));
  const std::string dumped = log.dump() + client_->Get("/_emulator/requests")->body;
  for (const std::string& secret : {api_token, access, refresh, std::string(kDefaultApiKey)}) {
    EXPECT_THAT(dumped, Not(HasSubstr(secret)));
  }
  const std::vector<RequestRecord> records = emulator_->Requests();
  ASSERT_EQ(records.size(), 4u);
  EXPECT_THAT(records[0].auth, testing::StartsWith("api-token:sha256:"));
  EXPECT_EQ(records[2].auth, "refresh-token");
  EXPECT_EQ(records[2].body, "[REDACTED]");
  EXPECT_EQ(records[3].auth, absl::StrCat("bearer:", std::string(JwtPayload(access)["jti"])));
}

TEST_F(EmulatorTest, CountsDistinctConnections) {
  for (int i = 0; i < 5; ++i) client_->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  EXPECT_EQ(emulator_->ConnectionCount(), 1);
  auto other = NewClient();
  other->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  EXPECT_EQ(emulator_->ConnectionCount(), 2);
  httplib::Client one_shot(emulator_->base_url());  // no keep-alive: a connection per request
  one_shot.Get(kConfigPath);
  one_shot.Get(kConfigPath);
  EXPECT_EQ(emulator_->ConnectionCount(), 4);
  EXPECT_EQ(emulator_->RequestCount("GET", kConfigPath), 8);
  std::set<int64_t> connections;
  for (const RequestRecord& r : emulator_->Requests()) connections.insert(r.connection);
  EXPECT_EQ(connections.size(), 4u);
}

TEST_F(EmulatorTest, ConcurrentCreatesWithOneCustomIdMakeOneRun) {
  token_ = Exchange();
  const std::string project_id = ProjectId();
  std::vector<std::thread> threads;
  std::vector<std::string> ids(8);
  for (size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([&, i] {
      auto client = NewClient();
      const json body = {{"projectIdentifier", project_id}, {"type", "run"}, {"customId", "shared"}};
      auto res = client->Post(kExperimentsPath, Bearer(token_), body.dump(), "application/json");
      if (res && res->status == 200) ids[i] = json::parse(res->body)["id"];
      const json ops = {{{"path", absl::StrCat("w/", i)}, {"assignInt", {{"value", static_cast<int>(i)}}}}};
      if (!ids[i].empty())
        client->Post(absl::StrCat(kOperationsPath, "?experimentId=", ids[i]), Bearer(token_), ops.dump(),
                     "application/json");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(emulator_->Runs().size(), 1u);
  for (const std::string& id : ids) EXPECT_EQ(id, ids[0]);
  const RunSnapshot run = *emulator_->RunByCustomId(kProject, "shared");
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(run.attributes.at(absl::StrCat("w/", i)).value, i);
}

TEST_F(EmulatorTest, StopsPromptlyWhileClientsKeepConnectionsOpen) {
  auto other = NewClient();
  ASSERT_EQ(client_->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}})->status, 200);
  ASSERT_EQ(other->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}})->status, 200);
  const absl::Time start = absl::Now();
  emulator_.reset();  // the keep-alive timeout is 60 s: waiting for it would show
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(client_->Get(kConfigPath));
}

TEST_F(EmulatorTest, ConfigMayBeOpenLikeTheSwaggerDocumentSays) {
  NeptuneEmulator::Options options;
  options.config_requires_api_token = false;
  options.api_url = "http://api.example";
  StartEmulator(options);
  auto res = client_->Get(kConfigPath);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["apiUrl"], "http://api.example");
  EXPECT_EQ(client_->Get(kConfigPath, {{"X-Neptune-Api-Token", "bad"}})->status, 401);
}

TEST(EmulatorStartTest, ReportsMissingDocumentsAndBadOptions) {
  NeptuneEmulator::Options options;
  options.specs_dir = "/nonexistent";
  EXPECT_EQ(NeptuneEmulator::Start(options).status().code(), absl::StatusCode::kNotFound);
  options = NeptuneEmulator::Options();
  options.tls_cert_path = "/tmp/cert.pem";
  EXPECT_EQ(NeptuneEmulator::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = NeptuneEmulator::Options();
  options.projects = {{"no-slash", ""}};
  EXPECT_EQ(NeptuneEmulator::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ApiTokenTest, IsBase64JsonWithAddressUrlAndKey) {
  const std::string token = ApiTokenFor("http://127.0.0.1:1234", "key");
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape(token, &decoded));
  EXPECT_EQ(json::parse(decoded), json({{"api_address", "http://127.0.0.1:1234"},
                                        {"api_url", "http://127.0.0.1:1234"},
                                        {"api_key", "key"}}));
}

// A self-signed certificate for 127.0.0.1, written as PEM files in a temporary directory.
class SelfSignedCertificate {
 public:
  SelfSignedCertificate() {
    std::string pattern = (std::filesystem::temp_directory_path() / "fna-emulator-tls-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair<int, const char*>{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                              {NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
    FILE* f = fopen(key_path().c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    fclose(f);
    f = fopen(cert_path().c_str(), "w");
    PEM_write_X509(f, cert);
    fclose(f);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  ~SelfSignedCertificate() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string cert_path() const { return dir_ + "/cert.pem"; }
  std::string key_path() const { return dir_ + "/key.pem"; }

 private:
  std::string dir_;
};

TEST(EmulatorTlsTest, ServesHttpsWithASelfSignedCertificate) {
  SelfSignedCertificate certificate;
  FakeClock clock;
  NeptuneEmulator::Options options;
  options.clock = &clock;
  options.tls_cert_path = certificate.cert_path();
  options.tls_key_path = certificate.key_path();
  options.projects = {{kProject, ""}};
  auto emulator = NeptuneEmulator::Start(options);
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  EXPECT_TRUE((*emulator)->tls());
  EXPECT_TRUE(absl::StartsWith((*emulator)->base_url(), "https://127.0.0.1:"));
  {
    httplib::SSLClient client("127.0.0.1", (*emulator)->port());
    client.set_ca_cert_path(certificate.cert_path().c_str());
    client.enable_server_certificate_verification(true);
    auto config = client.Get(kConfigPath, {{"X-Neptune-Api-Token", (*emulator)->api_token()}});
    ASSERT_TRUE(config) << httplib::to_string(config.error());
    EXPECT_EQ(config->status, 200);
    EXPECT_EQ(json::parse(config->body)["apiUrl"], (*emulator)->base_url());
    auto oauth = client.Get(kOauthPath, {{"X-Neptune-Api-Token", (*emulator)->api_token()}});
    ASSERT_TRUE(oauth);
    const std::string access = json::parse(oauth->body)["accessToken"];
    EXPECT_EQ(JwtPayload(access)["iss"], (*emulator)->base_url() + kRealmPath);
    auto project = client.Get(absl::StrCat(kProjectPath, "?projectIdentifier=", kProject), Bearer(access));
    ASSERT_TRUE(project);
    EXPECT_EQ(json::parse(project->body)["projectKey"], "PRO");  // derived from the name

    // A dropped TLS connection is an error for the client too, and the next request reconnects.
    Fault drop;
    drop.action = Fault::Action::kDrop;
    (*emulator)->AddFault(drop);
    EXPECT_FALSE(client.Get(kConfigPath));
    EXPECT_EQ(client.Get(kConfigPath, {{"X-Neptune-Api-Token", (*emulator)->api_token()}})->status, 200);
  }
  // Without the certificate, verification fails.
  httplib::SSLClient untrusting("127.0.0.1", (*emulator)->port());
  untrusting.set_ca_cert_path("/nonexistent.pem");
  untrusting.enable_server_certificate_verification(true);
  EXPECT_FALSE(untrusting.Get(kConfigPath));
}

// RFC 6455 pieces of the signal websocket.

constexpr char kWsKey[] = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 §1.3
constexpr char kWsAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

TEST(WebSocketTest, AcceptKeyOfTheRfcExample) {
  EXPECT_EQ(WebSocketAccept(kWsKey), kWsAccept);
  EXPECT_TRUE(IsValidWebSocketKey(kWsKey));
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ"));  // unpadded
  EXPECT_FALSE(IsValidWebSocketKey("c2hvcnQ="));                // 5 bytes
  EXPECT_FALSE(IsValidWebSocketKey(""));
}

TEST(WebSocketTest, ServerFramesAreUnmaskedWithTheShortestLength) {
  EXPECT_EQ(ServerFrame(kWsText, ""), std::string("\x81\x00", 2));
  EXPECT_EQ(ServerFrame(kWsText, "{}"), "\x81\x02{}");
  EXPECT_EQ(ServerFrame(kWsText, std::string(125, 'a')).substr(0, 2), "\x81\x7d");
  EXPECT_EQ(ServerFrame(kWsText, std::string(126, 'a')).substr(0, 4), std::string("\x81\x7e\x00\x7e", 4));
  EXPECT_EQ(ServerFrame(kWsText, std::string(65536, 'a')).substr(0, 10),
            std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  EXPECT_EQ(ServerFrame(kWsText, std::string(65536, 'a')).size(), 65546u);
  EXPECT_EQ(CloseFrame(kWsCloseGoingAway), "\x88\x02\x03\xe9");
  EXPECT_EQ(CloseFrame(0), std::string("\x88\x00", 2));
}

TEST(WebSocketTest, ParsesMaskedClientFramesAndRefusesBadOnes) {
  // RFC 6455 §5.7: a masked "Hello", then half of another frame.
  const std::string hello("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  ClientFrame frame;
  size_t used = 0;
  ASSERT_EQ(ParseClientFrame(hello + "\x89", 1024, &frame, &used), FrameParse::kFrame);
  EXPECT_EQ(used, hello.size());
  EXPECT_TRUE(frame.fin);
  EXPECT_EQ(frame.opcode, kWsText);
  EXPECT_EQ(frame.payload, "Hello");
  for (size_t n = 0; n < hello.size(); ++n)
    EXPECT_EQ(ParseClientFrame(hello.substr(0, n), 1024, &frame, &used), FrameParse::kIncomplete) << n;
  EXPECT_EQ(ParseClientFrame("\x81\x05Hello", 1024, &frame, &used), FrameParse::kProtocolError);  // unmasked
  EXPECT_EQ(ParseClientFrame("\xc1\x80xxxx", 1024, &frame, &used), FrameParse::kProtocolError);   // RSV1
  EXPECT_EQ(ParseClientFrame("\x83\x80xxxx", 1024, &frame, &used), FrameParse::kProtocolError);   // opcode 3
  EXPECT_EQ(ParseClientFrame("\x09\x80xxxx", 1024, &frame, &used),
            FrameParse::kProtocolError);  // fragmented ping
  EXPECT_EQ(ParseClientFrame(std::string("\x89\xfe\x00\x7e", 4), 1024, &frame, &used),
            FrameParse::kProtocolError);  // 126 B ping
  EXPECT_EQ(ParseClientFrame("\x82\xfe\x04\x01", 1024, &frame, &used), FrameParse::kTooBig);
}

// The signal websocket, end to end.

// The emulator's whole answer to an opening handshake with kWsKey.
constexpr char kSwitchingProtocols[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

// A websocket client on a raw socket (TLS when given a CA file), to see every byte the emulator sends. Reads
// wait at most 10 s (a failure, never a timing).
class RawWebSocket {
 public:
  explicit RawWebSocket(int port, const std::string& ca_path = "") {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    if (!connected_ || ca_path.empty()) return;
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca_path.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    SSL_set_fd(ssl_, fd_);
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~RawWebSocket() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    close(fd_);
  }

  bool connected() const { return connected_; }

  bool Send(absl::string_view bytes) {
    if (ssl_ != nullptr) return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) > 0;
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // A masked frame, as a client sends it (payload < 126 bytes).
  bool SendFrame(int opcode, absl::string_view payload) {
    const char mask[4] = {0x11, 0x22, 0x33, 0x44};
    std::string frame = {static_cast<char>(0x80 | opcode), static_cast<char>(0x80 | payload.size())};
    frame.append(mask, 4);
    for (size_t i = 0; i < payload.size(); ++i) frame.push_back(payload[i] ^ mask[i % 4]);
    return Send(frame);
  }

  // The response head, through the blank line; "" when the connection ends first.
  std::string ReadHead() {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return "";
    }
    std::string head = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    return head;
  }
  // An HTTP response: the head and a body of its Content-Length.
  std::pair<std::string, std::string> ReadResponse() {
    std::string head = ReadHead();
    size_t length = 0;
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      if (absl::StartsWithIgnoreCase(line, "Content-Length:")) {
        EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)), &length));
      }
    }
    return {head, Read(length)};
  }

  struct Frame {
    int first_byte = -1;  // FIN, RSV and opcode; -1 when the connection ended
    bool masked = false;
    std::string payload;
  };
  Frame ReadFrame() {
    Frame frame;
    const std::string header = Read(2);
    if (header.size() < 2) return frame;
    frame.first_byte = static_cast<uint8_t>(header[0]);
    frame.masked = (header[1] & 0x80) != 0;
    uint64_t length = header[1] & 0x7F;
    if (length >= 126) {
      const std::string extended = Read(length == 126 ? 2 : 8);
      length = 0;
      for (char c : extended) length = (length << 8) | static_cast<uint8_t>(c);
    }
    if (frame.masked) Read(4);
    frame.payload = Read(length);
    return frame;
  }
  // Whether the server closes the connection before sending anything more.
  bool ReadsEof() { return buffer_.empty() && !Fill() && !timed_out_; }

 private:
  std::string Read(size_t n) {
    while (buffer_.size() < n) {
      if (!Fill()) break;
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, out.size());
    return out;
  }
  // Appends what arrives next; false at the end of the stream, on an error or after 10 s.
  bool Fill() {
    if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
      pollfd p = {fd_, POLLIN, 0};
      timed_out_ = poll(&p, 1, 10000) == 0;
      if (timed_out_) return false;
    }
    char chunk[4096];
    const ssize_t n =
        ssl_ != nullptr ? SSL_read(ssl_, chunk, sizeof(chunk)) : recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool timed_out_ = false;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

// The opening handshake's header lines in the order websocket-client 1.2.3 (Debian's; the library of the real
// client's websocket adapter) writes them, the adapter's Authorization last.
std::vector<std::string> HandshakeHeaders(int port, const std::string& token) {
  const std::string host = absl::StrCat("127.0.0.1:", port);
  return {"Upgrade: websocket",
          "Host: " + host,
          "Origin: http://" + host,
          absl::StrCat("Sec-WebSocket-Key: ", kWsKey),
          "Sec-WebSocket-Version: 13",
          "Connection: Upgrade",
          "Authorization: Bearer " + token};
}

// `headers` with the line of header `name` replaced by `line` (removed when "").
std::vector<std::string> Replaced(std::vector<std::string> headers, absl::string_view name,
                                  const std::string& line) {
  for (auto it = headers.begin(); it != headers.end(); ++it) {
    if (!absl::StartsWith(*it, absl::StrCat(name, ":"))) continue;
    if (line.empty()) {
      headers.erase(it);
    } else {
      *it = line;
    }
    break;
  }
  return headers;
}

std::string Handshake(const std::string& path, const std::vector<std::string>& headers) {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\n", absl::StrJoin(headers, "\r\n"), "\r\n\r\n");
}

std::string SignalPath(const std::string& project_id, const std::string& run_id) {
  return absl::StrCat("/api/notifications/v1/runs/", project_id, "/", run_id, "/signal");
}

class SignalSocketTest : public EmulatorTest {
 protected:
  // Opens the run's signal socket; checks the exact 101.
  std::unique_ptr<RawWebSocket> Open(const std::string& run_id) {
    auto socket = std::make_unique<RawWebSocket>(emulator_->port());
    EXPECT_TRUE(socket->connected());
    EXPECT_TRUE(socket->Send(
        Handshake(SignalPath(ProjectId(), run_id), HandshakeHeaders(emulator_->port(), token_))));
    EXPECT_EQ(socket->ReadHead(), kSwitchingProtocols);
    return socket;
  }
  // The response to a handshake of `headers` on `path`.
  std::pair<std::string, std::string> Refused(const std::string& path,
                                              const std::vector<std::string>& headers) {
    RawWebSocket socket(emulator_->port());
    EXPECT_TRUE(socket.Send(Handshake(path, headers)));
    return socket.ReadResponse();
  }
  SignalSocketCounts Counts(const std::string& run_id) {
    absl::StatusOr<SignalSocketCounts> counts = emulator_->SignalSockets(run_id);
    EXPECT_TRUE(counts.ok()) << counts.status();
    return counts.value_or(SignalSocketCounts());
  }
};

TEST_F(SignalSocketTest, UpgradesExactlyAndDeliversSignalsAsTextFrames) {
  const std::string run_id = CreateRun("signals")["id"];
  auto socket = Open(run_id);
  EXPECT_EQ(Counts(run_id).opened, 1);
  EXPECT_EQ(Counts(run_id).open, 1);
  const RequestRecord upgrade = emulator_->Requests().back();
  EXPECT_EQ(upgrade.path, SignalPath(ProjectId(), run_id));
  EXPECT_EQ(upgrade.status, 101);
  EXPECT_TRUE(absl::StartsWith(upgrade.auth, "bearer:")) << upgrade.auth;

  // A stop through the control endpoint: one unmasked, final text frame with the exact JSON.
  auto sent = client_->Post("/_emulator/signals",
                            json({{"run", run_id}, {"type", "neptune/stop"}, {"seconds", 5}}).dump(),
                            "application/json");
  ASSERT_EQ(sent->status, 200) << sent->body;
  EXPECT_EQ(json::parse(sent->body), json({{"sockets", 1}}));
  RawWebSocket::Frame frame = socket->ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x81);
  EXPECT_FALSE(frame.masked);
  EXPECT_EQ(frame.payload, R"({"type":"neptune/stop","body":{"seconds":5}})");
  // An abort without seconds, by short id; a heartbeat (a blank message); then a ping is answered.
  ASSERT_EQ(
      client_->Post("/_emulator/signals", R"({"run":"PROJ-1","type":"neptune/abort"})", "application/json")
          ->status,
      200);
  EXPECT_EQ(socket->ReadFrame().payload, R"({"type":"neptune/abort","body":{}})");
  EXPECT_EQ(emulator_->SendSignal(run_id, "").value_or(-1), 1);
  frame = socket->ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x81);
  EXPECT_EQ(frame.payload, "");
  ASSERT_TRUE(socket->SendFrame(kWsPing, "are you there"));
  frame = socket->ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x8A);
  EXPECT_EQ(frame.payload, "are you there");

  // The control endpoints refuse what they do not understand.
  for (const char* body : {R"({"run":"PROJ-1","type":"neptune/pause"})", R"({"run":"PROJ-1"})",
                           R"({"run":"PROJ-1","type":"neptune/stop","seconds":-1})",
                           R"({"run":"PROJ-1","text":"x","seconds":1})", R"({"type":"neptune/stop"})",
                           R"({"run":"PROJ-1","text":"","colour":1})"}) {
    EXPECT_EQ(client_->Post("/_emulator/signals", body, "application/json")->status, 400) << body;
  }
  EXPECT_EQ(client_->Post("/_emulator/signals", R"({"run":"PROJ-9","text":""})", "application/json")->status,
            404);
  const json counts = json::parse(client_->Get("/_emulator/signals?run=PROJ-1")->body);
  EXPECT_EQ(counts, json({{"run", run_id}, {"opened", 1}, {"open", 1}}));

  // The client closes: its code comes back in a Close frame, then the connection ends.
  ASSERT_TRUE(socket->SendFrame(kWsClose, std::string("\x03\xe8", 2)));
  frame = socket->ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x88);
  EXPECT_EQ(frame.payload, std::string("\x03\xe8", 2));
  EXPECT_TRUE(socket->ReadsEof());
  EXPECT_EQ(Counts(run_id).open, 0);
  EXPECT_EQ(Counts(run_id).opened, 1);
  EXPECT_EQ(emulator_->SendSignal(run_id, "").value_or(-1), 0);
  // The connection's end is httplib's too: the emulator still serves.
  EXPECT_EQ(client_->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}})->status, 200);
}

TEST_F(SignalSocketTest, RefusesLikeTheServer) {
  const std::string run_id = CreateRun()["id"];
  const std::string path = SignalPath(ProjectId(), run_id);
  const std::vector<std::string> headers = HandshakeHeaders(emulator_->port(), token_);
  auto expect = [&](const std::string& what, const std::string& target, const std::vector<std::string>& lines,
                    const std::string& status_line, const std::string& message) {
    const auto [head, body] = Refused(target, lines);
    EXPECT_TRUE(absl::StartsWith(head, status_line)) << what << "\n" << head;
    EXPECT_THAT(body, HasSubstr(message)) << what;
    return head;
  };
  // Auth first, with the bodies of every other call.
  const std::string head = expect("no token", path, Replaced(headers, "Authorization", ""), "HTTP/1.1 401 ",
                                  R"({"code":401,"message":"Missing Authorization header"})");
  EXPECT_THAT(head, HasSubstr("WWW-Authenticate: Bearer realm=\"neptune\", error=\"invalid_token\""));
  expect("bad token", path, Replaced(headers, "Authorization", "Authorization: Bearer x.y.z"),
         "HTTP/1.1 401 ", "Invalid access token");
  // Then the handshake itself.
  expect("no Upgrade", path, Replaced(headers, "Upgrade", ""), "HTTP/1.1 400 ", "header.Upgrade");
  expect("other Upgrade", path, Replaced(headers, "Upgrade", "Upgrade: h2c"), "HTTP/1.1 400 ",
         "header.Upgrade");
  expect("no Connection", path, Replaced(headers, "Connection", "Connection: keep-alive"), "HTTP/1.1 400 ",
         "header.Connection");
  expect("no version", path, Replaced(headers, "Sec-WebSocket-Version", ""), "HTTP/1.1 400 ",
         "header.Sec-WebSocket-Version: required");
  EXPECT_THAT(
      expect("version 8", path, Replaced(headers, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
             "HTTP/1.1 426 ", "header.Sec-WebSocket-Version"),
      HasSubstr("Sec-WebSocket-Version: 13\r\n"));
  expect("no key", path, Replaced(headers, "Sec-WebSocket-Key", ""), "HTTP/1.1 400 ",
         "header.Sec-WebSocket-Key");
  expect("short key", path, Replaced(headers, "Sec-WebSocket-Key", "Sec-WebSocket-Key: c2hvcnQ="),
         "HTTP/1.1 400 ", "header.Sec-WebSocket-Key");
  // Then what it names.
  expect("unknown run", SignalPath(ProjectId(), "00000000-0000-4000-8000-000000000000"), headers,
         "HTTP/1.1 404 ", "EXPERIMENT_NOT_FOUND");
  expect("short id", SignalPath(ProjectId(), "PROJ-1"), headers, "HTTP/1.1 404 ", "EXPERIMENT_NOT_FOUND");
  expect("unknown project", SignalPath("00000000-0000-4000-8000-000000000000", run_id), headers,
         "HTTP/1.1 404 ", "Project");
  const std::string other = emulator_->AddProject("ws/other")->id;
  expect("run of another project", SignalPath(other, run_id), headers, "HTTP/1.1 404 ",
         "EXPERIMENT_NOT_FOUND");
  expect("no /signal", absl::StrCat("/api/notifications/v1/runs/", ProjectId(), "/", run_id), headers,
         "HTTP/1.1 404 ", "No endpoint");
  // Faults apply as to any call.
  emulator_->FailNext("/api/notifications/", 1, 503);
  expect("fault", path, headers, "HTTP/1.1 503 ", "Injected fault");
  // An expired token (on the emulator's clock) is AUTHORIZATION_TOKEN_EXPIRED.
  clock_.Advance(absl::Minutes(6));
  expect("expired", path, headers, "HTTP/1.1 401 ", "AUTHORIZATION_TOKEN_EXPIRED");
  EXPECT_EQ(Counts(run_id).opened, 0);
}

TEST_F(SignalSocketTest, ControlClosesARunsSocketsAndTheClientMayReconnect) {
  const std::string run_id = CreateRun()["id"];
  const std::string other_run = CreateRun()["id"];
  auto first = Open(run_id);
  auto second = Open(run_id);
  auto bystander = Open(other_run);
  EXPECT_EQ(Counts(run_id).open, 2);
  auto closed = client_->Post("/_emulator/signals/close", json({{"run", run_id}, {"code", 1011}}).dump(),
                              "application/json");
  ASSERT_EQ(closed->status, 200) << closed->body;
  EXPECT_EQ(json::parse(closed->body), json({{"sockets", 2}}));
  for (RawWebSocket* socket : {first.get(), second.get()}) {
    const RawWebSocket::Frame frame = socket->ReadFrame();
    EXPECT_EQ(frame.first_byte, 0x88);
    EXPECT_EQ(frame.payload, std::string("\x03\xf3", 2));
    EXPECT_TRUE(socket->ReadsEof());
  }
  EXPECT_EQ(client_
                ->Post("/_emulator/signals/close", json({{"run", run_id}, {"code", 1006}}).dump(),
                       "application/json")
                ->status,
            400);
  // As the real client does after a lost connection.
  auto again = Open(run_id);
  EXPECT_EQ(Counts(run_id).opened, 3);
  EXPECT_EQ(Counts(run_id).open, 1);
  EXPECT_EQ(Counts(other_run).open, 1);
  const json all = json::parse(client_->Get("/_emulator/signals")->body);
  EXPECT_EQ(all.size(), 2u);

  // A client that breaks the protocol (an unmasked frame) is closed with 1002.
  ASSERT_TRUE(bystander->Send("\x81\x01x"));
  const RawWebSocket::Frame frame = bystander->ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x88);
  EXPECT_EQ(frame.payload, std::string("\x03\xea", 2));
  EXPECT_TRUE(bystander->ReadsEof());

  // Reset forgets the runs and closes their sockets (1001).
  emulator_->Reset();
  EXPECT_EQ(again->ReadFrame().payload, std::string("\x03\xe9", 2));
  EXPECT_THAT(emulator_->AllSignalSockets(), IsEmpty());
}

TEST_F(SignalSocketTest, OpenSocketsLeaveServerThreadsForOtherClients) {
  NeptuneEmulator::Options options;
  options.worker_threads = 2;
  StartEmulator(options);
  const std::string run_id = CreateRun()["id"];  // client_ keeps its connection (and a thread) open
  std::vector<std::unique_ptr<RawWebSocket>> sockets;
  for (int i = 0; i < 4; ++i) sockets.push_back(Open(run_id));
  auto other = NewClient();
  auto config = other->Get(kConfigPath, {{"X-Neptune-Api-Token", emulator_->api_token()}});
  ASSERT_TRUE(config) << httplib::to_string(config.error());
  EXPECT_EQ(config->status, 200);
  EXPECT_EQ(emulator_->SendSignal(run_id, "").value_or(-1), 4);
  for (auto& socket : sockets) EXPECT_EQ(socket->ReadFrame().first_byte, 0x81);
}

TEST_F(SignalSocketTest, StopsPromptlyWithSocketsOpen) {
  const std::string run_id = CreateRun()["id"];
  auto first = Open(run_id);
  auto second = Open(run_id);
  const absl::Time start = absl::Now();
  emulator_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  for (RawWebSocket* socket : {first.get(), second.get()}) {
    const RawWebSocket::Frame frame = socket->ReadFrame();
    EXPECT_EQ(frame.first_byte, 0x88);
    EXPECT_EQ(frame.payload, std::string("\x03\xe9", 2));  // 1001: going away
    EXPECT_TRUE(socket->ReadsEof());
  }
}

// The calls of the real 1.14.1 client at start-up (neptune-protocol.md §10), in its order, each served; the
// source-code upload is left out (uploads are 501).
TEST_F(SignalSocketTest, ServesTheRealClientsStartUpSequence) {
  const httplib::Headers api_token = {{"X-Neptune-Api-Token", emulator_->api_token()}};
  std::string refresh_token;
  auto refresh = [&] {
    auto res = client_->Post(
        kTokenPath,
        absl::StrCat("grant_type=refresh_token&client_id=neptune-cli&refresh_token=", refresh_token),
        "application/x-www-form-urlencoded");
    ASSERT_EQ(res->status, 200) << res->body;
    token_ = json::parse(res->body)["access_token"];
    refresh_token = json::parse(res->body)["refresh_token"];
  };
  EXPECT_EQ(client_->Get("/api/backend/swagger.json")->status, 200);
  EXPECT_EQ(client_->Get(absl::StrCat(kConfigPath, "?alpha=true"), api_token)->status, 200);
  auto oauth = client_->Get(kOauthPath, api_token);
  ASSERT_EQ(oauth->status, 200);
  refresh_token = json::parse(oauth->body)["refreshToken"];
  refresh();  // at once: the client's expiry clock starts at 0
  EXPECT_EQ(client_->Get("/api/leaderboard/swagger.json")->status, 200);
  EXPECT_EQ(client_->Get(absl::StrCat(kProjectPath, "?projectIdentifier=", kProject), Bearer(token_))->status,
            200);
  httplib::Headers create_headers = Bearer(token_);
  create_headers.emplace("X-Neptune-CliVersion", "1.14.1");
  const json create = {{"projectIdentifier", ProjectId()},
                       {"parentId", ProjectId()},
                       {"type", "run"},
                       {"cliVersion", "1.14.1"},
                       {"customId", "start-up"}};
  auto created = client_->Post(kExperimentsPath, create_headers, create.dump(), "application/json");
  ASSERT_EQ(created->status, 200) << created->body;
  const std::string run_id = json::parse(created->body)["id"];
  EXPECT_EQ(client_->Get(absl::StrCat(kAttributesPath, "?experimentId=", run_id), Bearer(token_))->status,
            200);
  auto executed = Execute(run_id, json::parse(R"([
    {"path": "sys/description", "assignString": {"value": ""}},
    {"path": "sys/failed", "assignBool": {"value": false}},
    {"path": "sys/hostname", "assignString": {"value": "host"}},
    {"path": "sys/name", "assignString": {"value": "Untitled"}},
    {"path": "sys/tags", "insertStrings": {"values": []}}])"));
  EXPECT_EQ(executed->body, "[]");
  EXPECT_EQ(client_->Post(absl::StrCat(kPingPath, "?experimentId=", run_id), Bearer(token_), "", "")->status,
            200);
  refresh();  // the websocket refreshes before it connects
  auto socket = Open(run_id);

  std::vector<std::string> calls;
  for (const RequestRecord& r : emulator_->Requests())
    calls.push_back(absl::StrCat(r.method, " ", r.path, " ", r.status));
  EXPECT_THAT(calls,
              ElementsAre("GET /api/backend/swagger.json 200", absl::StrCat("GET ", kConfigPath, " 200"),
                          absl::StrCat("GET ", kOauthPath, " 200"), absl::StrCat("POST ", kTokenPath, " 200"),
                          "GET /api/leaderboard/swagger.json 200", absl::StrCat("GET ", kProjectPath, " 200"),
                          absl::StrCat("POST ", kExperimentsPath, " 200"),
                          absl::StrCat("GET ", kAttributesPath, " 200"),
                          absl::StrCat("POST ", kOperationsPath, " 200"),
                          absl::StrCat("POST ", kPingPath, " 200"), absl::StrCat("POST ", kTokenPath, " 200"),
                          absl::StrCat("GET ", SignalPath(ProjectId(), run_id), " 101")));
  EXPECT_EQ(Counts(run_id).opened, 1);
  EXPECT_EQ(Counts(run_id).open, 1);
}

TEST(EmulatorTlsTest, ServesTheSignalSocketOverTls) {
  SelfSignedCertificate certificate;
  FakeClock clock;
  NeptuneEmulator::Options options;
  options.clock = &clock;
  options.tls_cert_path = certificate.cert_path();
  options.tls_key_path = certificate.key_path();
  options.projects = {{kProject, ""}};
  auto emulator = NeptuneEmulator::Start(options);
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  httplib::SSLClient client("127.0.0.1", (*emulator)->port());
  client.set_ca_cert_path(certificate.cert_path().c_str());
  client.enable_server_certificate_verification(true);
  auto oauth = client.Get(kOauthPath, {{"X-Neptune-Api-Token", (*emulator)->api_token()}});
  ASSERT_TRUE(oauth) << httplib::to_string(oauth.error());
  const std::string token = json::parse(oauth->body)["accessToken"];
  const std::string project_id = (*emulator)->Projects()[0].id;
  const json create = {{"projectIdentifier", project_id}, {"type", "run"}};
  auto created = client.Post(kExperimentsPath, Bearer(token), create.dump(), "application/json");
  ASSERT_TRUE(created);
  const std::string run_id = json::parse(created->body)["id"];

  RawWebSocket socket((*emulator)->port(), certificate.cert_path());
  ASSERT_TRUE(socket.connected());
  ASSERT_TRUE(
      socket.Send(Handshake(SignalPath(project_id, run_id), HandshakeHeaders((*emulator)->port(), token))));
  EXPECT_EQ(socket.ReadHead(), kSwitchingProtocols);
  EXPECT_EQ((*emulator)->SendSignal(run_id, SignalMessage(kAbortSignal, 2.5)).value_or(-1), 1);
  const RawWebSocket::Frame frame = socket.ReadFrame();
  EXPECT_EQ(frame.first_byte, 0x81);
  EXPECT_FALSE(frame.masked);
  EXPECT_EQ(frame.payload, R"({"type":"neptune/abort","body":{"seconds":2.5}})");
  EXPECT_EQ(client.Get(kConfigPath, {{"X-Neptune-Api-Token", (*emulator)->api_token()}})->status, 200);
  emulator->reset();
  EXPECT_EQ(socket.ReadFrame().payload, std::string("\x03\xe9", 2));
}

TEST(EmulatorBinaryTest, PrintsItsPortAndTokenAndStopsOnSigterm) {
  const char* bin_dir = std::getenv("FNA_TEST_BIN_DIR");
  const std::string binary = std::string(bin_dir != nullptr ? bin_dir : "bin") + "/neptune-emulator";
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> args = {binary, "--port=0", "--project=team/models:MOD", "--api-key", "k1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ), 0) << binary;
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(out[0]);
  const json ready = json::parse(line);
  EXPECT_EQ(ready["projects"], json({"team/models"}));
  EXPECT_EQ(ready["tls"], false);
  EXPECT_EQ(ready["apiToken"], ApiTokenFor(ready["baseUrl"], "k1"));
  httplib::Client client(ready["baseUrl"].get<std::string>());
  auto oauth = client.Get(kOauthPath, {{"X-Neptune-Api-Token", ready["apiToken"].get<std::string>()}});
  ASSERT_TRUE(oauth);
  EXPECT_EQ(oauth->status, 200);
  const std::string access = json::parse(oauth->body)["accessToken"];
  auto project = client.Get(absl::StrCat(kProjectPath, "?projectIdentifier=team/models"), Bearer(access));
  ASSERT_TRUE(project);
  EXPECT_EQ(json::parse(project->body)["projectKey"], "MOD");
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace fna::neptune_emulator
