#ifndef FNA_AGENT_CLIENT_TASK_FILE_H_
#define FNA_AGENT_CLIENT_TASK_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "flyteidl/admin/agent.pb.h"

namespace fna::client {

// Builds the CreateTaskRequest propeller would send for the task described by a small YAML (or JSON) file:
//
//   task:        {type: neptune, project, domain, name, version, image, command: [..], args: [..],
//                 env: {K: V}, timeout: 10m, neptune: {project, name, description, tags: [..]}, config: {K:
//                 V}}
//   execution:   {project, domain, name, node_id: n0, attempt: 0, labels: {..}, annotations: {..},
//                 env: {K: V}, namespace, service_account}
//   output_prefix: file:///abs/path    (default:
//   <outputs_root>/<project>-<domain>-<name>/<node>/data/<attempt>)
//
// Omitted ids take sample defaults; an omitted execution name is `default_execution_name`.
// `{{.outputPrefix}}` and `{{.rawOutputDataPrefix}}` in args are rendered as propeller renders them.
// InvalidArgument names the bad key.
absl::StatusOr<flyteidl::admin::CreateTaskRequest> LoadTaskFile(absl::string_view path,
                                                                absl::string_view default_execution_name,
                                                                absl::string_view outputs_root);

}  // namespace fna::client

#endif  // FNA_AGENT_CLIENT_TASK_FILE_H_
