#ifndef FNA_AGENT_TRACKING_LOG_FIELDS_H_
#define FNA_AGENT_TRACKING_LOG_FIELDS_H_

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "fna/resource_meta.pb.h"

namespace fna::tracking {

// The Flyte ids (and run) of a task, as log context.
inline LogFields ResourceLogFields(const ResourceMeta& meta) {
  const FlyteIds& ids = meta.ids();
  return {{"project", ids.project()},
          {"domain", ids.domain()},
          {"execution", ids.execution_name()},
          {"node", ids.node_id()},
          {"retry", absl::StrCat(ids.retry_attempt())},
          {"task_type", ids.task_type()},
          {"execution_id", meta.execution_id()},
          {"run_id", meta.custom_run_id()}};
}

}  // namespace fna::tracking

#endif  // FNA_AGENT_TRACKING_LOG_FIELDS_H_
