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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/common/status_macros.h"
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
      EnumField<C, ExecutorKind>("executor.kind", "What runs the tasks: process (a local process per task).",
                                 &C::executor, {{"process", ExecutorKind::kProcess}}),
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
