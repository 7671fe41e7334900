#include "agent/client/task_file.h"

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

namespace fna::client {
namespace {

absl::Status Unknown(absl::string_view path, const YAML::Node& map, const std::set<std::string>& known,
                     absl::string_view section) {
  for (const auto& item : map) {
    const std::string key = item.first.as<std::string>();
    if (known.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": unknown key \"", section, key, "\""));
    }
  }
  return absl::OkStatus();
}

std::string Str(const YAML::Node& map, const char* key, const std::string& fallback) {
  return map[key] ? map[key].as<std::string>() : fallback;
}

}  // namespace

absl::StatusOr<flyteidl::admin::CreateTaskRequest> LoadTaskFile(absl::string_view path,
                                                                absl::string_view default_execution_name,
                                                                absl::string_view outputs_root) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(std::string(path));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a map"));
  try {
    if (auto s = Unknown(path, root, {"task", "execution", "output_prefix"}, ""); !s.ok()) return s;
    const YAML::Node task = root["task"] ? root["task"] : YAML::Node(YAML::NodeType::Map);
    const YAML::Node execution = root["execution"] ? root["execution"] : YAML::Node(YAML::NodeType::Map);
    if (auto s = Unknown(path, task,
                         {"type", "project", "domain", "name", "version", "image", "command", "args", "env",
                          "timeout", "neptune", "config"},
                         "task.");
        !s.ok()) {
      return s;
    }
    if (auto s = Unknown(path, execution,
                         {"project", "domain", "name", "node_id", "attempt", "labels", "annotations", "env",
                          "namespace", "service_account"},
                         "execution.");
        !s.ok()) {
      return s;
    }

    flyteidl::admin::CreateTaskRequest request;
    const std::string project = Str(execution, "project", "flytesnacks");
    const std::string domain = Str(execution, "domain", "development");
    const std::string name = Str(execution, "name", std::string(default_execution_name));
    const std::string node_id = Str(execution, "node_id", "n0");
    const uint32_t attempt = execution["attempt"] ? execution["attempt"].as<uint32_t>() : 0;
    const std::string output_prefix = root["output_prefix"]
                                          ? root["output_prefix"].as<std::string>()
                                          : absl::StrCat(outputs_root, "/", project, "-", domain, "-", name,
                                                         "/", node_id, "/data/", attempt);
    const std::string raw_prefix = absl::StrCat(outputs_root, "/raw/", name, "-", node_id, "-", attempt);
    request.set_output_prefix(output_prefix);

    auto* tmpl = request.mutable_template_();
    tmpl->set_type(Str(task, "type", "neptune"));
    auto* id = tmpl->mutable_id();
    id->set_resource_type(flyteidl::core::TASK);
    id->set_project(Str(task, "project", project));
    id->set_domain(Str(task, "domain", domain));
    id->set_name(Str(task, "name", "sample.task"));
    id->set_version(Str(task, "version", "v1"));
    if (task["timeout"]) {
      absl::Duration timeout;
      if (!absl::ParseDuration(task["timeout"].as<std::string>(), &timeout)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": task.timeout is not a duration (e.g. 10m)"));
      }
      tmpl->mutable_metadata()->mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
    }
    auto* container = tmpl->mutable_container();
    container->set_image(Str(task, "image", "ghcr.io/flyteorg/flytekit:py3.11-latest"));
    for (const auto& item : task["command"]) container->add_command(item.as<std::string>());
    for (const auto& item : task["args"]) {
      // Propeller renders these templates before CreateTask (flyte-agent-protocol.md §3).
      container->add_args(absl::StrReplaceAll(
          item.as<std::string>(),
          {{"{{.outputPrefix}}", output_prefix}, {"{{.rawOutputDataPrefix}}", raw_prefix}}));
    }
    for (const auto& item : task["env"]) {
      auto* env = container->add_env();
      env->set_key(item.first.as<std::string>());
      env->set_value(item.second.as<std::string>());
    }
    for (const auto& item : task["config"]) {
      (*tmpl->mutable_config())[item.first.as<std::string>()] = item.second.as<std::string>();
    }
    if (const YAML::Node neptune = task["neptune"]) {
      auto& fields =
          *(*tmpl->mutable_custom()->mutable_fields())["neptune"].mutable_struct_value()->mutable_fields();
      for (const auto& item : neptune) {
        const std::string key = item.first.as<std::string>();
        if (item.second.IsSequence()) {
          auto* list = fields[key].mutable_list_value();
          for (const auto& tag : item.second) list->add_values()->set_string_value(tag.as<std::string>());
        } else {
          fields[key].set_string_value(item.second.as<std::string>());
        }
      }
    }

    auto* metadata = request.mutable_task_execution_metadata();
    auto* task_execution = metadata->mutable_task_execution_id();
    *task_execution->mutable_task_id() = *id;
    task_execution->set_retry_attempt(attempt);
    auto* node = task_execution->mutable_node_execution_id();
    node->set_node_id(node_id);
    auto* exec = node->mutable_execution_id();
    exec->set_project(project);
    exec->set_domain(domain);
    exec->set_name(name);
    metadata->set_namespace_(Str(execution, "namespace", absl::StrCat(project, "-", domain)));
    metadata->set_k8s_service_account(Str(execution, "service_account", "default"));
    auto& labels = *metadata->mutable_labels();
    labels["execution-id"] = name;
    labels["project"] = project;
    labels["domain"] = domain;
    labels["node-id"] = node_id;
    for (const auto& item : execution["labels"])
      labels[item.first.as<std::string>()] = item.second.as<std::string>();
    for (const auto& item : execution["annotations"]) {
      (*metadata->mutable_annotations())[item.first.as<std::string>()] = item.second.as<std::string>();
    }
    for (const auto& item : execution["env"]) {
      (*metadata->mutable_environment_variables())[item.first.as<std::string>()] =
          item.second.as<std::string>();
    }
    return request;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace fna::client
