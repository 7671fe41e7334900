#include "tests/neptune_emulator/swagger_validator.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;
using Error = std::optional<std::string>;

constexpr int kMaxDepth = 64;

std::string Truncate(std::string text, size_t max = 64) {
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

// How a value shows in an error message: scalars as JSON, containers by kind.
std::string Describe(const json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  return Truncate(value.dump());
}

std::string DescribeText(absl::string_view text) { return Truncate(json(std::string(text)).dump()); }

bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

// Reads `n` digits at `pos` into `out`.
bool Digits(absl::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsFullDate(absl::string_view s) {
  int y, m, d;
  return s.size() == 10 && Digits(s, 0, 4, &y) && s[4] == '-' && Digits(s, 5, 2, &m) && s[7] == '-' &&
         Digits(s, 8, 2, &d) && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

// RFC 3339 date-time: 2026-01-01T00:00:00[.fraction](Z|+hh:mm|-hh:mm).
bool IsDateTime(absl::string_view s) {
  if (s.size() < 20 || !IsFullDate(s.substr(0, 10))) return false;
  if (s[10] != 'T' && s[10] != 't') return false;
  int h, mi, sec;
  if (!Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec))
    return false;
  if (h > 23 || mi > 59 || sec > 60) return false;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    if (pos == start) return false;
  }
  absl::string_view zone = s.substr(pos);
  if (zone == "Z" || zone == "z") return true;
  int zh, zm;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && Digits(zone, 1, 2, &zh) &&
         zone[3] == ':' && Digits(zone, 4, 2, &zm) && zh <= 23 && zm <= 59;
}

std::string TypeName(const json& schema) {
  std::string type = schema.value("type", "");
  if (type.empty() && schema.contains("properties")) type = "object";
  if (type.empty()) return "a value";
  std::string format = schema.value("format", "");
  return format.empty() ? type : absl::StrCat(type, " (", format, ")");
}

std::string EnumList(const json& values) {
  std::vector<std::string> parts;
  for (const auto& v : values) parts.push_back(v.dump());
  return absl::StrJoin(parts, ", ");
}

bool InEnum(const json& schema, const json& value) {
  for (const auto& candidate : schema["enum"]) {
    if (candidate == value) return true;
  }
  return false;
}

Error CheckStringFormat(const json& schema, absl::string_view text, const std::string& where) {
  const std::string format = schema.value("format", "");
  bool ok = true;
  if (format == "uuid") ok = IsUuid(text);
  if (format == "date-time") ok = IsDateTime(text);
  if (format == "date") ok = IsFullDate(text);
  if (!ok) return absl::StrCat(where, ": expected ", TypeName(schema), ", got ", DescribeText(text));
  if (schema.contains("minLength") && text.size() < schema["minLength"].get<size_t>())
    return absl::StrCat(where, ": shorter than ", schema["minLength"].dump(), " characters");
  if (schema.contains("maxLength") && text.size() > schema["maxLength"].get<size_t>())
    return absl::StrCat(where, ": longer than ", schema["maxLength"].dump(), " characters");
  return std::nullopt;
}

Error CheckBounds(const json& schema, double v, const std::string& where) {
  if (schema.contains("minimum") && schema["minimum"].is_number()) {
    const double min = schema["minimum"].get<double>();
    const bool exclusive = schema.value("exclusiveMinimum", false);
    if (exclusive ? v <= min : v < min)
      return absl::StrCat(where, ": must be ", exclusive ? "> " : ">= ", schema["minimum"].dump());
  }
  if (schema.contains("maximum") && schema["maximum"].is_number()) {
    const double max = schema["maximum"].get<double>();
    const bool exclusive = schema.value("exclusiveMaximum", false);
    if (exclusive ? v >= max : v > max)
      return absl::StrCat(where, ": must be ", exclusive ? "< " : "<= ", schema["maximum"].dump());
  }
  return std::nullopt;
}

// Range of an integer `format`; no format means int64.
bool IntegerInRange(const json& schema, const json& value) {
  const bool int32 = schema.value("format", "") == "int32";
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    return v <= static_cast<uint64_t>(int32 ? std::numeric_limits<int32_t>::max()
                                            : std::numeric_limits<int64_t>::max());
  }
  const int64_t v = value.get<int64_t>();
  return !int32 || (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max());
}

class Checker {
 public:
  explicit Checker(const json& document) : document_(document) {}

  Error Check(const json& schema, const json& value, const std::string& where, int depth = 0) const {
    if (depth > kMaxDepth) return absl::StrCat(where, ": schema nested too deeply");
    if (!schema.is_object()) return std::nullopt;
    if (schema.contains("$ref")) {
      const json* target = Resolve(schema["$ref"]);
      if (target == nullptr) return absl::StrCat(where, ": unresolvable schema ", schema["$ref"].dump());
      return Check(*target, value, where, depth + 1);
    }
    if (schema.contains("allOf")) {
      for (const auto& part : schema["allOf"]) {
        if (Error e = Check(part, value, where, depth + 1)) return e;
      }
    }
    std::string type = schema.value("type", "");
    if (type.empty() && schema.contains("properties")) type = "object";
    if (value.is_null()) {
      if (type.empty()) return std::nullopt;
      return absl::StrCat(where, ": expected ", TypeName(schema), ", got null");
    }
    auto mismatch = [&] {
      return absl::StrCat(where, ": expected ", TypeName(schema), ", got ", Describe(value));
    };
    if (type == "object") {
      if (!value.is_object()) return mismatch();
      if (schema.contains("required")) {
        for (const auto& name : schema["required"]) {
          const std::string key = name.get<std::string>();
          auto it = value.find(key);
          if (it == value.end()) return absl::StrCat(where, ".", key, ": required");
          if (it->is_null()) return absl::StrCat(where, ".", key, ": required, got null");
        }
      }
      const json* properties = schema.contains("properties") ? &schema["properties"] : nullptr;
      if (properties != nullptr) {
        for (const auto& [key, sub] : properties->items()) {
          auto it = value.find(key);
          if (it == value.end() || it->is_null()) continue;
          if (Error e = Check(sub, *it, absl::StrCat(where, ".", key), depth + 1)) return e;
        }
      }
      if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
        for (const auto& [key, item] : value.items()) {
          if (properties != nullptr && properties->contains(key)) continue;
          if (Error e = Check(schema["additionalProperties"], item, absl::StrCat(where, ".", key), depth + 1))
            return e;
        }
      }
    } else if (type == "array") {
      if (!value.is_array()) return mismatch();
      if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>())
        return absl::StrCat(where, ": fewer than ", schema["minItems"].dump(), " items");
      if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>())
        return absl::StrCat(where, ": more than ", schema["maxItems"].dump(), " items");
      if (schema.contains("items")) {
        for (size_t i = 0; i < value.size(); ++i) {
          if (Error e = Check(schema["items"], value[i], absl::StrCat(where, "[", i, "]"), depth + 1))
            return e;
        }
      }
    } else if (type == "string") {
      if (!value.is_string()) return mismatch();
      if (Error e = CheckStringFormat(schema, value.get<std::string>(), where)) return e;
    } else if (type == "integer") {
      if (!value.is_number_integer()) return mismatch();
      if (!IntegerInRange(schema, value)) return absl::StrCat(mismatch(), " (out of range)");
      if (Error e = CheckBounds(schema, value.get<double>(), where)) return e;
    } else if (type == "number") {
      if (!value.is_number()) return mismatch();
      if (Error e = CheckBounds(schema, value.get<double>(), where)) return e;
    } else if (type == "boolean") {
      if (!value.is_boolean()) return mismatch();
    }
    if (schema.contains("enum") && !InEnum(schema, value)) {
      return absl::StrCat(where, ": expected one of ", EnumList(schema["enum"]), ", got ", Describe(value));
    }
    return std::nullopt;
  }

  const json* Resolve(const json& ref) const {
    if (!ref.is_string()) return nullptr;
    const std::string text = ref.get<std::string>();
    constexpr absl::string_view kPrefix = "#/definitions/";
    if (!absl::StartsWith(text, kPrefix)) return nullptr;
    const std::string name = text.substr(kPrefix.size());
    auto defs = document_.find("definitions");
    if (defs == document_.end() || !defs->contains(name)) return nullptr;
    return &(*defs)[name];
  }

 private:
  const json& document_;
};

// Parses a strict decimal integer: optional '-', digits only.
std::optional<json> ParseInteger(absl::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t start = text[0] == '-' ? 1 : 0;
  if (start == text.size()) return std::nullopt;
  for (size_t i = start; i < text.size(); ++i) {
    if (!IsDigit(text[i])) return std::nullopt;
  }
  int64_t v;
  if (absl::SimpleAtoi(text, &v)) return json(v);
  uint64_t u;
  if (start == 0 && absl::SimpleAtoi(text, &u)) return json(u);
  return json(std::numeric_limits<uint64_t>::max());  // out of every range; reported as such
}

// Checks one textual parameter value (a query, header or path parameter, or one array element).
Error CheckText(const Checker& checker, const json& schema, absl::string_view text,
                const std::string& where) {
  const std::string type = schema.value("type", "string");
  if (type == "integer") {
    std::optional<json> v = ParseInteger(text);
    if (!v.has_value())
      return absl::StrCat(where, ": expected ", TypeName(schema), ", got ", DescribeText(text));
    if (!IntegerInRange(schema, *v))
      return absl::StrCat(where, ": expected ", TypeName(schema), ", got ", text, " (out of range)");
    return checker.Check(schema, *v, where);
  }
  if (type == "number") {
    double v;
    if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || text.empty() ||
        absl::ascii_isspace(text.front()) || absl::ascii_isspace(text.back()))
      return absl::StrCat(where, ": expected ", TypeName(schema), ", got ", DescribeText(text));
    return checker.Check(schema, json(v), where);
  }
  if (type == "boolean") {
    if (text != "true" && text != "false")
      return absl::StrCat(where, ": expected boolean, got ", DescribeText(text));
    return checker.Check(schema, json(text == "true"), where);
  }
  return checker.Check(schema, json(std::string(text)), where);
}

std::vector<std::string> SplitSegments(absl::string_view path) { return absl::StrSplit(path, '/'); }

// -1 when `path` does not match `templ`; else the number of literal segments (higher is more specific).
int MatchScore(absl::string_view templ, absl::string_view path, std::map<std::string, std::string>* params) {
  const std::vector<std::string> t = SplitSegments(templ);
  const std::vector<std::string> p = SplitSegments(path);
  if (t.size() != p.size()) return -1;
  int score = 0;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].size() > 2 && t[i].front() == '{' && t[i].back() == '}') {
      if (p[i].empty()) return -1;
      found[t[i].substr(1, t[i].size() - 2)] = p[i];
    } else if (t[i] == p[i]) {
      ++score;
    } else {
      return -1;
    }
  }
  if (params != nullptr) *params = std::move(found);
  return score;
}

constexpr const char* kMethods[] = {"get", "put", "post", "delete", "options", "head", "patch"};

}  // namespace

SwaggerSpec::SwaggerSpec(nlohmann::json document) : document_(std::move(document)) {}

absl::StatusOr<std::unique_ptr<SwaggerSpec>> SwaggerSpec::Load(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read Swagger document ", file));
  std::stringstream buffer;
  buffer << in.rdbuf();
  json document = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(file, ": not valid JSON"));
  auto spec = FromJson(std::move(document));
  if (!spec.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", spec.status().message()));
  return spec;
}

absl::StatusOr<std::unique_ptr<SwaggerSpec>> SwaggerSpec::FromJson(nlohmann::json document) {
  if (!document.is_object() || document.value("swagger", "") != "2.0")
    return absl::InvalidArgumentError("not a Swagger 2.0 document");
  if (!document.contains("paths") || !document["paths"].is_object())
    return absl::InvalidArgumentError("Swagger document without paths");
  std::unique_ptr<SwaggerSpec> spec(new SwaggerSpec(std::move(document)));
  spec->Index();
  return spec;
}

void SwaggerSpec::Index() {
  for (const auto& [path, item] : document_["paths"].items()) {
    if (!item.is_object()) continue;
    for (const char* method : kMethods) {
      auto it = item.find(method);
      if (it == item.end() || !it->is_object()) continue;
      Operation op;
      op.method = absl::AsciiStrToUpper(method);
      op.path_template = path;
      op.operation_id = it->value("operationId", "");
      op.json = &*it;
      if (!op.operation_id.empty()) by_id_[op.operation_id] = operations_.size();
      operations_.push_back(std::move(op));
    }
  }
}

const SwaggerSpec::Operation* SwaggerSpec::FindOperation(absl::string_view method,
                                                         absl::string_view path) const {
  const Operation* best = nullptr;
  int best_score = -1;
  for (const Operation& op : operations_) {
    if (!absl::EqualsIgnoreCase(op.method, method)) continue;
    const int score = MatchScore(op.path_template, path, nullptr);
    if (score > best_score) {
      best = &op;
      best_score = score;
    }
  }
  return best;
}

bool SwaggerSpec::HasPath(absl::string_view path) const {
  for (const Operation& op : operations_) {
    if (MatchScore(op.path_template, path, nullptr) >= 0) return true;
  }
  return false;
}

const SwaggerSpec::Operation* SwaggerSpec::FindOperationById(absl::string_view operation_id) const {
  auto it = by_id_.find(std::string(operation_id));
  return it == by_id_.end() ? nullptr : &operations_[it->second];
}

const nlohmann::json* SwaggerSpec::Definition(absl::string_view name) const {
  auto defs = document_.find("definitions");
  if (defs == document_.end()) return nullptr;
  auto it = defs->find(std::string(name));
  return it == defs->end() ? nullptr : &*it;
}

bool SwaggerSpec::HasBodyParameter(const Operation& op) {
  for (const auto& param : op.json->value("parameters", json::array())) {
    if (param.value("in", "") == "body") return true;
  }
  return false;
}

absl::StatusOr<nlohmann::json> SwaggerSpec::ValidateRequest(const Operation& op,
                                                            const RequestView& request) const {
  const Checker checker(document_);
  std::map<std::string, std::string> path_params;
  MatchScore(op.path_template, request.path, &path_params);
  const json* body_param = nullptr;
  static const json kNoParameters = json::array();
  auto params_it = op.json->find("parameters");
  const json& params = params_it != op.json->end() && params_it->is_array() ? *params_it : kNoParameters;
  for (const auto& param_ref : params) {
    const json* param = &param_ref;
    if (param->contains("$ref")) {
      // #/parameters/Name
      const std::string ref = (*param)["$ref"].get<std::string>();
      constexpr absl::string_view kPrefix = "#/parameters/";
      if (!absl::StartsWith(ref, kPrefix) || !document_.contains("parameters")) continue;
      auto it = document_["parameters"].find(ref.substr(kPrefix.size()));
      if (it == document_["parameters"].end()) continue;
      param = &*it;
    }
    const std::string in = param->value("in", "");
    const std::string name = param->value("name", "");
    const bool required = param->value("required", false);
    if (in == "body") {
      body_param = param;
      continue;
    }
    if (in == "formData") continue;  // multipart uploads: not JSON, not validated here

    std::vector<std::string> values;
    if (in == "query") {
      for (const auto& [key, value] : request.query) {
        if (key == name) values.push_back(value);
      }
    } else if (in == "header") {
      for (const auto& [key, value] : request.headers) {
        if (absl::EqualsIgnoreCase(key, name)) values.push_back(value);
      }
    } else if (in == "path") {
      auto it = path_params.find(name);
      if (it != path_params.end()) values.push_back(it->second);
    }
    const std::string where = absl::StrCat(in, ".", name);
    const bool absent = values.empty() || (values.size() == 1 && values[0].empty());
    if (absent) {
      if (required) return absl::InvalidArgumentError(absl::StrCat(where, ": required"));
      continue;
    }
    if (param->value("type", "") == "array") {
      json items = param->value("items", json::object());
      if (param->contains("enum") && !items.contains("enum")) items["enum"] = (*param)["enum"];
      std::vector<std::string> elements;
      const std::string format = param->value("collectionFormat", "csv");
      if (format == "multi") {
        elements = values;
      } else {
        const char delimiter = format == "ssv" ? ' ' : format == "tsv" ? '\t' : format == "pipes" ? '|' : ',';
        elements = absl::StrSplit(values[0], delimiter);
      }
      for (size_t i = 0; i < elements.size(); ++i) {
        if (Error e = CheckText(checker, items, elements[i], absl::StrCat(where, "[", i, "]")))
          return absl::InvalidArgumentError(*e);
      }
      continue;
    }
    if (Error e = CheckText(checker, *param, values[0], where)) return absl::InvalidArgumentError(*e);
  }

  if (body_param == nullptr) return json();
  const bool body_required = body_param->value("required", false);
  if (absl::StripAsciiWhitespace(request.body).empty()) {
    if (body_required) return absl::InvalidArgumentError("body: required");
    return json();
  }
  json body;
  try {
    body = json::parse(request.body);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("body: invalid JSON (", e.what(), ")"));
  }
  if (body.is_null()) {
    if (body_required) return absl::InvalidArgumentError("body: required, got null");
    return body;
  }
  if (Error e = checker.Check(body_param->value("schema", json::object()), body, "body"))
    return absl::InvalidArgumentError(*e);
  return body;
}

absl::Status SwaggerSpec::ValidateResponse(const Operation& op, int status,
                                           const nlohmann::json& body) const {
  auto responses = op.json->find("responses");
  if (responses == op.json->end()) return absl::OkStatus();
  auto it = responses->find(std::to_string(status));
  if (it == responses->end()) it = responses->find("default");
  if (it == responses->end())
    return absl::InvalidArgumentError(absl::StrCat("response: status ", status, " is not declared"));
  if (!it->contains("schema")) return absl::OkStatus();
  return ValidateValue((*it)["schema"], body, "response");
}

absl::Status SwaggerSpec::ValidateValue(const nlohmann::json& schema, const nlohmann::json& value,
                                        absl::string_view where) const {
  const Checker checker(document_);
  if (Error e = checker.Check(schema, value, std::string(where))) return absl::InvalidArgumentError(*e);
  return absl::OkStatus();
}

}  // namespace fna::neptune_emulator
