#include "agent/executor/kubernetes/pod_builder.h"

#include <google/protobuf/util/json_util.h>
#include <stdlib.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::executor::kubernetes {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kExecution[] = "f6c5d2a1b9e8a4c3d2b1";
constexpr char kPodName[] = "f6c5d2a1b9e8a4c3d2b1-n0-0";
// A token-shaped value that no input of the builder carries: it must never appear in a manifest.
constexpr char kFakeToken[] = "eyJhcGlfYWRkcmVzcyI6ImZha2UifQ-FAKE-NEPTUNE-TOKEN-1234567890";

// The request behind the reference Pod of kubernetes-executor.md §1.9, as propeller sends it to an agent.
flyteidl::admin::CreateTaskRequest ReferenceRequest() {
  flyteidl::admin::CreateTaskRequest request;
  request.set_output_prefix(
      "s3://my-s3-bucket/metadata/propeller/flytesnacks-development-f6c5d2a1b9e8a4c3d2b1/n0/data/0");
  auto* task = request.mutable_template_();
  task->set_type("python-task");
  auto* id = task->mutable_id();
  id->set_resource_type(flyteidl::core::TASK);
  id->set_project("flytesnacks");
  id->set_domain("development");
  id->set_name("workflows.example.say_hello");
  id->set_version("v1");
  auto* container = task->mutable_container();
  container->set_image("cr.flyte.org/flyteorg/flytekit:py3.11-1.16.0");
  for (const char* arg : {"pyflyte-execute", "--inputs", "s3://…/n0/data/inputs.pb", "--output-prefix",
                          "s3://…/n0/data/0", "--raw-output-data-prefix", "s3://…", "--checkpoint-path",
                          "s3://…/_flytecheckpoints", "--prev-checkpoint", "\"\"", "--resolver",
                          "flytekit.core.python_auto_container.default_task_resolver", "--", "task-module",
                          "workflows.example", "task-name", "say_hello"}) {
    container->add_args(arg);
  }
  auto* cpu = container->mutable_resources()->add_requests();
  cpu->set_name(flyteidl::core::Resources::CPU);
  cpu->set_value("500m");
  auto* memory = container->mutable_resources()->add_requests();
  memory->set_name(flyteidl::core::Resources::MEMORY);
  memory->set_value("1Gi");
  auto* secret = task->mutable_security_context()->add_secrets();
  secret->set_group("neptune");
  secret->set_key("api-token");
  secret->set_mount_requirement(flyteidl::core::Secret::ENV_VAR);

  auto* metadata = request.mutable_task_execution_metadata();
  auto* task_execution = metadata->mutable_task_execution_id();
  *task_execution->mutable_task_id() = *id;
  task_execution->set_retry_attempt(0);
  auto* node = task_execution->mutable_node_execution_id();
  node->set_node_id("n0");
  auto* execution = node->mutable_execution_id();
  execution->set_project("flytesnacks");
  execution->set_domain("development");
  execution->set_name(kExecution);
  metadata->set_namespace_("flytesnacks-development");
  metadata->set_k8s_service_account("default");
  auto& labels = *metadata->mutable_labels();
  labels["execution-id"] = kExecution;
  labels["project"] = "flytesnacks";
  labels["domain"] = "development";
  labels["workflow-name"] = "workflows-example-wf";
  labels["shard-key"] = "5";
  labels["node-id"] = "n0";
  labels["task-name"] = "workflows-example-say-hello";
  labels["interruptible"] = "false";
  return request;
}

PodIdentity Identity() {
  PodIdentity identity;
  identity.pod_name = kPodName;
  identity.neptune_project = "ml-team/flyte";
  identity.custom_run_id = "f6c5d2a1b9e8a4c3d2b1-k3j4h5g6f7d8s9a0p";
  return identity;
}

// The §1.9 document, verbatim.
constexpr char kReferencePod[] = R"json({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "f6c5d2a1b9e8a4c3d2b1-n0-0",
    "namespace": "flytesnacks-development",
    "labels": {
      "execution-id": "f6c5d2a1b9e8a4c3d2b1", "project": "flytesnacks", "domain": "development",
      "workflow-name": "workflows-example-wf", "shard-key": "5", "node-id": "n0",
      "task-name": "workflows-example-say-hello", "interruptible": "false",
      "inject-flyte-secrets": "true", "app.kubernetes.io/managed-by": "neptune-agent"
    },
    "annotations": {
      "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
      "primary_container_name": "f6c5d2a1b9e8a4c3d2b1-n0-0",
      "flyte.secrets/s0": "m4zg54lqhiqce2tfob1hk2tfeifgwzlzhiqceylqnewxi22lmvxcectnn41w34c6ojsxc4ljojsw1zlooq4carkokzpvmqksbi"
    },
    "ownerReferences": [{"apiVersion": "flyte.lyft.com/v1alpha1", "kind": "FlyteWorkflow",
                         "name": "f6c5d2a1b9e8a4c3d2b1", "uid": "<FlyteWorkflow metadata.uid>"}]
  },
  "spec": {
    "restartPolicy": "Never",
    "serviceAccountName": "default",
    "containers": [{
      "name": "f6c5d2a1b9e8a4c3d2b1-n0-0",
      "image": "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.0",
      "args": ["pyflyte-execute", "--inputs", "s3://…/n0/data/inputs.pb", "--output-prefix", "s3://…/n0/data/0",
               "--raw-output-data-prefix", "s3://…", "--checkpoint-path", "s3://…/_flytecheckpoints",
               "--prev-checkpoint", "\"\"", "--resolver", "flytekit.core.python_auto_container.default_task_resolver",
               "--", "task-module", "workflows.example", "task-name", "say_hello"],
      "env": [
        {"name": "FLYTE_INTERNAL_EXECUTION_WORKFLOW", "value": "flytesnacks:development:workflows.example.wf"},
        {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "f6c5d2a1b9e8a4c3d2b1"},
        {"name": "FLYTE_INTERNAL_EXECUTION_PROJECT", "value": "flytesnacks"},
        {"name": "FLYTE_INTERNAL_EXECUTION_DOMAIN", "value": "development"},
        {"name": "FLYTE_ATTEMPT_NUMBER", "value": "0"},
        {"name": "FLYTE_INTERNAL_TASK_PROJECT", "value": "flytesnacks"},
        {"name": "FLYTE_INTERNAL_TASK_DOMAIN", "value": "development"},
        {"name": "FLYTE_INTERNAL_TASK_NAME", "value": "workflows.example.say_hello"},
        {"name": "FLYTE_INTERNAL_TASK_VERSION", "value": "v1"}
      ],
      "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}},
      "terminationMessagePolicy": "FallbackToLogsOnError"
    }]
  }
})json";

Json Plain(const nlohmann::ordered_json& json) { return Json::parse(json.dump()); }

Json Build(const flyteidl::admin::CreateTaskRequest& request, const PodIdentity& identity,
           const PodOptions& options = {}) {
  absl::StatusOr<nlohmann::ordered_json> pod = BuildPod(request, identity, options);
  EXPECT_TRUE(pod.ok()) << pod.status();
  return pod.ok() ? Plain(*pod) : Json();
}

absl::Status BuildError(const flyteidl::admin::CreateTaskRequest& request, const PodIdentity& identity,
                        const PodOptions& options = {}) {
  return BuildPod(request, identity, options).status();
}

const Json& PrimaryContainer(const Json& pod) { return pod["spec"]["containers"][0]; }

// name -> entry of the primary container's env.
std::map<std::string, Json> EnvByName(const Json& container) {
  std::map<std::string, Json> out;
  for (const auto& entry : container["env"]) out[entry["name"].get<std::string>()] = entry;
  return out;
}

std::vector<std::string> EnvNames(const Json& container) {
  std::vector<std::string> out;
  for (const auto& entry : container["env"]) out.push_back(entry["name"].get<std::string>());
  return out;
}

std::string EnvValue(const Json& container, const std::string& name) {
  auto env = EnvByName(container);
  return env.count(name) > 0 && env[name].contains("value") ? env[name]["value"].get<std::string>()
                                                            : "<absent>";
}

google::protobuf::Struct ToStruct(const std::string& json) {
  google::protobuf::Struct out;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &out).ok()) << json;
  return out;
}

void AddResource(google::protobuf::RepeatedPtrField<flyteidl::core::Resources::ResourceEntry>* list,
                 flyteidl::core::Resources::ResourceName name, const std::string& value) {
  auto* entry = list->Add();
  entry->set_name(name);
  entry->set_value(value);
}

// ---- The reference Pod (§1.9) ----

TEST(PodBuilderTest, ReproducesTheReferencePodFieldByField) {
  PodIdentity identity = Identity();
  identity.tracking_disabled = true;  // the reference is propeller's Pod: no Neptune variables
  identity.flyteworkflow_uid = "<FlyteWorkflow metadata.uid>";
  PodOptions options;
  options.agent_labels = {{"app.kubernetes.io/managed-by", "neptune-agent"}};
  const Json pod = Build(ReferenceRequest(), identity, options);

  Json expected = Json::parse(kReferencePod);
  // The one documented difference: propeller's FLYTE_INTERNAL_EXECUTION_WORKFLOW holds the workflow's own
  // name, which an agent never receives; the agent has only the sanitized `workflow-name` label.
  expected["spec"]["containers"][0]["env"][0]["value"] = "flytesnacks:development:workflows-example-wf";

  const Json want = expected.flatten();
  const Json got = pod.flatten();
  for (const auto& [path, value] : want.items()) {
    ASSERT_TRUE(got.contains(path)) << "missing " << path;
    EXPECT_EQ(got[path], value) << path;
  }
  for (const auto& [path, value] : got.items()) EXPECT_TRUE(want.contains(path)) << "unexpected " << path;
  EXPECT_EQ(pod, expected);
}

TEST(PodBuilderTest, TheManifestIsDeterministic) {
  const auto request = ReferenceRequest();
  const auto first = BuildPod(request, Identity(), {});
  const auto second = BuildPod(request, Identity(), {});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->dump(), second->dump());
  EXPECT_EQ(first->begin().key(), "apiVersion");
}

TEST(PodBuilderTest, AddsTheNeptuneVariablesLastUnlessTrackingIsDisabled) {
  const Json pod = Build(ReferenceRequest(), Identity());
  const auto names = EnvNames(PrimaryContainer(pod));
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names[names.size() - 2], "NEPTUNE_PROJECT");
  EXPECT_EQ(names.back(), "NEPTUNE_CUSTOM_RUN_ID");
  EXPECT_EQ(EnvValue(PrimaryContainer(pod), "NEPTUNE_PROJECT"), "ml-team/flyte");
  EXPECT_EQ(EnvValue(PrimaryContainer(pod), "NEPTUNE_CUSTOM_RUN_ID"),
            "f6c5d2a1b9e8a4c3d2b1-k3j4h5g6f7d8s9a0p");
  // Default metadata: the agent's selector label and propeller's default annotation; no ownerReference
  // without the CR's uid.
  EXPECT_EQ(pod["metadata"]["labels"]["app.kubernetes.io/managed-by"], "flyte-neptune-agent");
  EXPECT_EQ(pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
  EXPECT_FALSE(pod["metadata"].contains("ownerReferences"));

  PodIdentity disabled = Identity();
  disabled.tracking_disabled = true;
  const auto disabled_names = EnvNames(PrimaryContainer(Build(ReferenceRequest(), disabled)));
  EXPECT_THAT(disabled_names, ::testing::Not(::testing::Contains("NEPTUNE_PROJECT")));
  EXPECT_THAT(disabled_names, ::testing::Not(::testing::Contains("NEPTUNE_CUSTOM_RUN_ID")));
}

// ---- The Neptune token (design.md §3.7) ----

TEST(PodBuilderTest, TheTokenIsAbsentByDefault) {
  ::setenv("NEPTUNE_API_TOKEN", kFakeToken, 1);  // the builder never reads the agent's environment
  const auto pod = BuildPod(ReferenceRequest(), Identity(), {});
  ::unsetenv("NEPTUNE_API_TOKEN");
  ASSERT_TRUE(pod.ok());
  EXPECT_THAT(pod->dump(), ::testing::Not(HasSubstr("NEPTUNE_API_TOKEN")));
  EXPECT_THAT(pod->dump(), ::testing::Not(HasSubstr(kFakeToken)));
}

TEST(PodBuilderTest, TheTokenIsASecretKeyRefOnlyInOptedInNamespaces) {
  ::setenv("NEPTUNE_API_TOKEN", kFakeToken, 1);
  PodOptions options;
  options.token_namespaces = {"flytesnacks-development"};
  options.token_secret = {"neptune-token", "api-token"};
  const auto opted_in = BuildPod(ReferenceRequest(), Identity(), options);
  auto other_namespace = ReferenceRequest();
  other_namespace.mutable_task_execution_metadata()->set_namespace_("flytesnacks-production");
  const auto not_opted_in = BuildPod(other_namespace, Identity(), options);
  PodIdentity disabled = Identity();
  disabled.tracking_disabled = true;
  const auto tracking_disabled = BuildPod(ReferenceRequest(), disabled, options);
  ::unsetenv("NEPTUNE_API_TOKEN");
  ASSERT_TRUE(opted_in.ok() && not_opted_in.ok() && tracking_disabled.ok());

  const Json pod = Plain(*opted_in);
  const auto env = EnvByName(PrimaryContainer(pod));
  ASSERT_EQ(env.count("NEPTUNE_API_TOKEN"), 1u);
  EXPECT_EQ(env.at("NEPTUNE_API_TOKEN"),
            Json::parse(R"({"name": "NEPTUNE_API_TOKEN", "valueFrom": {"secretKeyRef":
                            {"name": "neptune-token", "key": "api-token", "optional": true}}})"));
  EXPECT_EQ(EnvNames(PrimaryContainer(pod)).back(), "NEPTUNE_API_TOKEN");

  EXPECT_THAT(not_opted_in->dump(), ::testing::Not(HasSubstr("NEPTUNE_API_TOKEN")));
  EXPECT_THAT(tracking_disabled->dump(), ::testing::Not(HasSubstr("NEPTUNE_API_TOKEN")));
  for (const auto* manifest : {&*opted_in, &*not_opted_in, &*tracking_disabled}) {
    EXPECT_THAT(manifest->dump(), ::testing::Not(HasSubstr(kFakeToken)));
  }
  // Every env entry named NEPTUNE_API_TOKEN is a reference, never a value.
  for (const auto& entry : PrimaryContainer(pod)["env"]) {
    if (entry["name"] == "NEPTUNE_API_TOKEN") {
      EXPECT_FALSE(entry.contains("value"));
    }
  }
}

TEST(PodBuilderTest, AStarOptsEveryNamespaceIn) {
  PodOptions options;
  options.token_namespaces = {"*"};
  auto request = ReferenceRequest();
  request.mutable_task_execution_metadata()->set_namespace_("any-namespace");
  const Json pod = Build(request, Identity(), options);
  EXPECT_EQ(EnvByName(PrimaryContainer(pod))["NEPTUNE_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"],
            "neptune-api-token");
}

TEST(PodBuilderTest, TheTokenReferenceReplacesATaskProvidedValue) {
  auto request = ReferenceRequest();
  auto* env = request.mutable_template_()->mutable_container()->add_env();
  env->set_key("NEPTUNE_API_TOKEN");
  env->set_value("users-own-value");
  PodOptions options;
  options.token_namespaces = {"flytesnacks-development"};
  const Json pod = Build(request, Identity(), options);
  const auto names = EnvNames(PrimaryContainer(pod));
  EXPECT_EQ(std::count(names.begin(), names.end(), "NEPTUNE_API_TOKEN"), 1);
  EXPECT_EQ(EnvByName(PrimaryContainer(pod))["NEPTUNE_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"],
            "neptune-api-token");
  EXPECT_THAT(pod.dump(), ::testing::Not(HasSubstr("users-own-value")));
}

TEST(PodBuilderTest, RefusesATokenAmongTheDefaultEnv) {
  PodOptions options;
  options.default_env = {{"NEPTUNE_API_TOKEN", kFakeToken}};
  const absl::Status status = BuildError(ReferenceRequest(), Identity(), options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("options.default_env[0]"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr(kFakeToken)));
}

// ---- Environment (§1.4) ----

TEST(PodBuilderTest, EnvironmentFollowsPropellersOrder) {
  auto request = ReferenceRequest();
  auto* task = request.mutable_template_();
  (*task->mutable_config())["link_type"] = "neptune";
  auto* template_env = task->mutable_container()->add_env();
  template_env->set_key("FLYTE_SDK_LOGGING_LEVEL");
  template_env->set_value("20");
  auto& execution_env = *request.mutable_task_execution_metadata()->mutable_environment_variables();
  execution_env["ZED"] = "z";
  execution_env["ALPHA"] = "a";
  PodOptions options;
  options.console_url = "https://console.example.com/";
  options.default_env = {{"AWS_REGION", "eu-west-1"}};
  options.env_from_secrets = {"blob-store-credentials"};
  options.env_from_config_maps = {"blob-store-config"};
  const Json pod = Build(request, Identity(), options);
  const Json& container = PrimaryContainer(pod);
  EXPECT_THAT(
      EnvNames(container),
      ::testing::ElementsAre("FLYTE_SDK_LOGGING_LEVEL", "FLYTE_INTERNAL_EXECUTION_WORKFLOW",
                             "FLYTE_INTERNAL_EXECUTION_ID", "FLYTE_INTERNAL_EXECUTION_PROJECT",
                             "FLYTE_INTERNAL_EXECUTION_DOMAIN", "FLYTE_ATTEMPT_NUMBER", "FLYTE_EXECUTION_URL",
                             "FLYTE_INTERNAL_TASK_PROJECT", "FLYTE_INTERNAL_TASK_DOMAIN",
                             "FLYTE_INTERNAL_TASK_NAME", "FLYTE_INTERNAL_TASK_VERSION", "ALPHA", "ZED",
                             "AWS_REGION", "NEPTUNE_PROJECT", "NEPTUNE_CUSTOM_RUN_ID"));
  EXPECT_EQ(EnvValue(container, "FLYTE_EXECUTION_URL"),
            "https://console.example.com/projects/flytesnacks/domains/development/executions/"
            "f6c5d2a1b9e8a4c3d2b1/nodeId/n0/nodes");
  EXPECT_EQ(container["envFrom"],
            Json::parse(R"([{"secretRef": {"name": "blob-store-credentials", "optional": true}},
                                                 {"configMapRef": {"name": "blob-store-config", "optional": true}}])"));
}

TEST(PodBuilderTest, ExecutionUrlNeedsALinkTypeAndAConsole) {
  PodOptions options;
  options.console_url = "https://console.example.com";
  EXPECT_EQ(EnvValue(PrimaryContainer(Build(ReferenceRequest(), Identity(), options)), "FLYTE_EXECUTION_URL"),
            "<absent>");
  auto request = ReferenceRequest();
  (*request.mutable_template_()->mutable_config())["link_type"] = "";
  EXPECT_EQ(EnvValue(PrimaryContainer(Build(request, Identity())), "FLYTE_EXECUTION_URL"), "<absent>");
  EXPECT_THAT(EnvValue(PrimaryContainer(Build(request, Identity(), options)), "FLYTE_EXECUTION_URL"),
              HasSubstr("https://console.example.com/projects/"));
}

TEST(PodBuilderTest, ALaterDuplicateReplacesTheEarlierValueInPlace) {
  auto request = ReferenceRequest();
  auto* env = request.mutable_template_()->mutable_container()->add_env();
  env->set_key("LOG_LEVEL");
  env->set_value("template");
  (*request.mutable_task_execution_metadata()->mutable_environment_variables())["LOG_LEVEL"] = "execution";
  PodOptions options;
  options.default_env = {{"LOG_LEVEL", "default"}};
  const Json pod = Build(request, Identity(), options);
  const auto names = EnvNames(PrimaryContainer(pod));
  EXPECT_EQ(std::count(names.begin(), names.end(), "LOG_LEVEL"), 1);
  EXPECT_EQ(names.front(), "LOG_LEVEL");
  EXPECT_EQ(EnvValue(PrimaryContainer(pod), "LOG_LEVEL"), "default");
}

TEST(PodBuilderTest, AttemptNumberAndCommand) {
  auto request = ReferenceRequest();
  request.mutable_task_execution_metadata()->mutable_task_execution_id()->set_retry_attempt(2);
  request.mutable_template_()->mutable_container()->add_command("/bin/entrypoint");
  PodOptions options;
  options.image_pull_policy = "IfNotPresent";
  const Json pod = Build(request, Identity(), options);
  EXPECT_EQ(EnvValue(PrimaryContainer(pod), "FLYTE_ATTEMPT_NUMBER"), "2");
  EXPECT_EQ(PrimaryContainer(pod)["command"], Json::parse(R"(["/bin/entrypoint"])"));
  EXPECT_EQ(PrimaryContainer(pod)["imagePullPolicy"], "IfNotPresent");
}

// ---- Resources (§1.5) ----

Json ResourcesFor(const std::function<void(flyteidl::core::Resources*)>& set,
                  const PodOptions& options = {}) {
  auto request = ReferenceRequest();
  request.mutable_template_()->mutable_container()->clear_resources();
  set(request.mutable_template_()->mutable_container()->mutable_resources());
  const Json pod = Build(request, Identity(), options);
  return pod.is_null() || !PrimaryContainer(pod).contains("resources") ? Json()
                                                                       : PrimaryContainer(pod)["resources"];
}

absl::Status ResourcesError(const std::function<void(flyteidl::core::Resources*)>& set,
                            const PodOptions& options = {}) {
  auto request = ReferenceRequest();
  request.mutable_template_()->mutable_container()->clear_resources();
  set(request.mutable_template_()->mutable_container()->mutable_resources());
  return BuildError(request, Identity(), options);
}

using R = flyteidl::core::Resources;

TEST(PodBuilderResourcesTest, NothingSetGetsThePlatformDefaults) {
  EXPECT_EQ(ResourcesFor([](R*) {}), Json::parse(R"({"requests": {"cpu": "1000m", "memory": "1024Mi"},
                                                    "limits": {"cpu": "1000m", "memory": "1024Mi"}})"));
  PodOptions options;
  options.default_requests = {{"cpu", "100m"}, {"memory", "100Mi"}};
  EXPECT_EQ(ResourcesFor([](R*) {}, options), Json::parse(R"({"requests": {"cpu": "100m", "memory": "100Mi"},
                                                              "limits": {"cpu": "100m", "memory": "100Mi"}})"));
}

TEST(PodBuilderResourcesTest, AMissingRequestCopiesTheLimitAndViceVersa) {
  EXPECT_EQ(
      ResourcesFor([](R* r) {
        AddResource(r->mutable_limits(), R::CPU, "2");
        AddResource(r->mutable_requests(), R::MEMORY, "4Gi");
      }),
      Json::parse(R"({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}})"));
}

TEST(PodBuilderResourcesTest, TheRequestIsCappedAtTheLimit) {
  EXPECT_EQ(
      ResourcesFor([](R* r) {
        AddResource(r->mutable_requests(), R::CPU, "4");
        AddResource(r->mutable_limits(), R::CPU, "2");
        AddResource(r->mutable_requests(), R::MEMORY, "1Gi");
        AddResource(r->mutable_limits(), R::MEMORY, "2Gi");
      }),
      Json::parse(R"({"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}})"));
}

TEST(PodBuilderResourcesTest, PlatformLimitsCapRequestAndLimit) {
  PodOptions options;
  options.max_limits = {{"cpu", "2"}, {"memory", "8Gi"}};
  EXPECT_EQ(
      ResourcesFor(
          [](R* r) {
            AddResource(r->mutable_requests(), R::CPU, "3");
            AddResource(r->mutable_limits(), R::CPU, "8000m");
            AddResource(r->mutable_requests(), R::MEMORY, "4Gi");
          },
          options),
      Json::parse(R"({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}})"));
}

TEST(PodBuilderResourcesTest, GpuGetsTheGpuResourceNameAndEqualRequestAndLimit) {
  const Json resources = ResourcesFor([](R* r) { AddResource(r->mutable_requests(), R::GPU, "1"); });
  EXPECT_EQ(resources["requests"]["nvidia.com/gpu"], "1");
  EXPECT_EQ(resources["limits"]["nvidia.com/gpu"], "1");
  PodOptions options;
  options.gpu_resource_name = "amd.com/gpu";
  const Json amd = ResourcesFor([](R* r) { AddResource(r->mutable_limits(), R::GPU, "2"); }, options);
  EXPECT_EQ(amd["requests"]["amd.com/gpu"], "2");
  EXPECT_EQ(amd["limits"]["amd.com/gpu"], "2");
  EXPECT_FALSE(amd["limits"].contains("nvidia.com/gpu"));
  // Kubernetes requires request == limit for an extended resource.
  const absl::Status differ = ResourcesError([](R* r) {
    AddResource(r->mutable_requests(), R::GPU, "1");
    AddResource(r->mutable_limits(), R::GPU, "2");
  });
  EXPECT_EQ(differ.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(differ.message(), HasSubstr("nvidia.com/gpu"));
  // No GPU asked for: none given, even with a platform default for it.
  PodOptions with_default;
  with_default.default_requests["nvidia.com/gpu"] = "1";
  EXPECT_FALSE(ResourcesFor([](R*) {}, with_default)["limits"].contains("nvidia.com/gpu"));
}

TEST(PodBuilderResourcesTest, EphemeralStorageOnlyWhenAskedFor) {
  EXPECT_FALSE(ResourcesFor([](R*) {})["requests"].contains("ephemeral-storage"));
  const Json resources =
      ResourcesFor([](R* r) { AddResource(r->mutable_requests(), R::EPHEMERAL_STORAGE, "10Gi"); });
  EXPECT_EQ(resources["requests"]["ephemeral-storage"], "10Gi");
  EXPECT_EQ(resources["limits"]["ephemeral-storage"], "10Gi");
}

TEST(PodBuilderResourcesTest, StorageUnknownAndZeroValuesAreDropped) {
  const Json resources = ResourcesFor([](R* r) {
    AddResource(r->mutable_requests(), R::STORAGE, "10Gi");
    AddResource(r->mutable_requests(), R::UNKNOWN, "1");
    AddResource(r->mutable_requests(), R::CPU, "0");
    AddResource(r->mutable_limits(), R::MEMORY, "0Gi");
  });
  EXPECT_EQ(resources, Json::parse(R"({"requests": {"cpu": "1000m", "memory": "1024Mi"},
                                      "limits": {"cpu": "1000m", "memory": "1024Mi"}})"));
}

TEST(PodBuilderResourcesTest, NoDefaultLeavesTheResourceOut) {
  PodOptions options;
  options.default_requests.clear();
  EXPECT_EQ(ResourcesFor([](R*) {}, options), Json());
  EXPECT_EQ(ResourcesFor([](R* r) { AddResource(r->mutable_limits(), R::MEMORY, "1Gi"); }, options),
            Json::parse(R"({"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}})"));
}

TEST(PodBuilderResourcesTest, BadQuantitiesAreInvalidArgumentNamingTheField) {
  const absl::Status lots = ResourcesError([](R* r) { AddResource(r->mutable_requests(), R::CPU, "lots"); });
  EXPECT_EQ(lots.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(lots.message(), HasSubstr("template.container.resources.requests[0] (CPU)"));
  EXPECT_THAT(lots.message(), HasSubstr("\"lots\""));
  const absl::Status negative = ResourcesError([](R* r) {
    AddResource(r->mutable_limits(), R::CPU, "1");
    AddResource(r->mutable_limits(), R::MEMORY, "-1Gi");
  });
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("template.container.resources.limits[1] (MEMORY)"));
  PodOptions options;
  options.max_limits = {{"cpu", "two"}};
  const absl::Status option = ResourcesError([](R*) {}, options);
  EXPECT_EQ(option.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(option.message(), HasSubstr("options.max_limits[\"cpu\"]"));
}

// ---- Secrets (§1.8) ----

TEST(PodBuilderSecretsTest, EncodesEachSecretExactlyAsFlyte) {
  auto request = ReferenceRequest();
  auto* secrets = request.mutable_template_()->mutable_security_context()->mutable_secrets();
  secrets->Clear();
  secrets->Add()->set_key("my_key");
  auto* second = secrets->Add();
  second->set_group("neptune");
  second->set_key("api-token");
  second->set_mount_requirement(flyteidl::core::Secret::ENV_VAR);
  const Json pod = Build(request, Identity());
  EXPECT_EQ(pod["metadata"]["labels"]["inject-flyte-secrets"], "true");
  EXPECT_EQ(pod["metadata"]["annotations"]["flyte.secrets/s0"], "nnsxsoraejwxsx2lmv3secq");
  EXPECT_EQ(
      pod["metadata"]["annotations"]["flyte.secrets/s1"],
      "m4zg54lqhiqce2tfob1hk2tfeifgwzlzhiqceylqnewxi22lmvxcectnn41w34c6ojsxc4ljojsw1zlooq4carkokzpvmqksbi");
  EXPECT_FALSE(pod["metadata"]["annotations"].contains("flyte.secrets/s2"));
}

TEST(PodBuilderSecretsTest, NoSecretsNoLabel) {
  auto request = ReferenceRequest();
  request.mutable_template_()->clear_security_context();
  const Json pod = Build(request, Identity());
  EXPECT_FALSE(pod["metadata"]["labels"].contains("inject-flyte-secrets"));
  for (const auto& [key, value] : pod["metadata"]["annotations"].items()) {
    EXPECT_THAT(key, ::testing::Not(::testing::StartsWith("flyte.secrets/")));
  }
}

TEST(PodBuilderSecretsTest, AnUnknownMountTypeIsInvalid) {
  auto request = ReferenceRequest();
  request.mutable_template_()->mutable_security_context()->mutable_secrets(0)->set_mount_requirement(
      static_cast<flyteidl::core::Secret::MountType>(7));
  const absl::Status status = BuildError(request, Identity());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("template.security_context.secrets[0].mount_requirement"));
}

TEST(PodBuilderSecretsTest, ExecutionIdentityLabelIsSanitized) {
  auto request = ReferenceRequest();
  request.mutable_task_execution_metadata()->mutable_identity()->set_execution_identity(
      "Jane.Doe@example.com");
  EXPECT_EQ(Build(request, Identity())["metadata"]["labels"]["execution-identity"], "jane-doe-example-com");
}

// ---- Metadata (§1.3, §3.5) ----

TEST(PodBuilderMetadataTest, MetadataPrecedence) {
  auto request = ReferenceRequest();
  auto* task_metadata = request.mutable_template_()->mutable_metadata()->mutable_metadata();
  (*task_metadata->mutable_labels())["team"] = "from-task";
  (*task_metadata->mutable_labels())["app.kubernetes.io/managed-by"] = "someone-else";
  (*task_metadata->mutable_annotations())["note"] = "from-task";
  (*task_metadata->mutable_annotations())["primary_container_name"] = "not-the-primary";
  auto* metadata = request.mutable_task_execution_metadata();
  (*metadata->mutable_labels())["team"] = "from-execution";
  (*metadata->mutable_annotations())["neptune.ai/project"] = "ml-team/flyte";
  PodOptions options;
  options.default_labels = {{"team", "default"}, {"cost-center", "42"}};
  options.default_annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] = "true";
  options.agent_annotations = {{"flyte-neptune-agent/version", "1"}};
  (*task_metadata->mutable_annotations())["cluster-autoscaler.kubernetes.io/safe-to-evict"] = "false";
  const Json pod = Build(request, Identity(), options);
  const Json& labels = pod["metadata"]["labels"];
  const Json& annotations = pod["metadata"]["annotations"];
  EXPECT_EQ(labels["team"], "from-execution");
  EXPECT_EQ(labels["cost-center"], "42");
  EXPECT_EQ(labels["app.kubernetes.io/managed-by"], "flyte-neptune-agent");  // the agent's own, always
  EXPECT_EQ(annotations["note"], "from-task");
  EXPECT_EQ(annotations["neptune.ai/project"], "ml-team/flyte");
  EXPECT_EQ(annotations["primary_container_name"], kPodName);
  EXPECT_EQ(annotations["flyte-neptune-agent/version"], "1");
  EXPECT_EQ(annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
}

TEST(PodBuilderMetadataTest, LabelValuesAreSanitizedAtMaximumLengths) {
  auto request = ReferenceRequest();
  auto& labels = *request.mutable_task_execution_metadata()->mutable_labels();
  labels["valid-63"] = std::string(63, 'v');
  labels["valid-dots"] = "workflows.example.say_hello";
  labels["too-long"] = std::string(64, 'A');
  labels["spaces"] = "My Value!";
  labels["cut-dash"] = std::string(62, 'a') + "!b";
  labels["huge"] = std::string(500, '#') + std::string(500, 'Z');
  labels[std::string(63, 'k')] = "max-key";
  labels["example.com/" + std::string(63, 'k')] = "prefixed-key";
  const Json pod = Build(request, Identity());
  const Json& out = pod["metadata"]["labels"];
  EXPECT_EQ(out["valid-63"], std::string(63, 'v'));
  EXPECT_EQ(out["valid-dots"], "workflows.example.say_hello");
  EXPECT_EQ(out["too-long"], std::string(63, 'a'));
  EXPECT_EQ(out["spaces"], "my-value");
  EXPECT_EQ(out["cut-dash"], std::string(62, 'a'));
  EXPECT_EQ(out["huge"], std::string(62, 'z'));  // "-zzz…" cut at 63, then the '-' trimmed
  EXPECT_EQ(out[std::string(63, 'k')], "max-key");
  EXPECT_EQ(out["example.com/" + std::string(63, 'k')], "prefixed-key");
  for (const auto& [key, value] : out.items()) EXPECT_LE(value.get<std::string>().size(), 63u) << key;
}

TEST(PodBuilderMetadataTest, InvalidKeysAreRefusedNamingTheField) {
  for (const std::string& key : {std::string("bad key"), std::string(64, 'k'), std::string("Bad_Prefix/k")}) {
    auto request = ReferenceRequest();
    (*request.mutable_task_execution_metadata()->mutable_labels())[key] = "v";
    const absl::Status status = BuildError(request, Identity());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(status.message(), HasSubstr("task_execution_metadata.labels")) << key;
  }
  auto request = ReferenceRequest();
  (*request.mutable_template_()->mutable_metadata()->mutable_metadata()->mutable_annotations())["a b"] = "v";
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("template.metadata.metadata.annotations"));
  PodOptions options;
  options.agent_labels = {{"app.kubernetes.io/managed-by", "not valid!"}};
  EXPECT_THAT(BuildError(ReferenceRequest(), Identity(), options).message(),
              HasSubstr("options.agent_labels"));
}

TEST(PodBuilderMetadataTest, AnnotationsAreLimitedTo256KiB) {
  auto request = ReferenceRequest();
  (*request.mutable_task_execution_metadata()->mutable_annotations())["big"] = std::string(256 * 1024, 'x');
  const absl::Status status = BuildError(request, Identity());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("annotations"));
}

TEST(PodBuilderMetadataTest, PodNameIsADns1123LabelOfAtMost50) {
  PodIdentity identity = Identity();
  identity.pod_name = std::string(50, 'a');
  EXPECT_EQ(Build(ReferenceRequest(), identity)["metadata"]["name"], std::string(50, 'a'));
  EXPECT_EQ(Build(ReferenceRequest(), identity)["spec"]["containers"][0]["name"], std::string(50, 'a'));
  for (const std::string& bad : {std::string(51, 'a'), std::string("Upper"), std::string("a_b"),
                                 std::string(""), std::string("a.b"), std::string("-a")}) {
    identity.pod_name = bad;
    const absl::Status status = BuildError(ReferenceRequest(), identity);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("identity.pod_name")) << bad;
  }
}

TEST(PodBuilderMetadataTest, NamespaceAndServiceAccount) {
  auto request = ReferenceRequest();
  request.mutable_task_execution_metadata()->set_namespace_("");
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("task_execution_metadata.namespace"));
  request.mutable_task_execution_metadata()->set_namespace_("Bad_Namespace");
  EXPECT_EQ(BuildError(request, Identity()).code(), absl::StatusCode::kInvalidArgument);

  request = ReferenceRequest();
  request.mutable_task_execution_metadata()->clear_k8s_service_account();
  EXPECT_FALSE(Build(request, Identity())["spec"].contains("serviceAccountName"));
  request.mutable_task_execution_metadata()->mutable_identity()->set_k8s_service_account("runner");
  EXPECT_EQ(Build(request, Identity())["spec"]["serviceAccountName"], "runner");
  request.mutable_task_execution_metadata()->set_k8s_service_account("Not Valid");
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("k8s_service_account"));
}

TEST(PodBuilderTest, RefusesTemplatesWithNothingToRun) {
  auto request = ReferenceRequest();
  request.mutable_template_()->clear_container();
  const absl::Status none = BuildError(request, Identity());
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.message(), HasSubstr("template"));
  request = ReferenceRequest();
  request.mutable_template_()->mutable_container()->clear_image();
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("template.container.image"));
}

// ---- Pod-level defaults (§1.6) ----

TEST(PodBuilderTest, InterruptibleAttemptsGetTheirSchedulingRules) {
  PodOptions options;
  options.interruptible_tolerations = Json::parse(
      R"([{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])");
  options.interruptible_node_selector = {{"cloud.google.com/gke-spot", "true"}};
  options.interruptible_node_selector_requirement =
      Json::parse(R"({"key": "node-type", "operator": "In", "values": ["spot"]})");
  options.non_interruptible_node_selector_requirement =
      Json::parse(R"({"key": "node-type", "operator": "In", "values": ["on-demand"]})");
  options.resource_tolerations["nvidia.com/gpu"] =
      Json::parse(R"([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])");

  auto request = ReferenceRequest();
  (*request.mutable_task_execution_metadata()->mutable_labels())["interruptible"] = "true";
  AddResource(request.mutable_template_()->mutable_container()->mutable_resources()->mutable_limits(), R::GPU,
              "1");
  const Json spec = Build(request, Identity(), options)["spec"];
  EXPECT_EQ(spec["tolerations"], Json::parse(R"([
      {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
      {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])"));
  EXPECT_EQ(spec["nodeSelector"], Json::parse(R"({"cloud.google.com/gke-spot": "true"})"));
  EXPECT_EQ(spec["affinity"],
            Json::parse(R"({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
      {"nodeSelectorTerms": [{"matchExpressions": [{"key": "node-type", "operator": "In", "values": ["spot"]}]}]}}})"));

  const Json regular = Build(ReferenceRequest(), Identity(), options)["spec"];
  EXPECT_FALSE(regular.contains("tolerations"));
  EXPECT_FALSE(regular.contains("nodeSelector"));
  EXPECT_EQ(regular["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                   ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0],
            "on-demand");
}

TEST(PodBuilderTest, GpuAcceleratorAndSharedMemory) {
  auto request = ReferenceRequest();
  AddResource(request.mutable_template_()->mutable_container()->mutable_resources()->mutable_requests(),
              R::GPU, "1");
  auto* extended = request.mutable_template_()->mutable_extended_resources();
  extended->mutable_gpu_accelerator()->set_device("nvidia-tesla-a100");
  extended->mutable_gpu_accelerator()->set_partition_size("1g.5gb");
  extended->mutable_shared_memory()->set_mount_name("dshm");
  extended->mutable_shared_memory()->set_mount_path("/dev/shm");
  extended->mutable_shared_memory()->set_size_limit("2Gi");
  const Json spec = Build(request, Identity())["spec"];
  EXPECT_EQ(spec["affinity"],
            Json::parse(R"({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
      {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "k8s.amazonaws.com/accelerator", "operator": "In", "values": ["nvidia-tesla-a100"]},
        {"key": "k8s.amazonaws.com/gpu-partition-size", "operator": "In", "values": ["1g.5gb"]}]}]}}})"));
  EXPECT_EQ(spec["tolerations"], Json::parse(R"([
      {"key": "k8s.amazonaws.com/accelerator", "operator": "Equal", "value": "nvidia-tesla-a100", "effect": "NoSchedule"},
      {"key": "k8s.amazonaws.com/gpu-partition-size", "operator": "Equal", "value": "1g.5gb", "effect": "NoSchedule"}])"));
  EXPECT_EQ(spec["volumes"],
            Json::parse(R"([{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}])"));
  EXPECT_EQ(spec["containers"][0]["volumeMounts"],
            Json::parse(R"([{"name": "dshm", "mountPath": "/dev/shm"}])"));

  // A device without GPUs asked for changes nothing; unpartitioned asks for nodes without partitions.
  auto no_gpu = ReferenceRequest();
  no_gpu.mutable_template_()->mutable_extended_resources()->mutable_gpu_accelerator()->set_device(
      "nvidia-tesla-t4");
  EXPECT_FALSE(Build(no_gpu, Identity())["spec"].contains("affinity"));
  auto unpartitioned = ReferenceRequest();
  AddResource(unpartitioned.mutable_template_()->mutable_container()->mutable_resources()->mutable_limits(),
              R::GPU, "1");
  unpartitioned.mutable_template_()
      ->mutable_extended_resources()
      ->mutable_gpu_accelerator()
      ->set_unpartitioned(true);
  EXPECT_EQ(
      Build(unpartitioned,
            Identity())["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                       ["nodeSelectorTerms"][0]["matchExpressions"],
      Json::parse(R"([{"key": "k8s.amazonaws.com/gpu-partition-size", "operator": "DoesNotExist"}])"));

  auto bad = ReferenceRequest();
  bad.mutable_template_()->mutable_extended_resources()->mutable_shared_memory()->set_mount_name("dshm");
  EXPECT_THAT(BuildError(bad, Identity()).message(), HasSubstr("shared_memory.mount_path"));
}

// ---- Pod templates (§1.7) ----

constexpr char kPodTemplate[] = R"json({
  "apiVersion": "v1", "kind": "PodTemplate",
  "metadata": {"name": "flyte-template", "namespace": "flyte"},
  "template": {
    "metadata": {"labels": {"team": "ml", "inject-flyte-secrets": "false"}, "annotations": {"owner": "platform"}},
    "spec": {
      "restartPolicy": "Always",
      "serviceAccountName": "template-sa",
      "automountServiceAccountToken": false,
      "nodeSelector": {"pool": "training"},
      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
      "volumes": [{"name": "cache", "emptyDir": {}}],
      "initContainers": [{"name": "warmup", "image": "busybox"}],
      "containers": [
        {"name": "default", "image": "ignored", "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
         "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
         "resources": {"limits": {"memory": "2Gi", "gpu": "1"}}},
        {"name": "primary", "securityContext": {"runAsNonRoot": true}},
        {"name": "unrelated-sidecar", "image": "sidecar"}
      ]
    }
  }
})json";

TEST(PodBuilderTemplateTest, MergesTheDefaultPodTemplateUnderFlytesValues) {
  PodOptions options;
  options.default_pod_template = Json::parse(kPodTemplate);
  auto request = ReferenceRequest();
  request.mutable_template_()->mutable_container()->clear_resources();
  const Json pod = Build(request, Identity(), options);
  const Json& spec = pod["spec"];
  EXPECT_EQ(spec["restartPolicy"], "Never");               // Flyte's non-zero value wins
  EXPECT_EQ(spec["serviceAccountName"], "default");        // the execution's
  EXPECT_EQ(spec["automountServiceAccountToken"], false);  // the template's, Flyte sets none
  EXPECT_EQ(spec["nodeSelector"], Json::parse(R"({"pool": "training"})"));
  EXPECT_EQ(spec["tolerations"].size(), 1u);
  EXPECT_EQ(spec["volumes"], Json::parse(R"([{"name": "cache", "emptyDir": {}}])"));
  EXPECT_FALSE(spec.contains("initContainers"));  // template init containers only shape Flyte's own
  ASSERT_EQ(spec["containers"].size(), 1u);       // `default`, `primary`, others: not added
  const Json& container = spec["containers"][0];
  EXPECT_EQ(container["name"], kPodName);
  EXPECT_EQ(container["image"], "cr.flyte.org/flyteorg/flytekit:py3.11-1.16.0");
  EXPECT_EQ(container["env"][0], Json::parse(R"({"name": "FROM_TEMPLATE", "value": "1"})"));
  EXPECT_EQ(container["env"][1]["name"], "FLYTE_INTERNAL_EXECUTION_WORKFLOW");
  EXPECT_EQ(container["volumeMounts"], Json::parse(R"([{"name": "cache", "mountPath": "/cache"}])"));
  EXPECT_EQ(container["securityContext"], Json::parse(R"({"runAsNonRoot": true})"));
  // The template's resources are the defaults: memory from its limit, "gpu" renamed, cpu from the platform.
  EXPECT_EQ(container["resources"], Json::parse(R"({
      "requests": {"cpu": "1000m", "memory": "2Gi", "nvidia.com/gpu": "1"},
      "limits": {"cpu": "1000m", "memory": "2Gi", "nvidia.com/gpu": "1"}})"));
  // Metadata: the template's under Flyte's.
  EXPECT_EQ(pod["metadata"]["labels"]["team"], "ml");
  EXPECT_EQ(pod["metadata"]["labels"]["inject-flyte-secrets"], "true");
  EXPECT_EQ(pod["metadata"]["annotations"]["owner"], "platform");
}

TEST(PodBuilderTemplateTest, TheTasksResourcesWinOverTheTemplatesPerKey) {
  PodOptions options;
  options.default_pod_template = Json::parse(kPodTemplate)["template"];  // a Pod-like object works too
  options.max_limits = {{"nvidia.com/gpu", "0"}};                        // zero: no cap
  const Json pod = Build(ReferenceRequest(), Identity(), options);
  // The task requests 500m CPU and 1Gi memory; the template limits memory to 2Gi and asks for a GPU.
  EXPECT_EQ(PrimaryContainer(pod)["resources"], Json::parse(R"({
      "requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"},
      "limits": {"cpu": "500m", "memory": "2Gi", "nvidia.com/gpu": "1"}})"));
}

TEST(PodBuilderTemplateTest, ANamedTemplateMustExist) {
  auto request = ReferenceRequest();
  request.mutable_template_()->mutable_metadata()->set_pod_template_name("gpu-template");
  const absl::Status missing = BuildError(request, Identity());
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("gpu-template"));
  PodOptions options;
  options.pod_templates["gpu-template"] = Json::parse(kPodTemplate);
  EXPECT_EQ(Build(request, Identity(), options)["spec"]["nodeSelector"]["pool"], "training");
  options.pod_templates["gpu-template"] = Json::parse(R"({"template": {"spec": {"containers": {}}}})");
  const absl::Status malformed = BuildError(request, Identity(), options);
  EXPECT_EQ(malformed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(malformed.message(), HasSubstr("options.pod_templates[\"gpu-template\"].spec.containers"));
}

// ---- k8s_pod targets (§1.7) ----

constexpr char kRenderedPodSpec[] = R"json({
  "containers": [
    {"name": "main", "image": "ghcr.io/org/trainer:1", "args": ["pyflyte-execute", "--inputs", "s3://b/inputs.pb"],
     "env": [{"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": "f6c5d2a1b9e8a4c3d2b1"}],
     "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}},
    {"name": "sidecar", "image": "envoy:1", "ports": [{"containerPort": 8080}]}
  ],
  "volumes": [{"name": "scratch", "emptyDir": {}}],
  "serviceAccountName": "",
  "hostNetwork": false
})json";

flyteidl::admin::CreateTaskRequest K8sPodRequest(const std::string& pod_spec = kRenderedPodSpec) {
  auto request = ReferenceRequest();
  auto* task = request.mutable_template_();
  task->set_type("sidecar");
  task->clear_container();
  task->clear_security_context();
  *task->mutable_k8s_pod()->mutable_pod_spec() = ToStruct(pod_spec);
  (*task->mutable_k8s_pod()->mutable_metadata()->mutable_labels())["pod-label"] = "yes";
  (*task->mutable_k8s_pod()->mutable_metadata()->mutable_annotations())["pod-annotation"] = "yes";
  (*task->mutable_config())["primary_container_name"] = "main";
  return request;
}

TEST(PodBuilderK8sPodTest, KeepsTheRenderedSpecAndAddsTheAgentsParts) {
  PodOptions options;
  options.token_namespaces = {"flytesnacks-development"};
  options.default_env = {{"NOT_FOR_K8S_POD", "1"}};
  const Json pod = Build(K8sPodRequest(), Identity(), options);
  Json expected_spec = Json::parse(kRenderedPodSpec);
  expected_spec["serviceAccountName"] = "default";
  expected_spec["restartPolicy"] = "Never";
  expected_spec["containers"][0]["env"].push_back({{"name", "NEPTUNE_PROJECT"}, {"value", "ml-team/flyte"}});
  expected_spec["containers"][0]["env"].push_back(
      {{"name", "NEPTUNE_CUSTOM_RUN_ID"}, {"value", "f6c5d2a1b9e8a4c3d2b1-k3j4h5g6f7d8s9a0p"}});
  expected_spec["containers"][0]["env"].push_back(Json::parse(
      R"({"name": "NEPTUNE_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "neptune-api-token", "key": "token", "optional": true}}})"));
  EXPECT_EQ(pod["spec"], expected_spec);
  EXPECT_EQ(pod["metadata"]["annotations"]["primary_container_name"], "main");
  EXPECT_EQ(pod["metadata"]["annotations"]["pod-annotation"], "yes");
  EXPECT_EQ(pod["metadata"]["labels"]["pod-label"], "yes");
  EXPECT_EQ(pod["metadata"]["labels"]["execution-id"], kExecution);
  EXPECT_EQ(pod["metadata"]["name"], kPodName);
  EXPECT_EQ(pod["spec"]["containers"][1]["ports"][0]["containerPort"], 8080);  // numbers stay numbers
}

TEST(PodBuilderK8sPodTest, AnUnrenderedPodSpecIsAFailedPrecondition) {
  const absl::Status status = BuildError(
      K8sPodRequest(
          R"({"containers": [{"name": "main", "image": "i", "args": ["--inputs", "{{ .input }}"]}]})"),
      Identity());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("containers[0].args[1]"));
  EXPECT_THAT(status.message(), HasSubstr("{{ .input }}"));
  EXPECT_EQ(BuildError(K8sPodRequest(R"({"containers": [{"name": "main", "image": "i",
                                        "env": [{"name": "X", "value": "{{.outputPrefix}}"}]}]})"),
                       Identity())
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PodBuilderK8sPodTest, BracesThatAreNotPropellerTemplatesAreKept) {
  const Json pod = Build(K8sPodRequest(R"({"containers": [{"name": "main", "image": "i",
                                          "args": ["--format", "{{ jinja_var }}", "{{"]}]})"),
                         Identity());
  EXPECT_EQ(pod["spec"]["containers"][0]["args"][1], "{{ jinja_var }}");
}

TEST(PodBuilderK8sPodTest, ThePrimaryContainerMustBeNamedAndPresent) {
  auto request = K8sPodRequest();
  request.mutable_template_()->mutable_config()->erase("primary_container_name");
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("primary_container_name"));
  request = K8sPodRequest();
  (*request.mutable_template_()->mutable_config())["primary_container_name"] = "missing";
  const absl::Status absent = BuildError(request, Identity());
  EXPECT_EQ(absent.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(absent.message(), HasSubstr("\"missing\""));
  request = K8sPodRequest();
  request.mutable_template_()->mutable_k8s_pod()->clear_pod_spec();
  EXPECT_THAT(BuildError(request, Identity()).message(), HasSubstr("template.k8s_pod.pod_spec"));
  EXPECT_THAT(BuildError(K8sPodRequest(R"({"volumes": []})"), Identity()).message(),
              HasSubstr("template.k8s_pod.pod_spec.containers"));
}

}  // namespace
}  // namespace fna::executor::kubernetes
