#ifndef FNA_AGENT_TESTING_FLYTE_REQUESTS_H_
#define FNA_AGENT_TESTING_FLYTE_REQUESTS_H_

#include <string>

#include "flyteidl/admin/agent.pb.h"

namespace fna {

// A CreateTaskRequest shaped as propeller sends it for a flytekit Python task (flyte-agent-protocol.md §3).
inline flyteidl::admin::CreateTaskRequest MakeCreateRequest(const std::string& node_id = "n0",
                                                            int attempt = 0,
                                                            const std::string& output_prefix = "") {
  flyteidl::admin::CreateTaskRequest request;
  const std::string prefix =
      output_prefix.empty()
          ? "s3://my-s3-bucket/metadata/propeller/flytesnacks-development-f6c5d2a1b9e8a4c3d2b1/" + node_id +
                "/data/" + std::to_string(attempt)
          : output_prefix;
  request.set_output_prefix(prefix);
  auto* tmpl = request.mutable_template_();
  tmpl->set_type("neptune");
  auto* id = tmpl->mutable_id();
  id->set_resource_type(flyteidl::core::TASK);
  id->set_project("flytesnacks");
  id->set_domain("development");
  id->set_name("workflows.train.train_model");
  id->set_version("v1");
  tmpl->mutable_metadata()->mutable_timeout()->set_seconds(3600);
  auto* container = tmpl->mutable_container();
  container->set_image("ghcr.io/flyteorg/flytekit:py3.11-1.16.0");
  container->add_args("pyflyte-execute");
  container->add_args("--inputs");
  container->add_args("s3://my-s3-bucket/metadata/inputs.pb");
  container->add_args("--output-prefix");
  container->add_args(prefix);
  container->add_args("--raw-output-data-prefix");
  container->add_args("s3://my-s3-bucket/data/ab/f6c5d2a1b9e8a4c3d2b1-n0-0");
  auto* env = container->add_env();
  env->set_key("FLYTE_SDK_LOGGING_LEVEL");
  env->set_value("20");
  auto* md = request.mutable_task_execution_metadata();
  auto* task_execution = md->mutable_task_execution_id();
  *task_execution->mutable_task_id() = *id;
  task_execution->set_retry_attempt(attempt);
  auto* node = task_execution->mutable_node_execution_id();
  node->set_node_id(node_id);
  auto* execution = node->mutable_execution_id();
  execution->set_project("flytesnacks");
  execution->set_domain("development");
  execution->set_name("f6c5d2a1b9e8a4c3d2b1");
  md->set_namespace_("flytesnacks-development");
  md->set_k8s_service_account("default");
  (*md->mutable_labels())["workflow-name"] = "workflows-train-training-wf";
  (*md->mutable_labels())["execution-id"] = "f6c5d2a1b9e8a4c3d2b1";
  (*md->mutable_environment_variables())["EXTRA"] = "1";
  return request;
}

}  // namespace fna

#endif  // FNA_AGENT_TESTING_FLYTE_REQUESTS_H_
