#include "agent/tracking/fields.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace fna::tracking {

using neptune::Field;
using neptune::StringSet;

std::string RunName(const ResourceMeta& meta) {
  return meta.settings().name().empty() ? meta.execution_id() : meta.settings().name();
}

std::vector<Field> InitialFields(const ResourceMeta& meta, absl::string_view console_url,
                                 absl::string_view working_directory) {
  const FlyteIds& ids = meta.ids();
  std::vector<Field> fields = {
      {"sys/name", RunName(meta)},
      {"sys/description", meta.settings().description()},
      {"sys/tags", StringSet{{meta.settings().tags().begin(), meta.settings().tags().end()}}},
      {"sys/group_tags", StringSet{{ids.execution_name()}}},
      {"sys/failed", false},
      // The seed plugin's fields.
      {"flyte/execution_id", meta.execution_id()},
      {"flyte/project", ids.project()},
      {"flyte/domain", ids.domain()},
      {"flyte/name", ids.execution_name()},
      {"flyte/raw_output_prefix", ids.raw_output_prefix()},
      {"flyte/output_metadata_prefix", meta.output_prefix()},
      {"flyte/task/name", ids.task_name()},
      {"flyte/task/project", ids.task_project()},
      {"flyte/task/domain", ids.task_domain()},
      {"flyte/task/version", ids.task_version()},
      // The agent's.
      {"flyte/node_id", ids.node_id()},
      {"flyte/retry_attempt", static_cast<int64_t>(ids.retry_attempt())},
      {"flyte/workflow", ids.workflow()},
      {"flyte/namespace", ids.namespace_()},
      {"flyte/service_account", ids.service_account()},
      {"flyte/image", ids.image()},
      {"flyte/task/type", ids.task_type()},
  };
  if (!console_url.empty()) {
    fields.push_back(
        {"flyte/execution_url", absl::StrCat(console_url, "/projects/", ids.project(), "/domains/",
                                             ids.domain(), "/executions/", ids.execution_name())});
  }
  if (!working_directory.empty())
    fields.push_back({"flyte/working_directory", std::string(working_directory)});
  return fields;
}

std::vector<Field> FinalFields(const ResourceMeta& meta, const RunOutcome& outcome) {
  const bool failed = outcome.phase() != "SUCCEEDED";
  std::vector<Field> fields = {
      {"sys/name", RunName(meta)},
      {"sys/description", meta.settings().description()},
      {"sys/failed", failed},
      {"flyte/phase", outcome.phase()},
  };
  if (outcome.started_at_ms() > 0) {
    fields.push_back({"flyte/started_at", absl::FromUnixMillis(outcome.started_at_ms())});
  }
  if (outcome.finished_at_ms() > 0) {
    fields.push_back({"flyte/finished_at", absl::FromUnixMillis(outcome.finished_at_ms())});
  }
  if (outcome.started_at_ms() > 0 && outcome.finished_at_ms() >= outcome.started_at_ms()) {
    fields.push_back({"flyte/duration_seconds",
                      static_cast<double>(outcome.finished_at_ms() - outcome.started_at_ms()) / 1000.0});
  }
  if (outcome.has_exit_code())
    fields.push_back({"flyte/exit_code", static_cast<int64_t>(outcome.exit_code())});
  if (!outcome.error().empty()) fields.push_back({"flyte/error", outcome.error()});
  // After an exit 0, whether error.pb could be looked for: false means SUCCEEDED rests on the exit status
  // only (an output_prefix scheme no store reads, or a failed read).
  if (outcome.phase() == "SUCCEEDED" || outcome.error_file_checked()) {
    fields.push_back({"flyte/error_file_checked", outcome.error_file_checked()});
  }
  if (!outcome.working_directory().empty()) {
    fields.push_back({"flyte/working_directory", outcome.working_directory()});
  }
  return fields;
}

}  // namespace fna::tracking
