#include "agent/config/config_loader.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/common/status_macros.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace fna {
namespace {

constexpr absl::string_view kEnvPrefix = "FLYTE_NEPTUNE_AGENT_";
constexpr absl::string_view kConfigEnv = "FLYTE_NEPTUNE_AGENT_CONFIG";
constexpr size_t kMaxTagLength = 128;

std::string Quote(absl::string_view text) { return absl::StrCat("\"", absl::CHexEscape(text), "\""); }

// `label` names the source and the key: "agent.yaml: server.listen_address", "--agent.name", ...
absl::Status Invalid(absl::string_view label, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", message));
}

// ---------------------------------------------------------------------------------------------------------------
// Value parsers. Each turns the text of one value into a value, or fails with a message naming the value; the
// caller prefixes the source and the key.

template <typename T>
using Parser = std::function<absl::StatusOr<T>(absl::string_view text)>;
template <typename T>
using Formatter = std::function<std::string(const T& value)>;

absl::StatusOr<int64_t> ParseInt(absl::string_view text) {
  absl::string_view digits = text;
  absl::ConsumePrefix(&digits, "-");
  int64_t value = 0;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not an integer"));
  }
  return value;
}

Parser<int64_t> IntIn(int64_t min, int64_t max) {
  return [min, max](absl::string_view text) -> absl::StatusOr<int64_t> {
    FNA_ASSIGN_OR_RETURN(int64_t value, ParseInt(text));
    if (value < min || value > max) {
      return absl::InvalidArgumentError(absl::StrCat(value, " is out of range [", min, ", ", max, "]"));
    }
    return value;
  };
}

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not a boolean (true or false)"));
}

// The bounds of a duration key, each inclusive or exclusive.
struct DurationRange {
  absl::Duration min;
  bool min_inclusive;
  absl::Duration max;
  bool max_inclusive;
};

Parser<absl::Duration> DurationIn(DurationRange range) {
  return [range](absl::string_view text) -> absl::StatusOr<absl::Duration> {
    absl::Duration value;
    if (!absl::ParseDuration(text, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Quote(text), " is not a duration (e.g. 90s, 2m, 1h30m)"));
    }
    const bool above_min = range.min_inclusive ? value >= range.min : value > range.min;
    const bool below_max = range.max_inclusive ? value <= range.max : value < range.max;
    if (!above_min || !below_max) {
      return absl::InvalidArgumentError(
          absl::StrCat(absl::FormatDuration(value), " is out of range ", range.min_inclusive ? "[" : "(",
                       absl::FormatDuration(range.min), ", ", absl::FormatDuration(range.max),
                       range.max_inclusive ? "]" : ")"));
    }
    return value;
  };
}

template <typename E>
using EnumNames = std::vector<std::pair<std::string, E>>;

template <typename E>
std::string EnumType(const EnumNames<E>& names) {
  return absl::StrJoin(names, " | ", [](std::string* out, const auto& name) { out->append(name.first); });
}

std::string AnyString(absl::string_view text) { return std::string(text); }

absl::StatusOr<std::string> NonEmpty(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("must not be empty");
  return std::string(text);
}

// Printable ASCII other than space.
bool IsGraph(absl::string_view text) { return std::all_of(text.begin(), text.end(), absl::ascii_isgraph); }

bool IsProject(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  return parts.size() == 2 && !parts[0].empty() && !parts[1].empty() && IsGraph(text);
}

absl::StatusOr<std::string> Project(absl::string_view text) {
  if (!IsProject(text))
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not workspace/project"));
  return std::string(text);
}

absl::StatusOr<std::string> OptionalProject(absl::string_view text) {
  if (text.empty()) return std::string();
  return Project(text);
}

absl::StatusOr<std::string> ProjectOrAny(absl::string_view text) {
  if (text != "*" && !IsProject(text)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not workspace/project or \"*\""));
  }
  return std::string(text);
}

absl::StatusOr<std::string> TaskTypeName(absl::string_view text) {
  const auto valid = [](char c) { return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-'; };
  if (text.empty() || !std::all_of(text.begin(), text.end(), valid)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not a task type name ([A-Za-z0-9_.-]+)"));
  }
  return std::string(text);
}

absl::StatusOr<std::string> Tag(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("must not be empty");
  if (text.size() > kMaxTagLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is longer than ", kMaxTagLength, " characters"));
  }
  return std::string(text);
}

// Empty, or http(s)://... without whitespace; trailing '/'s are removed.
absl::StatusOr<std::string> ConsoleUrl(absl::string_view text) {
  if (text.empty()) return std::string();
  absl::string_view url = text;
  while (absl::ConsumeSuffix(&url, "/")) {
  }
  absl::string_view rest = url;
  if (!(absl::ConsumePrefix(&rest, "https://") || absl::ConsumePrefix(&rest, "http://")) || rest.empty() ||
      !IsGraph(rest)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not an http:// or https:// URL"));
  }
  return std::string(url);
}

// The host of "host:port" or "[ipv6]:port" (without the brackets), port 0-65535.
absl::StatusOr<std::string> ListenHost(absl::string_view text) {
  const absl::Status not_host_port =
      absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not host:port"));
  absl::string_view host;
  absl::string_view port;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "[")) {
    const size_t close = rest.find("]:");
    if (close == absl::string_view::npos) return not_host_port;
    host = rest.substr(0, close);
    port = rest.substr(close + 2);
    in6_addr address;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &address) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(Quote(text), " is not host:port (", Quote(host), " is not an IPv6 address)"));
    }
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return not_host_port;
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    const auto valid = [](char c) { return absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_'; };
    if (host.empty() || !std::all_of(host.begin(), host.end(), valid)) return not_host_port;
  }
  int port_number = 0;
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &port_number)) {
    return not_host_port;
  }
  if (port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not host:port (port ", port_number, " is out of range [0, 65535])"));
  }
  return std::string(host);
}

absl::StatusOr<std::string> ListenAddress(absl::string_view text) {
  FNA_RETURN_IF_ERROR(ListenHost(text).status());
  return std::string(text);
}

// A DNS-1123 label: a Kubernetes namespace or Secret name.
bool IsDnsLabel(absl::string_view text) {
  const auto valid = [](char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-'; };
  return !text.empty() && text.size() <= 63 && std::all_of(text.begin(), text.end(), valid) &&
         text.front() != '-' && text.back() != '-';
}

absl::StatusOr<std::string> DnsLabel(absl::string_view text) {
  if (!IsDnsLabel(text)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(text), " is not a DNS-1123 label ([a-z0-9-], at most 63, no leading or trailing '-')"));
  }
  return std::string(text);
}

absl::StatusOr<std::string> DnsLabelOrAny(absl::string_view text) {
  if (text == "*") return std::string(text);
  return DnsLabel(text);
}

// A Kubernetes quantity: "500m", "1Gi", "2", "1e3".
absl::StatusOr<std::string> Quantity(absl::string_view text) {
  absl::string_view rest = text;
  const size_t digits = rest.find_first_not_of("0123456789.");
  const absl::string_view number = rest.substr(0, digits);
  const absl::string_view suffix = digits == absl::string_view::npos ? "" : rest.substr(digits);
  static const std::set<absl::string_view> kSuffixes = {"",  "n", "u",  "m",  "k",  "M",  "G",  "T",
                                                        "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  const bool exponent = absl::StartsWith(suffix, "e") && suffix.size() > 1 &&
                        std::all_of(suffix.begin() + 1, suffix.end(), absl::ascii_isdigit);
  if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 || number == "." ||
      (kSuffixes.count(suffix) == 0 && !exponent)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not a Kubernetes quantity (e.g. 500m, 1Gi)"));
  }
  return std::string(text);
}

// NAME=value with a C identifier name.
absl::StatusOr<std::string> EnvAssignment(absl::string_view text) {
  const size_t equals = text.find('=');
  const absl::string_view name = text.substr(0, equals);
  const auto valid = [](char c) { return absl::ascii_isalnum(c) || c == '_'; };
  if (equals == absl::string_view::npos || name.empty() || absl::ascii_isdigit(name[0]) ||
      !std::all_of(name.begin(), name.end(), valid)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not NAME=value"));
  }
  if (name == "NEPTUNE_API_TOKEN") {
    return absl::InvalidArgumentError(
        "NEPTUNE_API_TOKEN may not be set here: the token reaches a Pod only from its Secret "
        "(executor.kubernetes.token_namespaces)");
  }
  return std::string(text);
}

// key=value with a label key and value.
absl::StatusOr<std::string> LabelAssignment(absl::string_view text) {
  const size_t equals = text.find('=');
  if (equals == absl::string_view::npos || equals == 0 || !IsGraph(text)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not key=value"));
  }
  return std::string(text);
}

absl::StatusOr<std::string> PullPolicy(absl::string_view text) {
  if (text.empty() || text == "Always" || text == "IfNotPresent" || text == "Never") return std::string(text);
  return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not Always, IfNotPresent or Never"));
}

absl::StatusOr<std::string> OptionalListenAddress(absl::string_view text) {
  if (text.empty()) return std::string();
  return ListenAddress(text);
}

// localhost, 127.0.0.0/8, ::1 (and ::ffff:127.0.0.0/104).
bool IsLoopback(const std::string& host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// The key table. A Field of struct S (AgentConfig, or RoutingRule inside a rule) binds a dotted key path to a
// member with its parser; everything else (YAML, environment, flags, FormatConfig, UsageText) is driven by
// it.

template <typename S>
struct Field {
  std::string path;  // "server.listen_address"
  std::string type;  // shown by --help and in type errors: "expected <type>, got ..."
  std::string help;
  bool list = false;  // a list of strings: a YAML sequence, comma-separated in variables and flags
  // Validates `values` (exactly one unless `list`) and stores them. `label` names the source and the key.
  std::function<absl::Status(const std::vector<std::string>& values, const std::string& label, S& s)> set;
  // The stored value, as `set` takes it.
  std::function<std::vector<std::string>(const S& s)> get;
  // For YAML-only keys with a structured value, instead of set/get. `key` is the key's full path.
  std::function<absl::Status(const YAML::Node& node, const std::string& file, const std::string& key, S& s)>
      set_yaml;
  std::function<YAML::Node(const S& s)> get_yaml;
};

template <typename S, typename T>
Field<S> ScalarField(std::string path, std::string type, std::string help, T S::*member, Parser<T> parse,
                     Formatter<T> format) {
  Field<S> field;
  field.path = std::move(path);
  field.type = std::move(type);
  field.help = std::move(help);
  field.set = [member, parse](const std::vector<std::string>& values, const std::string& label,
                              S& s) -> absl::Status {
    absl::StatusOr<T> value = parse(values[0]);
    if (!value.ok()) return Invalid(label, value.status().message());
    s.*member = *std::move(value);
    return absl::OkStatus();
  };
  field.get = [member, format](const S& s) { return std::vector<std::string>{format(s.*member)}; };
  return field;
}

template <typename S>
Field<S> StringField(std::string path, std::string type, std::string help, std::string S::*member,
                     Parser<std::string> parse) {
  return ScalarField<S, std::string>(std::move(path), std::move(type), std::move(help), member,
                                     std::move(parse), AnyString);
}

template <typename S>
Field<S> IntField(std::string path, std::string help, int64_t S::*member, int64_t min, int64_t max) {
  return ScalarField<S, int64_t>(std::move(path), "int", std::move(help), member, IntIn(min, max),
                                 [](const int64_t& value) { return absl::StrCat(value); });
}

template <typename S>
Field<S> BoolField(std::string path, std::string help, bool S::*member) {
  return ScalarField<S, bool>(std::move(path), "bool", std::move(help), member, ParseBool,
                              [](const bool& value) { return value ? "true" : "false"; });
}

template <typename S>
Field<S> DurationField(std::string path, std::string help, absl::Duration S::*member, DurationRange range) {
  return ScalarField<S, absl::Duration>(
      std::move(path), "duration", std::move(help), member, DurationIn(range),
      [](const absl::Duration& value) { return absl::FormatDuration(value); });
}

template <typename S, typename E>
Field<S> EnumField(std::string path, std::string help, E S::*member, EnumNames<E> names) {
  const std::string type = EnumType(names);
  Parser<E> parse = [names, type](absl::string_view text) -> absl::StatusOr<E> {
    for (const auto& [name, value] : names) {
      if (text == name) return value;
    }
    return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is not one of ", type));
  };
  Formatter<E> format = [names](const E& value) {
    for (const auto& [name, candidate] : names) {
      if (candidate == value) return name;
    }
    return std::string();
  };
  return ScalarField<S, E>(std::move(path), type, std::move(help), member, std::move(parse),
                           std::move(format));
}

enum class ListCheck { kAny, kNonEmptyUnique };

template <typename S>
Field<S> ListField(std::string path, std::string type, std::string help, std::vector<std::string> S::*member,
                   Parser<std::string> parse_item, ListCheck check) {
  Field<S> field;
  field.path = std::move(path);
  field.type = std::move(type);
  field.help = std::move(help);
  field.list = true;
  field.set = [member, parse_item, check](const std::vector<std::string>& values, const std::string& label,
                                          S& s) -> absl::Status {
    std::vector<std::string> items;
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string item_label = absl::StrCat(label, "[", i, "]");
      absl::StatusOr<std::string> item = parse_item(values[i]);
      if (!item.ok()) return Invalid(item_label, item.status().message());
      if (check == ListCheck::kNonEmptyUnique &&
          std::find(items.begin(), items.end(), *item) != items.end()) {
        return Invalid(item_label, absl::StrCat(Quote(*item), " is a duplicate"));
      }
      items.push_back(*std::move(item));
    }
    if (check == ListCheck::kNonEmptyUnique && items.empty()) return Invalid(label, "must not be empty");
    s.*member = std::move(items);
    return absl::OkStatus();
  };
  field.get = [member](const S& s) { return s.*member; };
  return field;
}

std::string KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    default:
      return "null";
  }
}

const std::vector<Field<RoutingRule>>& RuleFields() {
  static const auto* const fields = new std::vector<Field<RoutingRule>>{
      StringField<RoutingRule>("flyte_project", "string", "Flyte project the rule matches, or \"*\" for any.",
                               &RoutingRule::flyte_project, NonEmpty),
      StringField<RoutingRule>("flyte_domain", "string", "Flyte domain the rule matches, or \"*\" for any.",
                               &RoutingRule::flyte_domain, NonEmpty),
      ListField<RoutingRule>("allowed_projects", "list of workspace/project or *",
                             "Neptune projects a matching task may choose; \"*\" allows any.",
                             &RoutingRule::allowed_projects, ProjectOrAny, ListCheck::kAny),
      StringField<RoutingRule>(
          "default_project", "workspace/project",
          "Neptune project of a matching task that chooses none; always allowed. Optional when "
          "allowed_projects is set.",
          &RoutingRule::default_project, OptionalProject),
      ListField<RoutingRule>("tags", "list of strings",
                             "Tags added to the run of every matching task (each 1-128 characters).",
                             &RoutingRule::tags, Tag, ListCheck::kAny),
      StringField<RoutingRule>(
          "token_file", "path",
          "File holding the Neptune API token for matching tasks; empty: the agent's default token.",
          &RoutingRule::token_file, AnyString),
  };
  return *fields;
}

template <typename S>
absl::Status ApplyYamlMap(const YAML::Node& map, const std::string& file, const std::string& key_prefix,
                          const std::string& section, const std::vector<Field<S>>& fields, S& s);

template <typename S>
YAML::Node ToYaml(const std::vector<Field<S>>& fields, const S& s);

Field<AgentConfig> RoutingRulesField() {
  Field<AgentConfig> field;
  field.path = "tracking.routing_rules";
  field.type = "list of rules";
  field.help =
      "Routing of Flyte projects/domains to Neptune projects, first match wins (fields below). A task no "
      "rule matches uses tracking.default_project and tracking.allowed_projects.";
  field.set_yaml = [](const YAML::Node& node, const std::string& file, const std::string& key,
                      AgentConfig& config) -> absl::Status {
    std::vector<RoutingRule> rules;
    if (!node.IsNull()) {
      if (!node.IsSequence()) {
        return Invalid(absl::StrCat(file, ": ", key),
                       absl::StrCat("expected list of rules, got ", KindOf(node)));
      }
      for (const YAML::Node& item : node) {
        const std::string item_key = absl::StrCat(key, "[", rules.size(), "]");
        const std::string label = absl::StrCat(file, ": ", item_key);
        if (!item.IsMap()) return Invalid(label, absl::StrCat("expected a map, got ", KindOf(item)));
        RoutingRule rule;
        FNA_RETURN_IF_ERROR(ApplyYamlMap(item, file, item_key + ".", "", RuleFields(), rule));
        if (rule.allowed_projects.empty() && rule.default_project.empty()) {
          return Invalid(label, "sets neither allowed_projects nor default_project");
        }
        rules.push_back(std::move(rule));
      }
    }
    config.routing_rules = std::move(rules);
    return absl::OkStatus();
  };
  field.get_yaml = [](const AgentConfig& config) {
    YAML::Node rules(YAML::NodeType::Sequence);
    for (const RoutingRule& rule : config.routing_rules) rules.push_back(ToYaml(RuleFields(), rule));
    if (config.routing_rules.empty()) rules.SetStyle(YAML::EmitterStyle::Flow);  // "[]" on the key's line
    return rules;
  };
  return field;
}

// A YAML scalar as JSON: quoted scalars are strings; plain ones are null, booleans and numbers when they
// read as such (YAML 1.2 core schema), else strings.
constexpr char kYamlStringTag[] = "tag:yaml.org,2002:str";

nlohmann::json ScalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!" || node.Tag() == kYamlStringTag) return text;
  if (text.empty() || text == "~" || text == "null") return nullptr;
  if (text == "true") return true;
  if (text == "false") return false;
  int64_t integer = 0;
  if (ParseInt(text).ok() && absl::SimpleAtoi(text, &integer)) return integer;
  double number = 0;
  if (text.find_first_not_of("0123456789.eE+-") == std::string::npos && absl::SimpleAtod(text, &number)) {
    return number;
  }
  return text;
}

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.Scalar()] = YamlToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const YAML::Node& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    default:
      return nullptr;
  }
}

// The inverse of YamlToJson: strings that would read back as another type carry the !!str tag.
YAML::Node JsonToYaml(const nlohmann::json& json) {
  if (json.is_object()) {
    YAML::Node map(YAML::NodeType::Map);
    for (const auto& [key, value] : json.items()) map[key] = JsonToYaml(value);
    return map;
  }
  if (json.is_array()) {
    YAML::Node list(YAML::NodeType::Sequence);
    for (const nlohmann::json& item : json) list.push_back(JsonToYaml(item));
    return list;
  }
  if (json.is_null()) return YAML::Node(YAML::NodeType::Null);
  if (!json.is_string()) return YAML::Node(json.dump());
  YAML::Node scalar(json.get<std::string>());
  if (!ScalarToJson(scalar).is_string()) scalar.SetTag(kYamlStringTag);
  return scalar;
}

// A YAML-only key holding a Kubernetes object (a map) or list, stored as JSON text ("" when unset).
Field<AgentConfig> KubernetesJsonField(std::string path, std::string help, std::string AgentConfig::*member,
                                       bool list) {
  Field<AgentConfig> field;
  field.path = std::move(path);
  field.type = list ? "YAML list" : "YAML map";
  field.help = std::move(help);
  field.set_yaml = [member, list](const YAML::Node& node, const std::string& file, const std::string& key,
                                  AgentConfig& config) -> absl::Status {
    if (node.IsNull()) {
      config.*member = "";
      return absl::OkStatus();
    }
    if (list ? !node.IsSequence() : !node.IsMap()) {
      return Invalid(absl::StrCat(file, ": ", key),
                     absl::StrCat("expected ", list ? "a list" : "a map", ", got ", KindOf(node)));
    }
    config.*member = node.size() == 0 ? "" : YamlToJson(node).dump();  // empty: none
    return absl::OkStatus();
  };
  field.get_yaml = [member, list](const AgentConfig& config) {
    if ((config.*member).empty()) {
      YAML::Node empty(list ? YAML::NodeType::Sequence : YAML::NodeType::Map);
      empty.SetStyle(YAML::EmitterStyle::Flow);
      return empty;
    }
    return JsonToYaml(nlohmann::json::parse(config.*member));
  };
  return field;
}

const std::vector<Field<AgentConfig>>& ConfigFields() {
  using C = AgentConfig;
  static const auto* const fields = new std::vector<Field<C>>{
      StringField<C>(
          "server.listen_address", "host:port",
          "Address the gRPC server listens on: host:port or [IPv6]:port. A non-loopback address needs "
          "executor.process.allow_non_loopback with the process executor.",
          &C::listen_address, ListenAddress),
      IntField<C>("server.max_receive_message_bytes",
                  "Largest gRPC message the server accepts, in bytes (4 MiB to 2^31-1).",
                  &C::max_receive_message_bytes, int64_t{4} << 20, std::numeric_limits<int32_t>::max()),
      StringField<C>(
          "server.metrics_address", "host:port",
          "Address of the HTTP endpoint serving /metrics (Prometheus), /readyz and /healthz; empty: "
          "not served.",
          &C::metrics_address, OptionalListenAddress),
      DurationField<C>(
          "server.drain_timeout",
          "On SIGTERM, how long calls in flight and pending final writes may take before the agent "
          "exits (> 0, at most 1h); keep it below the Pod's terminationGracePeriodSeconds.",
          &C::drain_timeout, {absl::ZeroDuration(), false, absl::Hours(1), true}),
      StringField<C>(
          "server.tls_cert_file", "path",
          "PEM certificate chain of the gRPC server, re-read when it changes; empty: plaintext gRPC. "
          "Needs server.tls_key_file.",
          &C::tls_cert_file, AnyString),
      StringField<C>("server.tls_key_file", "path", "PEM private key of server.tls_cert_file.",
                     &C::tls_key_file, AnyString),
      StringField<C>("server.tls_client_ca_file", "path",
                     "PEM CAs that must have signed every client's certificate (mutual TLS); empty: clients "
                     "send none. Stock propeller sends no client certificate.",
                     &C::tls_client_ca_file, AnyString),
      DurationField<C>(
          "server.tls_refresh_interval",
          "How often the TLS files are re-read to pick up rotated certificates (1s to 24h, rounded "
          "down to whole seconds).",
          &C::tls_refresh_interval, {absl::Seconds(1), true, absl::Hours(24), true}),
      StringField<C>("agent.name", "string", "Agent name reported in GetAgent and ListAgents.",
                     &C::agent_name, NonEmpty),
      ListField<C>(
          "agent.task_types", "list of names",
          "Flyte task types the agent serves and lists ([A-Za-z0-9_.-]+, no duplicates). Propeller routes "
          "every listed type to the agent.",
          &C::task_types, TaskTypeName, ListCheck::kNonEmptyUnique),
      EnumField<C, RetryableFailureMode>(
          "agent.retryable_failure",
          "How a retryable failure is reported: phase RETRYABLE_FAILED (propeller >= 1.16), or state "
          "RETRYABLE_FAILURE (propeller 1.13-1.15).",
          &C::retryable_failure,
          {{"phase", RetryableFailureMode::kPhase}, {"state", RetryableFailureMode::kState}}),
      StringField<C>("flyte.console_url", "URL",
                     "Flyte console base URL (http:// or https://; a trailing '/' is removed) for the run's "
                     "flyte/execution_url; empty: the field is omitted.",
                     &C::console_url, ConsoleUrl),
      StringField<C>("tracking.default_project", "workspace/project",
                     "Neptune project of a task that chooses none and matches no routing rule.",
                     &C::default_project, Project),
      ListField<C>("tracking.allowed_projects", "list of workspace/project or *",
                   "Neptune projects a task matching no routing rule may choose (\"*\": any); "
                   "tracking.default_project is always allowed.",
                   &C::allowed_projects, ProjectOrAny, ListCheck::kAny),
      ListField<C>("tracking.default_tags", "list of strings",
                   "Tags added to every run (each 1-128 characters).", &C::default_tags, Tag,
                   ListCheck::kAny),
      DurationField<C>(
          "tracking.finalize_grace",
          "How long GetTask holds back a terminal phase while the run's final fields are written; "
          "past it the write continues in the background. 0 allowed.",
          &C::finalize_grace, {absl::ZeroDuration(), true, absl::InfiniteDuration(), false}),
      DurationField<C>("tracking.create_budget",
                       "Total time CreateTask spends on Neptune, retries included (> 0, at most 60s); "
                       "propeller's CreateTask deadline is 3s by default.",
                       &C::create_budget, {absl::ZeroDuration(), false, absl::Seconds(60), true}),
      RoutingRulesField(),
      EnumField<C, TrackerKind>(
          "tracker.kind",
          "Where runs are recorded: offline (a local directory) or neptune (a Neptune 2.x server).",
          &C::tracker, {{"offline", TrackerKind::kOffline}, {"neptune", TrackerKind::kNeptune}}),
      StringField<C>("tracker.offline.directory", "path",
                     "Directory of the offline tracker; runs go to <directory>/offline/ in the layout "
                     "`neptune sync` reads.",
                     &C::offline_directory, NonEmpty),
      StringField<C>(
          "tracker.neptune.host", "URL",
          "The Neptune server's base URL; empty: the api_url (else api_address) inside the API token.",
          &C::neptune_host, AnyString),
      StringField<C>("tracker.neptune.application_url", "URL",
                     "Base of the links to runs; empty: the applicationUrl the server reports.",
                     &C::neptune_application_url, ConsoleUrl),
      StringField<C>(
          "tracker.neptune.api_token_file", "path",
          "File holding the Neptune API token, re-read when it changes; empty: the NEPTUNE_API_TOKEN "
          "environment variable. Routing rules may name their own token_file.",
          &C::neptune_api_token_file, AnyString),
      StringField<C>("tracker.neptune.ca_file", "path",
                     "PEM file of the CA that signed the server's certificate; empty: the system's CAs.",
                     &C::neptune_ca_file, AnyString),
      BoolField<C>("tracker.neptune.allow_self_signed",
                   "Accept any server certificate (self-signed servers only; never in production).",
                   &C::neptune_allow_self_signed),
      DurationField<C>(
          "tracker.neptune.ping_interval",
          "How often each active run is pinged, so that Neptune shows it running (> 0, at most 10m).",
          &C::neptune_ping_interval, {absl::ZeroDuration(), false, absl::Minutes(10), true}),
      DurationField<C>("tracker.neptune.ping_idle_expiry",
                       "A run whose task was not polled for this long is no longer pinged (> 0).",
                       &C::neptune_ping_idle_expiry,
                       {absl::ZeroDuration(), false, absl::InfiniteDuration(), false}),
      IntField<C>("tracker.neptune.max_pings_per_second",
                  "Budget of pings over all runs of this replica, per second (1-100000).",
                  &C::neptune_max_pings_per_second, 1, 100000),
      EnumField<C, ExecutorKind>(
          "executor.kind",
          "What runs the tasks: process (a local process per task, for development) or kubernetes (a Pod per "
          "task attempt).",
          &C::executor, {{"process", ExecutorKind::kProcess}, {"kubernetes", ExecutorKind::kKubernetes}}),
      StringField<C>("executor.process.state_directory", "path",
                     "Directory where the process executor keeps each task's state and output.",
                     &C::process_state_directory, NonEmpty),
      BoolField<C>("executor.process.allow_non_loopback",
                   "Allow a non-loopback server.listen_address with the process executor, which runs task "
                   "commands on this host.",
                   &C::process_allow_non_loopback),
      StringField<C>("executor.process.runner_path", "path",
                     "The flyte-neptune-runner program; empty: the one next to the agent binary.",
                     &C::process_runner_path, AnyString),
      StringField<C>(
          "executor.kubernetes.kubeconfig", "path",
          "Kubeconfig file for development outside the cluster; empty: in-cluster credentials (the "
          "Pod's service account).",
          &C::k8s_kubeconfig, AnyString),
      StringField<C>("executor.kubernetes.context", "string",
                     "Kubeconfig context; empty: its current-context.", &C::k8s_context, AnyString),
      ListField<C>("executor.kubernetes.namespaces", "list of namespaces",
                   "Namespaces the agent's Pods live in, matching its RBAC (a Role per namespace); empty: "
                   "cluster-wide (a ClusterRole).",
                   &C::k8s_namespaces, DnsLabel, ListCheck::kAny),
      ListField<C>("executor.kubernetes.token_namespaces", "list of namespaces or *",
                   "Namespaces whose task Pods get NEPTUNE_API_TOKEN, as a reference to the token Secret in "
                   "that namespace (never a value); \"*\": all. Empty: no task Pod gets the token.",
                   &C::k8s_token_namespaces, DnsLabelOrAny, ListCheck::kAny),
      StringField<C>("executor.kubernetes.token_secret", "string",
                     "Name of the Secret holding the Neptune API token in each token namespace.",
                     &C::k8s_token_secret, DnsLabel),
      StringField<C>("executor.kubernetes.token_secret_key", "string", "Key of the token in that Secret.",
                     &C::k8s_token_secret_key, NonEmpty),
      ListField<C>("executor.kubernetes.default_env", "list of NAME=value",
                   "Environment added to every task container (propeller's k8s.default-env-vars).",
                   &C::k8s_default_env, EnvAssignment, ListCheck::kAny),
      ListField<C>("executor.kubernetes.env_from_secrets", "list of names",
                   "Secrets whose keys every task container gets as environment (envFrom, optional), e.g. "
                   "the blob store's credentials.",
                   &C::k8s_env_from_secrets, DnsLabel, ListCheck::kAny),
      ListField<C>("executor.kubernetes.env_from_config_maps", "list of names",
                   "ConfigMaps whose keys every task container gets as environment (envFrom, optional).",
                   &C::k8s_env_from_config_maps, DnsLabel, ListCheck::kAny),
      StringField<C>("executor.kubernetes.default_cpu", "quantity",
                     "CPU request and limit of a task that sets neither.", &C::k8s_default_cpu, Quantity),
      StringField<C>("executor.kubernetes.default_memory", "quantity",
                     "Memory request and limit of a task that sets neither.", &C::k8s_default_memory,
                     Quantity),
      StringField<C>("executor.kubernetes.gpu_resource_name", "string",
                     "Resource name of a task's GPU request.", &C::k8s_gpu_resource_name, NonEmpty),
      StringField<C>("executor.kubernetes.image_pull_policy", "Always | IfNotPresent | Never",
                     "imagePullPolicy of task containers; empty: Kubernetes' default.",
                     &C::k8s_image_pull_policy, PullPolicy),
      KubernetesJsonField(
          "executor.kubernetes.default_pod_template",
          "Base of every container task's Pod: a PodTemplate ({template: {metadata, spec}}) or "
          "{metadata, spec}, merged as propeller merges its default pod template. YAML only.",
          &C::k8s_default_pod_template, false),
      KubernetesJsonField("executor.kubernetes.interruptible_tolerations",
                          "Tolerations added to the Pods of interruptible attempts. YAML only.",
                          &C::k8s_interruptible_tolerations, true),
      ListField<C>("executor.kubernetes.interruptible_node_selector", "list of key=value",
                   "Node selector entries added to the Pods of interruptible attempts.",
                   &C::k8s_interruptible_node_selector, LabelAssignment, ListCheck::kAny),
      BoolField<C>("executor.kubernetes.owner_references",
                   "Give each Pod an ownerReference to its FlyteWorkflow (needs get on flyteworkflows), so "
                   "it is deleted with its workflow.",
                   &C::k8s_owner_references),
      BoolField<C>(
          "executor.kubernetes.watch",
          "Serve GetTask from one list+watch cache of the agent's Pods (needs list and watch on pods), "
          "so API load does not grow with running tasks or poll rate; false: one GET per GetTask.",
          &C::k8s_watch),
      DurationField<C>("executor.kubernetes.request_timeout",
                       "Bound of each Kubernetes API call, retries included (> 0, at most 60s).",
                       &C::k8s_request_timeout, {absl::ZeroDuration(), false, absl::Seconds(60), true}),
      DurationField<C>("executor.kubernetes.cleanup_delay",
                       "A finished Pod is deleted this long after its run was finalized (>= 0).",
                       &C::k8s_cleanup_delay, {absl::ZeroDuration(), true, absl::InfiniteDuration(), false}),
      DurationField<C>("executor.kubernetes.sweep_interval", "How often finished Pods are looked for (> 0).",
                       &C::k8s_sweep_interval,
                       {absl::ZeroDuration(), false, absl::InfiniteDuration(), false}),
      DurationField<C>(
          "executor.kubernetes.image_pull_backoff_grace",
          "An image pull failing this long fails the task (k8s.image-pull-backoff-grace-period).",
          &C::k8s_image_pull_backoff_grace, {absl::ZeroDuration(), true, absl::InfiniteDuration(), false}),
      DurationField<C>("executor.kubernetes.create_container_error_grace",
                       "A container-creation error lasting this long fails the task.",
                       &C::k8s_create_container_error_grace,
                       {absl::ZeroDuration(), true, absl::InfiniteDuration(), false}),
      DurationField<C>("executor.kubernetes.pod_pending_timeout",
                       "A Pod pending this long fails the task retryably; 0: never.",
                       &C::k8s_pod_pending_timeout,
                       {absl::ZeroDuration(), true, absl::InfiniteDuration(), false}),
      IntField<C>("executor.kubernetes.qps", "Kubernetes API requests per second, at most (1-10000).",
                  &C::k8s_qps, 1, 10000),
      IntField<C>("executor.kubernetes.burst", "Kubernetes API request burst (1-10000).", &C::k8s_burst, 1,
                  10000),
      StringField<C>("storage.s3.endpoint", "URL",
                     "S3-compatible endpoint for s3:// output prefixes (e.g. MinIO's); empty: "
                     "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS's regional endpoint.",
                     &C::s3_endpoint, ConsoleUrl),
      StringField<C>("storage.s3.region", "string",
                     "Region the requests are signed for; empty: AWS_REGION or AWS_DEFAULT_REGION, else "
                     "us-east-1.",
                     &C::s3_region, AnyString),
      BoolField<C>("storage.s3.force_path_style",
                   "Path-style URLs (endpoint/bucket/key) even on AWS; a custom endpoint always uses them.",
                   &C::s3_force_path_style),
      StringField<C>("storage.s3.sts_endpoint", "URL",
                     "STS endpoint for web-identity credentials; empty: AWS_ENDPOINT_URL_STS or "
                     "AWS_ENDPOINT_URL, else AWS's regional STS.",
                     &C::s3_sts_endpoint, ConsoleUrl),
      StringField<C>(
          "storage.s3.ca_file", "path",
          "PEM file of the CAs to trust for S3 and STS; empty: AWS_CA_BUNDLE, else the system's CAs.",
          &C::s3_ca_file, AnyString),
      EnumField<C, LogFormat>(
          "logging.format", "Log format: text on a terminal and JSON lines otherwise (auto), json or text.",
          &C::log_format,
          {{"auto", LogFormat::kAuto}, {"json", LogFormat::kJson}, {"text", LogFormat::kText}}),
      EnumField<C, LogLevel>("logging.level", "Lowest level logged.", &C::log_level,
                             {{"debug", LogLevel::kDebug},
                              {"info", LogLevel::kInfo},
                              {"warning", LogLevel::kWarning},
                              {"error", LogLevel::kError}}),
  };
  return *fields;
}

std::string EnvVar(absl::string_view path) {
  return absl::StrCat(kEnvPrefix, absl::AsciiStrToUpper(absl::StrReplaceAll(path, {{".", "_"}})));
}

std::string Flag(absl::string_view path) { return absl::StrCat("--", path); }

// Levenshtein distance, ignoring case.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const bool same = absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean "X"?)" for the candidate within 2 edits of `name`, or "". Sections holding `name` are not
// suggested.
std::string DidYouMean(absl::string_view name, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 3;
  for (const std::string& candidate : candidates) {
    if (absl::StartsWith(name, absl::StrCat(candidate, "."))) continue;
    const size_t distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best == nullptr ? "" : absl::StrCat(" (did you mean ", Quote(*best), "?)");
}

template <typename S>
const Field<S>* FindField(const std::vector<Field<S>>& fields, absl::string_view path) {
  for (const Field<S>& field : fields) {
    if (field.path == path) return &field;
  }
  return nullptr;
}

// Whether `path` names a map of keys ("server", "executor.process").
template <typename S>
bool IsSection(const std::vector<Field<S>>& fields, absl::string_view path) {
  for (const Field<S>& field : fields) {
    if (absl::StartsWith(field.path, absl::StrCat(path, "."))) return true;
  }
  return false;
}

// Every key and section, as `key_prefix` + path.
template <typename S>
std::vector<std::string> KnownKeys(const std::vector<Field<S>>& fields, absl::string_view key_prefix) {
  std::vector<std::string> keys;
  for (const Field<S>& field : fields) {
    for (size_t dot = field.path.find('.'); dot != std::string::npos; dot = field.path.find('.', dot + 1)) {
      keys.push_back(absl::StrCat(key_prefix, field.path.substr(0, dot)));
    }
    keys.push_back(absl::StrCat(key_prefix, field.path));
  }
  return keys;
}

template <typename S>
absl::Status ApplyYamlValue(const Field<S>& field, const YAML::Node& node, const std::string& file,
                            const std::string& key, S& s) {
  if (field.set_yaml) return field.set_yaml(node, file, key, s);
  const std::string label = absl::StrCat(file, ": ", key);
  const auto text = [](const YAML::Node& scalar) {
    return scalar.IsScalar() ? scalar.Scalar() : std::string();
  };
  std::vector<std::string> values;
  if (!field.list) {
    if (!node.IsScalar() && !node.IsNull()) {
      return Invalid(label, absl::StrCat("expected ", field.type, ", got ", KindOf(node)));
    }
    values.push_back(text(node));
  } else if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (!item.IsScalar() && !item.IsNull()) {
        return Invalid(absl::StrCat(label, "[", values.size(), "]"),
                       absl::StrCat("expected a string, got ", KindOf(item)));
      }
      values.push_back(text(item));
    }
  } else if (!node.IsNull()) {
    return Invalid(label, absl::StrCat("expected ", field.type, ", got ", KindOf(node)));
  }
  return field.set(values, label, s);
}

// Applies the entries of `map`, whose keys are relative to `section` ("" or "server."). Keys are shown (in
// errors) as `key_prefix` + path.
template <typename S>
absl::Status ApplyYamlMap(const YAML::Node& map, const std::string& file, const std::string& key_prefix,
                          const std::string& section, const std::vector<Field<S>>& fields, S& s) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) {
      const std::string parent(absl::StripSuffix(key_prefix + section, "."));
      return Invalid(file, parent.empty() ? "a top-level key is not a string"
                                          : absl::StrCat("a key of ", Quote(parent), " is not a string"));
    }
    const std::string path = section + entry.first.Scalar();
    const std::string key = key_prefix + path;
    // Dotted keys would let one key be set twice in a file ("server.x" beside "server: {x: }").
    if (absl::StrContains(entry.first.Scalar(), '.')) {
      return Invalid(file, absl::StrCat("key ", Quote(key), " must be nested, one map per '.'"));
    }
    if (!seen.insert(path).second) return Invalid(file, absl::StrCat("duplicate key ", Quote(key)));
    if (const Field<S>* field = FindField(fields, path); field != nullptr) {
      FNA_RETURN_IF_ERROR(ApplyYamlValue(*field, entry.second, file, key, s));
    } else if (IsSection(fields, path)) {
      if (entry.second.IsNull()) continue;
      if (!entry.second.IsMap()) {
        return Invalid(absl::StrCat(file, ": ", key),
                       absl::StrCat("expected a map, got ", KindOf(entry.second)));
      }
      FNA_RETURN_IF_ERROR(ApplyYamlMap(entry.second, file, key_prefix, path + ".", fields, s));
    } else {
      return Invalid(
          file, absl::StrCat("unknown key ", Quote(key), DidYouMean(key, KnownKeys(fields, key_prefix))));
    }
  }
  return absl::OkStatus();
}

// Sets `value` at the dotted `path` of `map`, creating the maps on the way.
void InsertAt(YAML::Node map, absl::string_view path, const YAML::Node& value) {
  const size_t dot = path.find('.');
  if (dot == absl::string_view::npos) {
    map[std::string(path)] = value;
    return;
  }
  InsertAt(map[std::string(path.substr(0, dot))], path.substr(dot + 1), value);
}

template <typename S>
YAML::Node ValueToYaml(const Field<S>& field, const S& s) {
  if (field.get_yaml) return field.get_yaml(s);
  const std::vector<std::string> values = field.get(s);
  if (!field.list) return YAML::Node(values[0]);
  YAML::Node list(YAML::NodeType::Sequence);
  list.SetStyle(YAML::EmitterStyle::Flow);
  for (const std::string& value : values) list.push_back(value);
  return list;
}

template <typename S>
YAML::Node ToYaml(const std::vector<Field<S>>& fields, const S& s) {
  YAML::Node map(YAML::NodeType::Map);
  for (const Field<S>& field : fields) InsertAt(map, field.path, ValueToYaml(field, s));
  return map;
}

std::string FlowYaml(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// `text` wrapped at `width` columns, each line indented by `indent` spaces.
std::string Wrap(absl::string_view text, size_t indent, size_t width) {
  std::string out;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, std::string(indent, ' '), line, "\n");
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot read"));
  std::string text;
  char buffer[1 << 14];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot read"));
  return text;
}

absl::Status ApplyYamlFile(const std::string& file, AgentConfig& config) {
  FNA_ASSIGN_OR_RETURN(const std::string text, ReadFile(file));
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(text);
    if (documents.size() > 1) {
      return Invalid(file, absl::StrCat("holds ", documents.size(), " YAML documents; expected one"));
    }
    if (documents.empty() || documents[0].IsNull()) return absl::OkStatus();
    if (!documents[0].IsMap())
      return Invalid(file, absl::StrCat("expected a map, got ", KindOf(documents[0])));
    return ApplyYamlMap(documents[0], file, "", "", ConfigFields(), config);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return Invalid(file, absl::StrCat("not valid YAML: ", e.msg));
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg));
  }
}

// Sets a key from a variable or flag named `label`: lists are comma-separated, items trimmed.
absl::Status ApplyText(const Field<AgentConfig>& field, absl::string_view text, const std::string& label,
                       AgentConfig& config) {
  if (field.set_yaml) return Invalid(label, absl::StrCat(field.path, " can only be set in the YAML file"));
  std::vector<std::string> values;
  if (!field.list) {
    values.emplace_back(text);
  } else if (!text.empty()) {
    for (absl::string_view item : absl::StrSplit(text, ','))
      values.emplace_back(absl::StripAsciiWhitespace(item));
  }
  return field.set(values, label, config);
}

absl::Status CheckMerged(const AgentConfig& config) {
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        config.tls_cert_file.empty()
            ? "server.tls_key_file is set but server.tls_cert_file is empty: TLS needs both"
            : "server.tls_cert_file is set but server.tls_key_file is empty: TLS needs both");
  }
  if (!config.tls_client_ca_file.empty() && config.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "server.tls_client_ca_file is set but server.tls_cert_file and server.tls_key_file are empty: mutual "
        "TLS needs the server's certificate too");
  }
  if (config.executor == ExecutorKind::kProcess && !config.process_allow_non_loopback) {
    FNA_ASSIGN_OR_RETURN(const std::string host, ListenHost(config.listen_address));
    if (!IsLoopback(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("server.listen_address ", Quote(config.listen_address),
                       " is not loopback: the process executor runs task commands on this host; set "
                       "executor.process.allow_non_loopback: true to allow it"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// Kubernetes injects <SERVICE>_SERVICE_HOST, <SERVICE>_PORT, <SERVICE>_PORT_8000_TCP... for every Service in
// the namespace; a Service named flyte-neptune-agent yields FLYTE_NEPTUNE_AGENT_PORT and friends, which are
// not configuration and must not stop the agent.
bool IsServiceLinkVariable(absl::string_view name) {
  absl::string_view rest = name.substr(kEnvPrefix.size());
  if (rest == "PORT" || rest == "SERVICE_HOST" || rest == "SERVICE_PORT" ||
      absl::StartsWith(rest, "SERVICE_PORT_")) {
    return true;
  }
  if (!absl::ConsumePrefix(&rest, "PORT_")) return false;
  const size_t digits = rest.find_first_not_of("0123456789");
  if (digits == 0 || digits == absl::string_view::npos) return false;
  rest.remove_prefix(digits);
  return rest == "_TCP" || rest == "_UDP" || rest == "_SCTP" || absl::StartsWith(rest, "_TCP_") ||
         absl::StartsWith(rest, "_UDP_") || absl::StartsWith(rest, "_SCTP_");
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::map<std::string, std::string>& environment) {
  const std::vector<Field<AgentConfig>>& fields = ConfigFields();
  CommandLine command_line;
  std::vector<std::pair<const Field<AgentConfig>*, std::string>> settings;  // key flags, in order
  std::string config_flag;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--") || arg == "--") {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", Quote(arg)));
    }
    const size_t equals = arg.find('=');
    const bool has_value = equals != std::string::npos;
    const std::string name = arg.substr(0, equals);
    const std::string value = has_value ? arg.substr(equals + 1) : "";
    if (name == "--config") {
      if (!has_value && i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
        config_flag = args[++i];
      } else {
        config_flag = value;
      }
      if (config_flag.empty()) return Invalid(name, "missing value (--config=FILE or --config FILE)");
      continue;
    }
    bool* action = name == "--print-config" ? &command_line.print_config
                   : name == "--version"    ? &command_line.version
                   : name == "--help"       ? &command_line.help
                                            : nullptr;
    if (action != nullptr) {
      if (has_value) return Invalid(name, absl::StrCat("takes no value, got ", Quote(value)));
      *action = true;
      continue;
    }
    const Field<AgentConfig>* field = FindField(fields, absl::string_view(name).substr(2));
    if (field == nullptr) {
      std::vector<std::string> flags = {"--config", "--print-config", "--version", "--help"};
      for (const Field<AgentConfig>& known : fields) flags.push_back(Flag(known.path));
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", Quote(name), DidYouMean(name, flags)));
    }
    if (!has_value) return Invalid(name, absl::StrCat("missing value (", name, "=VALUE)"));
    settings.emplace_back(field, value);
  }

  if (!config_flag.empty()) {
    command_line.config_file = config_flag;
  } else if (auto it = environment.find(std::string(kConfigEnv)); it != environment.end()) {
    if (it->second.empty()) return Invalid(kConfigEnv, "must not be empty");
    command_line.config_file = it->second;
  }
  if (command_line.help || command_line.version) return command_line;

  AgentConfig& config = command_line.config;
  if (!command_line.config_file.empty()) FNA_RETURN_IF_ERROR(ApplyYamlFile(command_line.config_file, config));
  for (const auto& variable : environment) {
    const std::string& name = variable.first;
    const std::string& value = variable.second;
    if (!absl::StartsWith(name, kEnvPrefix) || name == kConfigEnv || IsServiceLinkVariable(name)) continue;
    const auto field = std::find_if(fields.begin(), fields.end(),
                                    [&](const Field<AgentConfig>& f) { return EnvVar(f.path) == name; });
    if (field == fields.end()) {
      std::vector<std::string> known = {std::string(kConfigEnv)};
      for (const Field<AgentConfig>& f : fields) known.push_back(EnvVar(f.path));
      return absl::InvalidArgumentError(
          absl::StrCat("unknown environment variable ", Quote(name), DidYouMean(name, known)));
    }
    FNA_RETURN_IF_ERROR(ApplyText(*field, value, name, config));
  }
  for (const auto& [field, value] : settings) {
    FNA_RETURN_IF_ERROR(ApplyText(*field, value, Flag(field->path), config));
  }
  FNA_RETURN_IF_ERROR(CheckMerged(config));
  return command_line;
}

std::string FormatConfig(const AgentConfig& config) {
  YAML::Emitter out;
  out << ToYaml(ConfigFields(), config);
  return absl::StrCat(out.c_str(), "\n");
}

std::vector<ConfigKeyInfo> DescribeConfigKeys() {
  const AgentConfig config;
  const RoutingRule rule;
  std::vector<ConfigKeyInfo> keys;
  for (const Field<AgentConfig>& field : ConfigFields()) {
    const bool yaml_only = static_cast<bool>(field.set_yaml);
    keys.push_back({field.path, field.type, FlowYaml(ValueToYaml(field, config)),
                    yaml_only ? "" : EnvVar(field.path), yaml_only ? "" : Flag(field.path), field.help});
    if (field.path != "tracking.routing_rules") continue;
    for (const Field<RoutingRule>& rule_field : RuleFields()) {
      keys.push_back({absl::StrCat(field.path, "[].", rule_field.path), rule_field.type,
                      FlowYaml(ValueToYaml(rule_field, rule)), "", "", rule_field.help});
    }
  }
  return keys;
}

std::string UsageText() {
  std::string text =
      "Usage: flyte-neptune-agent [--config=FILE] [--<key>=<value>...] [--print-config | --version | "
      "--help]\n"
      "\n"
      "Serves Flyte tasks and tracks each task attempt as a Neptune run.\n"
      "\n"
      "  --config=FILE, --config FILE  YAML configuration file (also FLYTE_NEPTUNE_AGENT_CONFIG)\n"
      "  --print-config                print the effective configuration as YAML and exit\n"
      "  --version                     print the version and exit\n"
      "  --help                        print this help and exit\n"
      "\n"
      "Configuration keys. Precedence: flags > environment > YAML file > defaults. In the file a key is "
      "nested\n"
      "(server: {listen_address: ...}); its variable is FLYTE_NEPTUNE_AGENT_ + the key upper-cased with '.' "
      "-> '_';\n"
      "its flag is --<key>=<value>. Lists are comma-separated in variables and flags. Durations: 90s, 2m, "
      "1h30m.\n"
      "\n";
  for (const ConfigKeyInfo& key : DescribeConfigKeys()) {
    absl::StrAppend(&text, "  ", key.path, " (", key.type, ", default ", key.default_value, ")\n");
    if (key.env_var.empty()) {
      absl::StrAppend(&text, "      YAML only\n");
    } else {
      absl::StrAppend(&text, "      ", key.env_var, ", ", key.flag, "\n");
    }
    absl::StrAppend(&text, Wrap(key.help, 6, 110));
  }
  return text;
}

}  // namespace fna
