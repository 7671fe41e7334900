// Every kind of manifest the builder produces passes the offline validators (kubernetes-executor.md §5,
// §5.x), and the validators are shown to bite on a misspelled and a mistyped field.

#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "agent/executor/kubernetes/pod_builder.h"
#include "agent/executor/kubernetes/testing/manifest_validator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::executor::kubernetes {
namespace {

using ::testing::HasSubstr;
using testing::ValidateManifest;
using Json = nlohmann::ordered_json;

// Skips the test when a validator is not installed here; otherwise returns the verdict.
#define VALIDATE_OR_SKIP(status_var, manifest)                                     \
  const absl::Status status_var = ValidateManifest(manifest);                      \
  if (status_var.code() == absl::StatusCode::kUnavailable) {                       \
    GTEST_SKIP() << "manifest validators not installed: " << status_var.message(); \
  }

flyteidl::admin::CreateTaskRequest Request() {
  flyteidl::admin::CreateTaskRequest request;
  request.set_output_prefix("s3://bucket/metadata/propeller/flytesnacks-development-abc/n0/data/0");
  auto* task = request.mutable_template_();
  task->set_type("python-task");
  auto* id = task->mutable_id();
  id->set_project("flytesnacks");
  id->set_domain("development");
  id->set_name("workflows.example.train");
  id->set_version("v1");
  auto* container = task->mutable_container();
  container->set_image("cr.flyte.org/flyteorg/flytekit:py3.11-1.16.0");
  for (const char* arg :
       {"pyflyte-execute", "--inputs", "s3://bucket/inputs.pb", "--output-prefix", "s3://bucket/0"}) {
    container->add_args(arg);
  }
  auto* env = container->add_env();
  env->set_key("FLYTE_SDK_LOGGING_LEVEL");
  env->set_value("20");
  auto* gpu = container->mutable_resources()->add_limits();
  gpu->set_name(flyteidl::core::Resources::GPU);
  gpu->set_value("1");
  auto* storage = container->mutable_resources()->add_requests();
  storage->set_name(flyteidl::core::Resources::EPHEMERAL_STORAGE);
  storage->set_value("10Gi");
  auto* secret = task->mutable_security_context()->add_secrets();
  secret->set_group("neptune");
  secret->set_key("api-token");
  (*task->mutable_config())["link_type"] = "neptune";
  task->mutable_extended_resources()->mutable_gpu_accelerator()->set_device("nvidia-tesla-t4");
  task->mutable_extended_resources()->mutable_shared_memory()->set_mount_name("dshm");
  task->mutable_extended_resources()->mutable_shared_memory()->set_mount_path("/dev/shm");
  auto* metadata = request.mutable_task_execution_metadata();
  auto* task_execution = metadata->mutable_task_execution_id();
  *task_execution->mutable_task_id() = *id;
  task_execution->set_retry_attempt(1);
  task_execution->mutable_node_execution_id()->set_node_id("n0");
  auto* execution = task_execution->mutable_node_execution_id()->mutable_execution_id();
  execution->set_project("flytesnacks");
  execution->set_domain("development");
  execution->set_name("abc");
  metadata->set_namespace_("flytesnacks-development");
  metadata->set_k8s_service_account("default");
  (*metadata->mutable_labels())["interruptible"] = "true";
  (*metadata->mutable_labels())["workflow-name"] = "workflows-example-wf";
  (*metadata->mutable_environment_variables())["EXTRA"] = "1";
  return request;
}

PodIdentity Identity() {
  PodIdentity identity;
  identity.pod_name = "abc-n0-1-k3j4h5g6f7";
  identity.neptune_project = "ml-team/flyte";
  identity.custom_run_id = "abc-k3j4h5g6f7d8s9a";
  identity.flyteworkflow_uid = "0b0e8c9e-6f3c-4b8e-9a1d-2f4e5d6c7b8a";
  return identity;
}

PodOptions FullOptions() {
  PodOptions options;
  options.default_env = {{"AWS_REGION", "eu-west-1"}};
  options.env_from_secrets = {"blob-store-credentials"};
  options.env_from_config_maps = {"blob-store-config"};
  options.max_limits = {{"cpu", "8"}, {"memory", "32Gi"}};
  options.image_pull_policy = "IfNotPresent";
  options.console_url = "https://console.example.com";
  options.token_namespaces = {"flytesnacks-development"};
  options.interruptible_tolerations = nlohmann::json::parse(
      R"([{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])");
  options.interruptible_node_selector = {{"cloud.google.com/gke-spot", "true"}};
  options.interruptible_node_selector_requirement =
      nlohmann::json::parse(R"({"key": "node-type", "operator": "In", "values": ["spot"]})");
  options.resource_tolerations["nvidia.com/gpu"] =
      nlohmann::json::parse(R"([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])");
  options.default_pod_template = nlohmann::json::parse(R"({"template": {
      "metadata": {"labels": {"team": "ml"}},
      "spec": {"securityContext": {"runAsNonRoot": true, "fsGroup": 1000},
               "priorityClassName": "batch", "terminationGracePeriodSeconds": 60,
               "containers": [{"name": "default", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                               "securityContext": {"allowPrivilegeEscalation": false}}],
               "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "5Gi"}}]}}})");
  return options;
}

TEST(ManifestValidationTest, ContainerTaskManifestsAreValid) {
  if (::getenv("FNA_PRINT_MANIFEST") != nullptr) {
    std::cout << BuildPod(Request(), Identity(), FullOptions())->dump(2) << "\n";
  }
  for (const bool full : {false, true}) {
    const auto pod = BuildPod(Request(), Identity(), full ? FullOptions() : PodOptions());
    ASSERT_TRUE(pod.ok()) << pod.status();
    VALIDATE_OR_SKIP(status, *pod);
    EXPECT_TRUE(status.ok()) << status << "\n" << pod->dump(2);
  }
}

TEST(ManifestValidationTest, K8sPodManifestIsValid) {
  auto request = Request();
  auto* task = request.mutable_template_();
  task->clear_container();
  task->clear_extended_resources();
  (*task->mutable_config())["primary_container_name"] = "main";
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(R"({
      "containers": [{"name": "main", "image": "ghcr.io/org/trainer:1", "args": ["train"],
                      "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                      "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}},
                     {"name": "sidecar", "image": "envoy:1"}],
      "restartPolicy": "Never"})",
                                                          task->mutable_k8s_pod()->mutable_pod_spec())
                  .ok());
  const auto pod = BuildPod(request, Identity(), FullOptions());
  ASSERT_TRUE(pod.ok()) << pod.status();
  VALIDATE_OR_SKIP(status, *pod);
  EXPECT_TRUE(status.ok()) << status << "\n" << pod->dump(2);
}

TEST(ManifestValidationTest, AMisspelledFieldFails) {
  auto pod = BuildPod(Request(), Identity(), FullOptions());
  ASSERT_TRUE(pod.ok());
  (*pod)["spec"]["containers"][0]["imagePullPolicyy"] = "Always";
  (*pod)["metadata"]["lables"] = Json{{"a", "b"}};
  VALIDATE_OR_SKIP(status, *pod);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("spec.containers[0].imagePullPolicyy: unknown field"));
  EXPECT_THAT(status.message(), HasSubstr("metadata.lables: unknown field"));
}

TEST(ManifestValidationTest, MistypedFieldsFail) {
  auto pod = BuildPod(Request(), Identity(), FullOptions());
  ASSERT_TRUE(pod.ok());
  (*pod)["spec"]["containers"][0]["args"] = "pyflyte-execute";  // a string, not a list
  VALIDATE_OR_SKIP(status, *pod);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("spec.containers[0].args"));

  auto bad_enum = BuildPod(Request(), Identity(), {});
  ASSERT_TRUE(bad_enum.ok());
  (*bad_enum)["spec"]["restartPolicy"] = "Sometimes";  // only kubernetes-models knows the enum
  (*bad_enum)["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "lots";
  VALIDATE_OR_SKIP(enum_status, *bad_enum);
  EXPECT_EQ(enum_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(enum_status.message(),
              HasSubstr("spec.restartPolicy: must be equal to one of the allowed values"));
  EXPECT_THAT(enum_status.message(), HasSubstr("spec.containers.0.resources.limits.cpu"));
}

}  // namespace
}  // namespace fna::executor::kubernetes
