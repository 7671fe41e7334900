#include "agent/tracking/task_spec.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fna::tracking {

std::string RawOutputPrefixFromArgs(const flyteidl::core::Container& container) {
  constexpr absl::string_view kFlag = "--raw-output-data-prefix";
  const auto& args = container.args();
  for (int i = 0; i < args.size(); ++i) {
    if (args[i] == kFlag) return i + 1 < args.size() ? args[i + 1] : "";
    if (absl::StartsWith(args[i], absl::StrCat(kFlag, "="))) return args[i].substr(kFlag.size() + 1);
  }
  return "";
}

absl::StatusOr<executor::TaskSpec> BuildTaskSpec(const flyteidl::admin::CreateTaskRequest& request,
                                                 const ResourceMeta& meta) {
  const flyteidl::core::Container& container = request.template_().container();
  executor::TaskSpec spec;
  spec.name = meta.execution_id();
  spec.image = container.image();
  spec.argv.assign(container.command().begin(), container.command().end());
  spec.argv.insert(spec.argv.end(), container.args().begin(), container.args().end());
  if (spec.argv.empty()) {
    return absl::InvalidArgumentError(
        "task template's container has neither command nor args: nothing to run");
  }
  for (const auto& pair : container.env()) spec.env.emplace_back(pair.key(), pair.value());
  const auto& metadata = request.task_execution_metadata();
  // Map order is unspecified; sort for a deterministic environment.
  std::map<std::string, std::string> execution_env(metadata.environment_variables().begin(),
                                                   metadata.environment_variables().end());
  for (const auto& [key, value] : execution_env) spec.env.emplace_back(key, value);

  const FlyteIds& ids = meta.ids();
  spec.env.emplace_back("FLYTE_INTERNAL_EXECUTION_PROJECT", ids.project());
  spec.env.emplace_back("FLYTE_INTERNAL_EXECUTION_DOMAIN", ids.domain());
  spec.env.emplace_back("FLYTE_INTERNAL_EXECUTION_ID", ids.execution_name());
  spec.env.emplace_back("FLYTE_INTERNAL_EXECUTION_WORKFLOW", ids.workflow());
  spec.env.emplace_back("FLYTE_INTERNAL_TASK_PROJECT", ids.task_project());
  spec.env.emplace_back("FLYTE_INTERNAL_TASK_DOMAIN", ids.task_domain());
  spec.env.emplace_back("FLYTE_INTERNAL_TASK_NAME", ids.task_name());
  spec.env.emplace_back("FLYTE_INTERNAL_TASK_VERSION", ids.task_version());
  spec.env.emplace_back("FLYTE_ATTEMPT_NUMBER", absl::StrCat(ids.retry_attempt()));
  if (!meta.settings().disabled()) {
    spec.env.emplace_back("NEPTUNE_PROJECT", meta.settings().project());
    spec.env.emplace_back("NEPTUNE_CUSTOM_RUN_ID", meta.custom_run_id());
    spec.neptune_project = meta.settings().project();
    spec.custom_run_id = meta.custom_run_id();
  }
  spec.request = &request;

  spec.k8s_namespace = metadata.namespace_();
  spec.service_account = metadata.k8s_service_account();
  std::map<std::string, std::string> labels(metadata.labels().begin(), metadata.labels().end());
  spec.labels.assign(labels.begin(), labels.end());
  std::map<std::string, std::string> annotations(metadata.annotations().begin(),
                                                 metadata.annotations().end());
  spec.annotations.assign(annotations.begin(), annotations.end());
  return spec;
}

}  // namespace fna::tracking
