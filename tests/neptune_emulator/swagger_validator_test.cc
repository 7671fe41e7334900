#include "tests/neptune_emulator/swagger_validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/neptune_emulator/emulator.h"

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// A small document exercising every construct the validator supports.
json TestDocument() {
  return json::parse(R"json({
    "swagger": "2.0",
    "host": "localhost:1",
    "paths": {
      "/items": {
        "get": {"operationId": "listItems", "parameters": [
          {"name": "limit", "in": "query", "required": false, "type": "integer", "format": "int32"},
          {"name": "ratio", "in": "query", "required": false, "type": "number", "format": "double"},
          {"name": "flag", "in": "query", "required": false, "type": "boolean"},
          {"name": "sortBy", "in": "query", "required": false, "type": "array", "collectionFormat": "multi",
           "items": {"type": "string", "enum": ["name", "date"]}},
          {"name": "ids", "in": "query", "required": false, "type": "array", "items": {"type": "string",
           "format": "uuid"}},
          {"name": "owner", "in": "query", "required": true, "type": "string"},
          {"name": "X-Token", "in": "header", "required": true, "type": "string"}],
          "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/Item"}}}},
        "post": {"operationId": "addItems", "consumes": ["application/json"], "parameters": [
          {"in": "body", "name": "items", "required": true,
           "schema": {"type": "array", "items": {"$ref": "#/definitions/Item"}}}],
          "responses": {"200": {"description": "OK"}}}
      },
      "/items/{itemId}": {
        "get": {"operationId": "getItem", "parameters": [
          {"name": "itemId", "in": "path", "required": true, "type": "string", "format": "uuid"}]}
      },
      "/items/special": {
        "get": {"operationId": "special", "parameters": []}
      },
      "/optional": {
        "post": {"operationId": "optionalBody", "parameters": [
          {"in": "body", "name": "x", "required": false, "schema": {"$ref": "#/definitions/Tag"}}]}
      }
    },
    "definitions": {
      "Item": {"type": "object", "required": ["id", "count"], "properties": {
        "id": {"type": "string", "format": "uuid"},
        "count": {"type": "integer", "format": "int32", "minimum": 0},
        "big": {"type": "integer", "format": "int64"},
        "plain": {"type": "integer"},
        "weight": {"type": "number", "format": "double"},
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "kind": {"$ref": "#/definitions/Kind"},
        "tags": {"type": "array", "maxItems": 2, "items": {"$ref": "#/definitions/Tag"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "both": {"allOf": [{"$ref": "#/definitions/Tag"}, {"type": "object", "required": ["extra"]}]},
        "active": {"type": "boolean"}}},
      "Kind": {"type": "string", "enum": ["small", "large"]},
      "Tag": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 5}}}
    }
  })json");
}

class SwaggerValidatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spec = SwaggerSpec::FromJson(TestDocument());
    ASSERT_TRUE(spec.ok()) << spec.status();
    spec_ = *std::move(spec);
  }

  // Validates a POST /items body; returns the error message or "" when valid.
  std::string BodyError(const std::string& body) {
    RequestView request{"POST", "/items", {}, {}, body};
    auto result = spec_->ValidateRequest(*spec_->FindOperation("POST", "/items"), request);
    return result.ok() ? "" : std::string(result.status().message());
  }

  std::string QueryError(std::vector<std::pair<std::string, std::string>> query,
                         std::vector<std::pair<std::string, std::string>> headers = {{"x-token", "t"}}) {
    RequestView request{"GET", "/items", std::move(query), std::move(headers), ""};
    auto result = spec_->ValidateRequest(*spec_->FindOperation("GET", "/items"), request);
    return result.ok() ? "" : std::string(result.status().message());
  }

  std::unique_ptr<SwaggerSpec> spec_;
};

constexpr char kUuid[] = "0b1e8a44-5f2c-4d3e-9a7b-1c2d3e4f5a6b";

std::string Item(const std::string& extra = "") {
  return std::string(R"({"id":")") + kUuid + R"(","count":1)" + extra + "}";
}

TEST_F(SwaggerValidatorTest, RejectsDocumentsThatAreNotSwagger2) {
  EXPECT_FALSE(SwaggerSpec::FromJson(json::object()).ok());
  EXPECT_FALSE(SwaggerSpec::FromJson({{"swagger", "2.0"}}).ok());
  EXPECT_FALSE(SwaggerSpec::Load("/nonexistent/backend.json").ok());
}

TEST_F(SwaggerValidatorTest, FindsOperationsByMethodAndPathPreferringLiterals) {
  ASSERT_NE(spec_->FindOperation("get", "/items"), nullptr);
  EXPECT_EQ(spec_->FindOperation("GET", "/items")->operation_id, "listItems");
  EXPECT_EQ(spec_->FindOperation("POST", "/items")->operation_id, "addItems");
  EXPECT_EQ(spec_->FindOperation("GET", std::string("/items/") + kUuid)->operation_id, "getItem");
  EXPECT_EQ(spec_->FindOperation("GET", "/items/special")->operation_id, "special");
  EXPECT_EQ(spec_->FindOperation("DELETE", "/items"), nullptr);
  EXPECT_EQ(spec_->FindOperation("GET", "/items/"), nullptr);  // empty segment is no {itemId}
  EXPECT_TRUE(spec_->HasPath("/items"));
  EXPECT_FALSE(spec_->HasPath("/other"));
  EXPECT_EQ(spec_->FindOperationById("addItems")->path_template, "/items");
  EXPECT_NE(spec_->Definition("Item"), nullptr);
  EXPECT_EQ(spec_->Definition("Nope"), nullptr);
}

TEST_F(SwaggerValidatorTest, AcceptsAValidBodyAndReturnsIt) {
  const std::string body =
      "[" +
      Item(R"(,"big":9007199254740993,"plain":-5,"weight":1,"when":"2026-01-01T00:00:00.123+02:00",)"
           R"("day":"2026-02-28","kind":"small","tags":[{"name":"a"}],"labels":{"x":"y"},)"
           R"("both":{"name":"n","extra":1},"active":true,"cliVersion":"1.0","nullable":null)") +
      "]";
  RequestView request{"POST", "/items", {}, {}, body};
  auto parsed = spec_->ValidateRequest(*spec_->FindOperation("POST", "/items"), request);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0]["count"], 1);
}

TEST_F(SwaggerValidatorTest, NamesTheFieldOfEveryViolation) {
  EXPECT_EQ(BodyError(""), "body: required");
  EXPECT_EQ(BodyError("null"), "body: required, got null");
  EXPECT_THAT(BodyError("[{"), HasSubstr("body: invalid JSON"));
  EXPECT_EQ(BodyError("{}"), "body: expected array, got an object");
  EXPECT_EQ(BodyError("[1]"), "body[0]: expected object, got 1");
  EXPECT_EQ(BodyError(R"([{"count":1}])"), "body[0].id: required");
  EXPECT_EQ(BodyError(R"([{"id":null,"count":1}])"), "body[0].id: required, got null");
  EXPECT_EQ(BodyError(R"([{"id":"x","count":1}])"), R"(body[0].id: expected string (uuid), got "x")");
  EXPECT_EQ(BodyError("[" + Item() + "," + Item(R"(,"count":"x")").substr(0) + "]"),
            R"(body[1].count: expected integer (int32), got "x")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"count":2.5)") + "]"),
            "body[0].count: expected integer (int32), got 2.5");
  EXPECT_EQ(BodyError("[" + Item(R"(,"count":2.0)") + "]"),
            "body[0].count: expected integer (int32), got 2.0");
  EXPECT_EQ(BodyError("[" + Item(R"(,"count":2147483648)") + "]"),
            "body[0].count: expected integer (int32), got 2147483648 (out of range)");
  EXPECT_EQ(BodyError("[" + Item(R"(,"count":-1)") + "]"), "body[0].count: must be >= 0");
  EXPECT_EQ(BodyError("[" + Item(R"(,"big":9223372036854775808)") + "]"),
            "body[0].big: expected integer (int64), got 9223372036854775808 (out of range)");
  EXPECT_EQ(BodyError("[" + Item(R"(,"weight":"1")") + "]"),
            R"(body[0].weight: expected number (double), got "1")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"active":1)") + "]"), "body[0].active: expected boolean, got 1");
  EXPECT_EQ(BodyError("[" + Item(R"(,"when":"2026-01-01 00:00:00")") + "]"),
            R"(body[0].when: expected string (date-time), got "2026-01-01 00:00:00")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"when":"2026-01-01T00:00:00")") + "]"),
            R"(body[0].when: expected string (date-time), got "2026-01-01T00:00:00")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"day":"2026-13-01")") + "]"),
            R"(body[0].day: expected string (date), got "2026-13-01")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"kind":"medium")") + "]"),
            R"(body[0].kind: expected one of "small", "large", got "medium")");
  EXPECT_EQ(BodyError("[" + Item(R"(,"tags":[{"name":"a"},{}])") + "]"), "body[0].tags[1].name: required");
  EXPECT_EQ(BodyError("[" + Item(R"(,"tags":[{"name":"toolong"}])") + "]"),
            "body[0].tags[0].name: longer than 5 characters");
  EXPECT_EQ(BodyError("[" + Item(R"(,"tags":[{"name":"a"},{"name":"b"},{"name":"c"}])") + "]"),
            "body[0].tags: more than 2 items");
  EXPECT_EQ(BodyError("[" + Item(R"(,"labels":{"x":1})") + "]"), "body[0].labels.x: expected string, got 1");
  EXPECT_EQ(BodyError("[" + Item(R"(,"both":{"name":"n"})") + "]"), "body[0].both.extra: required");
  EXPECT_EQ(BodyError("[" + Item(R"(,"tags":[null])") + "]"), "body[0].tags[0]: expected object, got null");
}

TEST_F(SwaggerValidatorTest, ChecksParametersByLocationAndType) {
  EXPECT_EQ(QueryError({}), "query.owner: required");
  EXPECT_EQ(QueryError({{"owner", ""}}), "query.owner: required");
  EXPECT_EQ(QueryError({{"owner", "me"}}, {}), "header.X-Token: required");
  EXPECT_EQ(QueryError({{"owner", "me"}}), "");
  EXPECT_EQ(QueryError({{"owner", "me"},
                        {"limit", "10"},
                        {"ratio", "0.5"},
                        {"flag", "true"},
                        {"sortBy", "name"},
                        {"sortBy", "date"},
                        {"ids", std::string(kUuid) + "," + kUuid},
                        {"unknown", "x"}}),
            "");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"limit", "ten"}}),
            R"(query.limit: expected integer (int32), got "ten")");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"limit", "1.0"}}),
            R"(query.limit: expected integer (int32), got "1.0")");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"limit", "99999999999"}}),
            "query.limit: expected integer (int32), got 99999999999 (out of range)");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"ratio", "abc"}}),
            R"(query.ratio: expected number (double), got "abc")");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"flag", "1"}}), R"(query.flag: expected boolean, got "1")");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"sortBy", "name"}, {"sortBy", "size"}}),
            R"(query.sortBy[1]: expected one of "name", "date", got "size")");
  EXPECT_EQ(QueryError({{"owner", "me"}, {"ids", std::string(kUuid) + ",nope"}}),
            R"(query.ids[1]: expected string (uuid), got "nope")");

  RequestView path_request{"GET", "/items/not-a-uuid", {}, {}, ""};
  auto result = spec_->ValidateRequest(*spec_->FindOperation("GET", "/items/not-a-uuid"), path_request);
  EXPECT_EQ(result.status().message(), R"(path.itemId: expected string (uuid), got "not-a-uuid")");
}

TEST_F(SwaggerValidatorTest, AnOptionalBodyMayBeAbsent) {
  const SwaggerSpec::Operation* op = spec_->FindOperation("POST", "/optional");
  ASSERT_NE(op, nullptr);
  EXPECT_TRUE(SwaggerSpec::HasBodyParameter(*op));
  auto empty = spec_->ValidateRequest(*op, RequestView{"POST", "/optional", {}, {}, ""});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->is_null());
  EXPECT_EQ(spec_->ValidateRequest(*op, RequestView{"POST", "/optional", {}, {}, "{}"}).status().message(),
            "body.name: required");
  EXPECT_FALSE(SwaggerSpec::HasBodyParameter(*spec_->FindOperation("GET", "/items")));
}

TEST_F(SwaggerValidatorTest, ValidatesResponsesAgainstTheDeclaredSchema) {
  const SwaggerSpec::Operation& op = *spec_->FindOperation("GET", "/items");
  EXPECT_TRUE(spec_->ValidateResponse(op, 200, json::parse(Item())).ok());
  EXPECT_EQ(spec_->ValidateResponse(op, 200, json::object()).message(), "response.id: required");
  EXPECT_FALSE(spec_->ValidateResponse(op, 500, json::object()).ok());  // undeclared status
  EXPECT_TRUE(
      spec_->ValidateResponse(*spec_->FindOperation("POST", "/items"), 200, json()).ok());  // no schema
  EXPECT_EQ(spec_->ValidateValue({{"$ref", "#/definitions/Missing"}}, 1, "x").message(),
            R"(x: unresolvable schema "#/definitions/Missing")");
}

// The real documents: the operations the agent's client uses are found and their schemas bite.
TEST(NeptuneDocumentsTest, LeaderboardOperationsValidateAgainstTheRealSchema) {
  auto spec = SwaggerSpec::Load(DefaultSpecsDir() + "/leaderboard.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const SwaggerSpec::Operation* op =
      (*spec)->FindOperation("POST", "/api/leaderboard/v1/attributes/operations");
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->operation_id, "executeOperations");
  RequestView request{"POST", "/api/leaderboard/v1/attributes/operations", {{"experimentId", kUuid}}, {}, ""};
  request.body = R"([{"path":"a","assignString":{"value":"v"}},{"path":"b","assignInt":{"value":1}},)"
                 R"({"path":"c","assignFloat":{"value":1}},{"path":"d","assignInt":{"value":"x"}}])";
  EXPECT_EQ((*spec)->ValidateRequest(*op, request).status().message(),
            R"(body[3].assignInt.value: expected integer (int32), got "x")");
  request.body = R"([{"path":"m","logFloats":{"entries":[{"value":1.5,"step":1}]}}])";
  EXPECT_EQ((*spec)->ValidateRequest(*op, request).status().message(),
            "body[0].logFloats.entries[0].timestampMilliseconds: required");

  const SwaggerSpec::Operation* create = (*spec)->FindOperation("POST", "/api/leaderboard/v1/experiments");
  ASSERT_NE(create, nullptr);
  request = RequestView{"POST", "/api/leaderboard/v1/experiments", {}, {}, R"({"type":"runn"})"};
  EXPECT_THAT(std::string((*spec)->ValidateRequest(*create, request).status().message()),
              HasSubstr(R"(body.type: expected one of "run", )"));
}

TEST(NeptuneDocumentsTest, BackendOperationsValidateAgainstTheRealSchema) {
  auto spec = SwaggerSpec::Load(DefaultSpecsDir() + "/backend.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const SwaggerSpec::Operation* op =
      (*spec)->FindOperation("GET", "/api/backend/v1/authorization/oauth-token");
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->operation_id, "exchangeApiToken");
  RequestView request{"GET", "/api/backend/v1/authorization/oauth-token", {}, {}, ""};
  EXPECT_EQ((*spec)->ValidateRequest(*op, request).status().message(),
            "header.X-Neptune-Api-Token: required");
  const SwaggerSpec::Operation* list = (*spec)->FindOperation("GET", "/api/backend/v1/projects");
  ASSERT_NE(list, nullptr);
  request = RequestView{"GET", "/api/backend/v1/projects", {{"limit", "five"}}, {}, ""};
  EXPECT_EQ((*spec)->ValidateRequest(*list, request).status().message(),
            R"(query.limit: expected integer (int32), got "five")");
}

}  // namespace
}  // namespace fna::neptune_emulator
