#include "agent/tracking/settings.h"

#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fna::tracking {
namespace {

// One setting as found in the request, with where it came from for error messages.
struct Value {
  bool set = false;
  std::string text;
  std::vector<std::string> list;  // tags only
  std::string source;
};

std::vector<std::string> SplitTags(absl::string_view text) {
  std::vector<std::string> tags;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) tags.emplace_back(part);
  }
  return tags;
}

absl::Status ReadCustom(const google::protobuf::Struct& custom, Value* project, Value* name,
                        Value* description, Value* tags) {
  auto it = custom.fields().find("neptune");
  if (it == custom.fields().end()) return absl::OkStatus();
  if (!it->second.has_struct_value()) {
    return absl::InvalidArgumentError("task template custom.neptune must be an object");
  }
  const auto& fields = it->second.struct_value().fields();
  for (const auto& [key, value] : fields) {
    const std::string source = absl::StrCat("custom.neptune.", key);
    Value* target = nullptr;
    if (key == "project") {
      target = project;
    } else if (key == "name") {
      target = name;
    } else if (key == "description") {
      target = description;
    } else if (key == "tags") {
      if (value.has_list_value()) {
        tags->set = true;
        tags->source = source;
        for (const auto& item : value.list_value().values()) {
          if (!item.has_string_value()) {
            return absl::InvalidArgumentError(absl::StrCat("task template ", source, " must hold strings"));
          }
          tags->list.push_back(item.string_value());
        }
        continue;
      }
      if (value.has_string_value()) {
        *tags = Value{true, "", SplitTags(value.string_value()), source};
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("task template ", source, " must be a list of strings or a comma-separated string"));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("task template has unknown setting ", source,
                                                     "; known: project, name, description, tags"));
    }
    if (!value.has_string_value()) {
      return absl::InvalidArgumentError(absl::StrCat("task template ", source, " must be a string"));
    }
    *target = Value{true, value.string_value(), {}, source};
  }
  return absl::OkStatus();
}

// Fills `value` from `map[key]` unless a higher-precedence source already set it.
void ReadMap(const google::protobuf::Map<std::string, std::string>& map, const std::string& key,
             absl::string_view source_prefix, bool is_tags, Value* value) {
  if (value->set) return;
  auto it = map.find(key);
  if (it == map.end()) return;
  value->set = true;
  value->source = absl::StrCat(source_prefix, key);
  if (is_tags) {
    value->list = SplitTags(it->second);
  } else {
    value->text = it->second;
  }
}

bool Matches(const std::string& pattern, const std::string& value) {
  return pattern == "*" || pattern == value;
}

bool ValidProjectName(absl::string_view project) {
  std::vector<absl::string_view> parts = absl::StrSplit(project, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return false;
  return absl::c_none_of(project, [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); });
}

}  // namespace

absl::StatusOr<RunSettings> ResolveSettings(const flyteidl::core::TaskTemplate& task_template,
                                            const flyteidl::admin::TaskExecutionMetadata& metadata,
                                            const AgentConfig& config) {
  RunSettings settings;
  auto label = metadata.labels().find("neptune.ai/tracking");
  if (label != metadata.labels().end() && absl::AsciiStrToLower(label->second) == "disabled") {
    settings.set_disabled(true);
    settings.set_routing_rule(-1);
    return settings;
  }

  Value project, name, description, tags;
  if (auto status = ReadCustom(task_template.custom(), &project, &name, &description, &tags); !status.ok()) {
    return status;
  }
  ReadMap(task_template.config(), "neptune.project", "config ", false, &project);
  ReadMap(task_template.config(), "neptune.name", "config ", false, &name);
  ReadMap(task_template.config(), "neptune.description", "config ", false, &description);
  ReadMap(task_template.config(), "neptune.tags", "config ", true, &tags);
  ReadMap(metadata.annotations(), "neptune.ai/project", "annotation ", false, &project);
  ReadMap(metadata.annotations(), "neptune.ai/name", "annotation ", false, &name);
  ReadMap(metadata.annotations(), "neptune.ai/description", "annotation ", false, &description);
  ReadMap(metadata.annotations(), "neptune.ai/tags", "annotation ", true, &tags);

  if (name.text.size() > kMaxRunNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("neptune name (", name.source, ") is ", name.text.size(),
                                                   " characters; the limit is ", kMaxRunNameLength));
  }
  if (description.text.size() > kMaxDescriptionLength) {
    return absl::InvalidArgumentError(absl::StrCat("neptune description (", description.source, ") is ",
                                                   description.text.size(), " bytes; the limit is ",
                                                   kMaxDescriptionLength));
  }
  if (tags.list.size() > kMaxTags) {
    return absl::InvalidArgumentError(absl::StrCat("neptune tags (", tags.source, ") has ", tags.list.size(),
                                                   " tags; the limit is ", kMaxTags));
  }
  for (const std::string& tag : tags.list) {
    if (tag.size() > kMaxTagLength) {
      return absl::InvalidArgumentError(absl::StrCat("neptune tag \"", tag.substr(0, 32), "...\" (",
                                                     tags.source, ") is ", tag.size(),
                                                     " characters; the limit is ", kMaxTagLength));
    }
  }

  // The routing rule for this Flyte project/domain decides which Neptune projects are allowed.
  const auto& execution = metadata.task_execution_id().node_execution_id().execution_id();
  int rule_index = -1;
  for (size_t i = 0; i < config.routing_rules.size(); ++i) {
    const RoutingRule& rule = config.routing_rules[i];
    if (Matches(rule.flyte_project, execution.project()) && Matches(rule.flyte_domain, execution.domain())) {
      rule_index = static_cast<int>(i);
      break;
    }
  }
  const std::vector<std::string>& allowed =
      rule_index >= 0 ? config.routing_rules[rule_index].allowed_projects : config.allowed_projects;
  std::string default_project =
      rule_index >= 0 ? config.routing_rules[rule_index].default_project : config.default_project;
  const std::vector<std::string>& rule_tags =
      rule_index >= 0 ? config.routing_rules[rule_index].tags : config.default_tags;
  if (default_project.empty() && !allowed.empty() && allowed.front() != "*")
    default_project = allowed.front();

  std::string chosen = project.set ? project.text : default_project;
  if (chosen.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no Neptune project for Flyte project ", execution.project(), "/", execution.domain(),
        ": set custom.neptune.project on the task, or a default project in the agent's routing rules"));
  }
  if (!ValidProjectName(chosen)) {
    return absl::InvalidArgumentError(absl::StrCat("neptune project \"", chosen, "\" (", project.source,
                                                   ") is not of the form workspace/project"));
  }
  const bool allowed_here = chosen == default_project || absl::c_linear_search(allowed, "*") ||
                            absl::c_linear_search(allowed, chosen);
  if (!allowed_here) {
    std::vector<std::string> permitted = allowed;
    if (!default_project.empty() && !absl::c_linear_search(permitted, default_project)) {
      permitted.insert(permitted.begin(), default_project);
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "Neptune project ", chosen, " (", project.source, ") is not allowed for Flyte project ",
        execution.project(), "/", execution.domain(), "; allowed: ", absl::StrJoin(permitted, ", ")));
  }

  settings.set_project(chosen);
  settings.set_name(name.text);
  settings.set_description(description.text);
  settings.set_routing_rule(rule_index);
  std::vector<std::string> all_tags = tags.list;
  all_tags.insert(all_tags.end(), rule_tags.begin(), rule_tags.end());
  all_tags.push_back(kFlyteTag);
  for (const std::string& tag : all_tags) {
    if (!absl::c_linear_search(settings.tags(), tag)) settings.add_tags(tag);
  }
  return settings;
}

}  // namespace fna::tracking
