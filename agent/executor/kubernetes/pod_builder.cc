#include "agent/executor/kubernetes/pod_builder.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/common/status_macros.h"
#include "agent/executor/kubernetes/k8s_rules.h"

namespace fna::executor::kubernetes {
namespace {

using Json = nlohmann::ordered_json;
using StringMap = std::map<std::string, std::string>;

constexpr absl::string_view kPrimaryContainerAnnotation = "primary_container_name";
constexpr absl::string_view kInjectSecretsLabel = "inject-flyte-secrets";
constexpr absl::string_view kExecutionIdentityLabel = "execution-identity";
constexpr absl::string_view kSecretAnnotationPrefix = "flyte.secrets/s";
constexpr absl::string_view kTokenEnv = "NEPTUNE_API_TOKEN";

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

std::string Quoted(absl::string_view text) { return Json(std::string(text)).dump(); }

// `object[key]` when it is a string, else "". Never throws.
std::string StringField(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

bool IsZero(const Json& value) {
  return value.is_null() || (value.is_string() && value.get_ref<const std::string&>().empty()) ||
         (value.is_boolean() && !value.get<bool>()) || (value.is_number() && value == 0) ||
         ((value.is_object() || value.is_array()) && value.empty());
}

// mergo.Merge(base, over, WithOverride, WithAppendSlice) on JSON: objects merge key by key, arrays are
// concatenated, and any non-zero value of `over` replaces the base's.
void MergeOver(Json* base, const Json& over) {
  if (IsZero(over)) return;
  if (base->is_object() && over.is_object()) {
    for (const auto& [key, value] : over.items()) {
      if (base->contains(key)) {
        MergeOver(&(*base)[key], value);
      } else if (!IsZero(value)) {
        (*base)[key] = value;
      }
    }
    return;
  }
  if (base->is_array() && over.is_array()) {
    for (const auto& value : over) base->push_back(value);
    return;
  }
  *base = over;
}

// MergeOver for two objects, keeping `over`'s key order, then the keys only `base` has: Flyte's fields read
// first in a merged manifest.
Json MergedInOrder(const Json& base, const Json& over) {
  if (!base.is_object() || !over.is_object()) {
    Json merged = base;
    MergeOver(&merged, over);
    return merged;
  }
  Json merged = Json::object();
  for (const auto& [key, value] : over.items()) {
    if (base.contains(key)) {
      Json field = base[key];
      MergeOver(&field, value);
      merged[key] = field;
    } else if (!IsZero(value)) {
      merged[key] = value;
    }
  }
  for (const auto& [key, value] : base.items()) {
    if (!merged.contains(key)) merged[key] = value;
  }
  return merged;
}

// An env list without repeated names: a later entry replaces the earlier one in place (Kubernetes' "last one
// wins", without the duplicate).
Json DedupeEnv(const Json& env) {
  Json out = Json::array();
  std::map<std::string, size_t> index;
  for (const auto& entry : env) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) {
      out.push_back(entry);
      continue;
    }
    const std::string name = entry["name"].get<std::string>();
    if (auto it = index.find(name); it != index.end()) {
      out[it->second] = entry;
    } else {
      index[name] = out.size();
      out.push_back(entry);
    }
  }
  return out;
}

Json EnvVar(absl::string_view name, absl::string_view value) {
  return Json{{"name", std::string(name)}, {"value", std::string(value)}};
}

// ---- Resources (§1.5) ----

struct ResourceValue {
  std::string text;
  Quantity quantity;
};
using Resources = std::map<std::string, ResourceValue>;

absl::StatusOr<ResourceValue> ParseResourceValue(absl::string_view field, absl::string_view text) {
  const std::optional<Quantity> quantity = ParseQuantity(text);
  if (!quantity.has_value()) {
    return Invalid(field,
                   absl::StrCat(Quoted(text), " is not a Kubernetes quantity (e.g. \"500m\", \"1Gi\")"));
  }
  if (quantity->value < 0) return Invalid(field, absl::StrCat(Quoted(text), " is negative"));
  return ResourceValue{std::string(text), *quantity};
}

absl::Status ParseResourceList(absl::string_view field, const ResourceList& list, Resources* out) {
  for (const auto& [name, text] : list) {
    if (!IsQualifiedName(name)) return Invalid(field, absl::StrCat(Quoted(name), " is not a resource name"));
    FNA_ASSIGN_OR_RETURN(ResourceValue value,
                         ParseResourceValue(absl::StrCat(field, "[", Quoted(name), "]"), text));
    (*out)[name] = value;
  }
  return absl::OkStatus();
}

// core.Resources entries -> Kubernetes names (ToK8sResourceRequirements). Unknown and STORAGE are dropped,
// and so are zero values.
absl::Status FromFlyteResources(
    absl::string_view field,
    const google::protobuf::RepeatedPtrField<flyteidl::core::Resources::ResourceEntry>& entries,
    const std::string& gpu_name, Resources* out) {
  for (int i = 0; i < entries.size(); ++i) {
    const auto& entry = entries[i];
    std::string name;
    switch (entry.name()) {
      case flyteidl::core::Resources::CPU:
        name = "cpu";
        break;
      case flyteidl::core::Resources::MEMORY:
        name = "memory";
        break;
      case flyteidl::core::Resources::GPU:
        name = gpu_name;
        break;
      case flyteidl::core::Resources::EPHEMERAL_STORAGE:
        name = "ephemeral-storage";
        break;
      default:
        continue;
    }
    FNA_ASSIGN_OR_RETURN(
        ResourceValue value,
        ParseResourceValue(absl::StrCat(field, "[", i, "] (",
                                        flyteidl::core::Resources::ResourceName_Name(entry.name()), ")"),
                           entry.value()));
    if (value.quantity.IsZero()) {
      out->erase(name);
      continue;
    }
    (*out)[name] = value;
  }
  return absl::OkStatus();
}

// A pod template container's `resources.requests`/`limits` object, for the defaults; "gpu" is renamed.
absl::Status FromTemplateResources(absl::string_view field, const Json& list, const std::string& gpu_name,
                                   Resources* out) {
  if (list.is_null()) return absl::OkStatus();
  if (!list.is_object()) return Invalid(field, "not an object");
  for (const auto& [key, raw] : list.items()) {
    const std::string name = key == "gpu" ? gpu_name : key;
    if (!raw.is_string() && !raw.is_number())
      return Invalid(field, absl::StrCat(Quoted(key), " is not a quantity"));
    const std::string text = raw.is_string() ? raw.get<std::string>() : raw.dump();
    FNA_ASSIGN_OR_RETURN(ResourceValue value,
                         ParseResourceValue(absl::StrCat(field, "[", Quoted(key), "]"), text));
    if (!value.quantity.IsZero()) (*out)[name] = value;
  }
  return absl::OkStatus();
}

const ResourceValue* Find(const Resources& resources, const std::string& name) {
  auto it = resources.find(name);
  return it == resources.end() || it->second.quantity.IsZero() ? nullptr : &it->second;
}

// ensureResourceLimit: `value` capped at `limit` (when both are set).
const ResourceValue* Capped(const ResourceValue* value, const ResourceValue* limit) {
  if (value == nullptr || limit == nullptr) return value;
  return value->quantity.value > limit->quantity.value ? limit : value;
}

// AdjustOrDefaultResource for one resource name.
void AdjustOrDefault(const std::string& name, const Resources& defaults, const Resources& caps,
                     Resources* requests, Resources* limits) {
  const ResourceValue* request = Find(*requests, name);
  const ResourceValue* limit = Find(*limits, name);
  if (request == nullptr) request = limit != nullptr ? limit : Find(defaults, name);
  if (limit == nullptr) limit = request;
  limit = Capped(limit, Find(caps, name));
  request = Capped(request, limit);
  const std::optional<ResourceValue> new_request =
      request != nullptr ? std::optional<ResourceValue>(*request) : std::nullopt;
  const std::optional<ResourceValue> new_limit =
      limit != nullptr ? std::optional<ResourceValue>(*limit) : std::nullopt;
  requests->erase(name);
  limits->erase(name);
  if (new_request.has_value()) (*requests)[name] = *new_request;
  if (new_limit.has_value()) (*limits)[name] = *new_limit;
}

Json ResourcesJson(const Resources& requests, const Resources& limits) {
  Json out = Json::object();
  if (!requests.empty()) {
    Json& json = out["requests"];
    for (const auto& [name, value] : requests) json[name] = value.text;
  }
  if (!limits.empty()) {
    Json& json = out["limits"];
    for (const auto& [name, value] : limits) json[name] = value.text;
  }
  return out;
}

// ---- Metadata (§1.3) ----

// Merges `source` into `labels` (later wins), sanitizing values; InvalidArgument for a bad key.
absl::Status AddLabels(absl::string_view field, const StringMap& source, StringMap* labels) {
  for (const auto& [key, value] : source) {
    if (!IsQualifiedName(key)) {
      return Invalid(absl::StrCat(field, "[", Quoted(key), "]"), "not a valid Kubernetes label key");
    }
    (*labels)[key] = LabelValueOrSanitized(value);
  }
  return absl::OkStatus();
}

absl::Status AddAnnotations(absl::string_view field, const StringMap& source, StringMap* annotations) {
  for (const auto& [key, value] : source) {
    if (!IsQualifiedName(key)) {
      return Invalid(absl::StrCat(field, "[", Quoted(key), "]"), "not a valid Kubernetes annotation key");
    }
    (*annotations)[key] = value;
  }
  return absl::OkStatus();
}

template <typename ProtoMap>
StringMap ToMap(const ProtoMap& map) {
  return StringMap(map.begin(), map.end());
}

absl::StatusOr<StringMap> JsonStringMap(absl::string_view field, const Json& json) {
  StringMap out;
  if (json.is_null()) return out;
  if (!json.is_object()) return Invalid(field, "not an object");
  for (const auto& [key, value] : json.items()) {
    if (!value.is_string()) return Invalid(absl::StrCat(field, "[", Quoted(key), "]"), "not a string");
    out[key] = value.get<std::string>();
  }
  return out;
}

// ---- Secrets (§1.8) ----

absl::StatusOr<std::string> SecretAnnotationValue(int index, const flyteidl::core::Secret& secret) {
  if (!flyteidl::core::Secret::MountType_IsValid(secret.mount_requirement())) {
    return Invalid(
        absl::StrCat("template.security_context.secrets[", index, "].mount_requirement"),
        absl::StrCat(secret.mount_requirement(), " is not a known mount type (ANY, ENV_VAR, FILE)"));
  }
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(secret, &text)) {
    return absl::InternalError(absl::StrCat("template.security_context.secrets[", index, "]: cannot print"));
  }
  return FlyteBase32(text);
}

// ---- Options ----

absl::Status ValidateOptions(const PodOptions& options) {
  for (size_t i = 0; i < options.default_env.size(); ++i) {
    const std::string& name = options.default_env[i].first;
    if (name.empty()) return Invalid(absl::StrCat("options.default_env[", i, "]"), "empty name");
    if (name == kTokenEnv) {
      return Invalid(absl::StrCat("options.default_env[", i, "]"),
                     "NEPTUNE_API_TOKEN reaches a Pod only as a secretKeyRef (options.token_secret, "
                     "options.token_namespaces), never as a value");
    }
  }
  for (const auto* list : {&options.env_from_secrets, &options.env_from_config_maps}) {
    for (const std::string& name : *list) {
      if (!IsDns1123Subdomain(name)) {
        return Invalid(
            list == &options.env_from_secrets ? "options.env_from_secrets" : "options.env_from_config_maps",
            absl::StrCat(Quoted(name), " is not a valid object name"));
      }
    }
  }
  if (!options.token_namespaces.empty()) {
    if (!IsDns1123Subdomain(options.token_secret.name)) {
      return Invalid("options.token_secret.name",
                     absl::StrCat(Quoted(options.token_secret.name), " is not a valid Secret name"));
    }
    if (options.token_secret.key.empty()) return Invalid("options.token_secret.key", "empty");
  }
  if (!IsQualifiedName(options.gpu_resource_name)) {
    return Invalid("options.gpu_resource_name",
                   absl::StrCat(Quoted(options.gpu_resource_name), " is not a resource name"));
  }
  const std::string& policy = options.image_pull_policy;
  if (!policy.empty() && policy != "Always" && policy != "IfNotPresent" && policy != "Never") {
    return Invalid("options.image_pull_policy",
                   absl::StrCat(Quoted(policy), " is not Always, IfNotPresent or Never"));
  }
  for (const auto& [labels, field] : {std::pair{&options.default_labels, "options.default_labels"},
                                      std::pair{&options.agent_labels, "options.agent_labels"}}) {
    for (const auto& [key, value] : *labels) {
      if (!IsQualifiedName(key))
        return Invalid(field, absl::StrCat(Quoted(key), " is not a valid label key"));
      if (!IsLabelValue(value)) {
        return Invalid(absl::StrCat(field, "[", Quoted(key), "]"),
                       absl::StrCat(Quoted(value), " is not a valid label value"));
      }
    }
  }
  if (!options.interruptible_tolerations.is_array())
    return Invalid("options.interruptible_tolerations", "not an array");
  for (const auto& [name, tolerations] : options.resource_tolerations) {
    if (!tolerations.is_array())
      return Invalid(absl::StrCat("options.resource_tolerations[", Quoted(name), "]"), "not an array");
  }
  for (const auto& [requirement, field] :
       {std::pair{&options.interruptible_node_selector_requirement,
                  "options.interruptible_node_selector_requirement"},
        std::pair{&options.non_interruptible_node_selector_requirement,
                  "options.non_interruptible_node_selector_requirement"}}) {
    if (!requirement->is_null() && !requirement->is_object()) return Invalid(field, "not an object");
  }
  return absl::OkStatus();
}

// A PodTemplate or Pod-like object -> {metadata, spec}, both objects.
struct PodTemplate {
  Json metadata = Json::object();
  Json spec = Json::object();
};

absl::StatusOr<std::optional<PodTemplate>> ResolvePodTemplate(const flyteidl::core::TaskTemplate& task,
                                                              const PodOptions& options) {
  const std::string& name = task.metadata().pod_template_name();
  nlohmann::json source;
  std::string field;
  if (!name.empty()) {
    auto it = options.pod_templates.find(name);
    if (it == options.pod_templates.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("template.metadata.pod_template_name: PodTemplate ", Quoted(name), " does not exist"));
    }
    source = it->second;
    field = absl::StrCat("options.pod_templates[", Quoted(name), "]");
  } else {
    source = options.default_pod_template;
    field = "options.default_pod_template";
  }
  if (source.is_null()) return std::nullopt;
  if (!source.is_object()) return Invalid(field, "not an object");
  Json object = source;
  if (object.contains("template")) {
    object = object["template"];
    if (!object.is_object()) return Invalid(absl::StrCat(field, ".template"), "not an object");
  }
  PodTemplate out;
  if (object.contains("metadata") && !object["metadata"].is_null()) out.metadata = object["metadata"];
  if (object.contains("spec") && !object["spec"].is_null()) out.spec = object["spec"];
  if (!out.metadata.is_object()) return Invalid(absl::StrCat(field, ".metadata"), "not an object");
  if (!out.spec.is_object()) return Invalid(absl::StrCat(field, ".spec"), "not an object");
  for (const char* list : {"containers", "initContainers"}) {
    if (!out.spec.contains(list)) continue;
    const Json& containers = out.spec[list];
    if (!containers.is_array()) return Invalid(absl::StrCat(field, ".spec.", list), "not an array");
    for (const auto& container : containers) {
      if (!container.is_object()) return Invalid(absl::StrCat(field, ".spec.", list), "holds a non-object");
    }
  }
  return out;
}

// Template containers by name.
const Json* TemplateContainer(const Json& spec, absl::string_view list, absl::string_view name) {
  if (!spec.contains(std::string(list))) return nullptr;
  for (const auto& container : spec[std::string(list)]) {
    if (StringField(container, "name") == name) return &container;
  }
  return nullptr;
}

// The template's base for a container (§1.7): `default`, then `primary` for the primary container, then a
// template container of the same name, each merged over the last. null when none applies.
Json TemplateBase(const Json& spec, const std::string& name, bool primary, bool init) {
  Json base;
  auto merge = [&](const Json* layer) {
    if (layer == nullptr) return;
    if (base.is_null()) {
      base = *layer;
    } else {
      MergeOver(&base, *layer);
    }
  };
  const absl::string_view list = init ? "initContainers" : "containers";
  const std::string default_name = init ? "default-init" : "default";
  const std::string primary_name = init ? "primary-init" : "primary";
  merge(TemplateContainer(spec, list, default_name));
  if (primary) merge(TemplateContainer(spec, list, primary_name));
  if (name != default_name && name != primary_name) merge(TemplateContainer(spec, list, name));
  return base;
}

// MergeBasePodSpecOntoTemplate: the template spec is the base and Flyte's spec is merged over it; each Flyte
// container is merged over its template base; other template containers are dropped.
Json MergeWithTemplate(const Json& template_spec, const Json& flyte_spec, const std::string& primary) {
  Json merged = MergedInOrder(template_spec, flyte_spec);
  for (const char* list : {"containers", "initContainers"}) {
    const bool init = std::string(list) == "initContainers";
    Json containers = Json::array();
    if (flyte_spec.contains(list)) {
      for (const auto& container : flyte_spec[list]) {
        const std::string name = StringField(container, "name");
        Json base = TemplateBase(template_spec, name, name == primary, init);
        containers.push_back(base.is_null() ? container : MergedInOrder(base, container));
      }
    }
    if (containers.empty()) {
      merged.erase(list);
    } else {
      merged[list] = containers;
    }
  }
  return merged;
}

// AddRequiredNodeSelectorRequirements: adds `requirements` to every required node affinity term, or makes
// one.
void AddRequiredNodeSelectorRequirements(Json* spec, const Json& requirements) {
  Json& affinity = (*spec)["affinity"];
  if (!affinity.is_object()) affinity = Json::object();
  Json& node_affinity = affinity["nodeAffinity"];
  if (!node_affinity.is_object()) node_affinity = Json::object();
  Json& required = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"];
  if (!required.is_object()) required = Json::object();
  Json& terms = required["nodeSelectorTerms"];
  if (!terms.is_array() || terms.empty()) {
    terms = Json::array({Json{{"matchExpressions", requirements}}});
    return;
  }
  for (auto& term : terms) {
    if (!term.is_object()) continue;
    Json& expressions = term["matchExpressions"];
    if (!expressions.is_array()) expressions = Json::array();
    for (const auto& requirement : requirements) expressions.push_back(requirement);
  }
}

void AppendTolerations(Json* spec, const Json& tolerations) {
  if (tolerations.empty()) return;
  Json& list = (*spec)["tolerations"];
  if (!list.is_array()) list = Json::array();
  for (const auto& toleration : tolerations) list.push_back(toleration);
}

Json* FindContainer(Json* spec, const std::string& name) {
  if (!spec->contains("containers") || !(*spec)["containers"].is_array()) return nullptr;
  for (auto& container : (*spec)["containers"]) {
    if (container.is_object() && StringField(container, "name") == name) return &container;
  }
  return nullptr;
}

// ApplyGPUNodeSelectors: only when a container limits the GPU resource.
void ApplyGpuAccelerator(const flyteidl::core::GPUAccelerator& accelerator, const PodOptions& options,
                         Json* spec) {
  bool requires_gpus = false;
  for (const auto& container : (*spec)["containers"]) {
    const Json* limits = nullptr;
    if (container.contains("resources") && container["resources"].is_object() &&
        container["resources"].contains("limits")) {
      limits = &container["resources"]["limits"];
    }
    if (limits != nullptr && limits->is_object() && limits->contains(options.gpu_resource_name))
      requires_gpus = true;
  }
  if (!requires_gpus) return;
  Json requirements = Json::array();
  Json tolerations = Json::array();
  if (!accelerator.device().empty()) {
    requirements.push_back(Json{{"key", options.gpu_device_node_label},
                                {"operator", "In"},
                                {"values", Json::array({accelerator.device()})}});
    tolerations.push_back(Json{{"key", options.gpu_device_node_label},
                               {"operator", "Equal"},
                               {"value", accelerator.device()},
                               {"effect", "NoSchedule"}});
  }
  switch (accelerator.partition_size_value_case()) {
    case flyteidl::core::GPUAccelerator::kUnpartitioned:
      if (accelerator.unpartitioned()) {
        requirements.push_back(
            Json{{"key", options.gpu_partition_size_node_label}, {"operator", "DoesNotExist"}});
      }
      break;
    case flyteidl::core::GPUAccelerator::kPartitionSize:
      requirements.push_back(Json{{"key", options.gpu_partition_size_node_label},
                                  {"operator", "In"},
                                  {"values", Json::array({accelerator.partition_size()})}});
      tolerations.push_back(Json{{"key", options.gpu_partition_size_node_label},
                                 {"operator", "Equal"},
                                 {"value", accelerator.partition_size()},
                                 {"effect", "NoSchedule"}});
      break;
    default:
      break;
  }
  for (const auto& requirement : requirements)
    AddRequiredNodeSelectorRequirements(spec, Json::array({requirement}));
  AppendTolerations(spec, tolerations);
}

// ApplySharedMemory: an in-memory emptyDir mounted in the primary container.
absl::Status ApplySharedMemory(const flyteidl::core::SharedMemory& memory, const std::string& primary,
                               Json* spec) {
  constexpr absl::string_view kField = "template.extended_resources.shared_memory";
  if (memory.mount_name().empty()) return Invalid(absl::StrCat(kField, ".mount_name"), "not set");
  if (memory.mount_path().empty()) return Invalid(absl::StrCat(kField, ".mount_path"), "not set");
  if (!IsDns1123Label(memory.mount_name())) {
    return Invalid(absl::StrCat(kField, ".mount_name"),
                   absl::StrCat(Quoted(memory.mount_name()), " is not a DNS-1123 label"));
  }
  Json* container = FindContainer(spec, primary);
  if (container == nullptr) return absl::InternalError("the primary container is missing");
  if (spec->contains("volumes") && (*spec)["volumes"].is_array()) {
    for (const auto& volume : (*spec)["volumes"]) {
      if (volume.is_object() && StringField(volume, "name") == memory.mount_name()) {
        return Invalid(absl::StrCat(kField, ".mount_name"),
                       absl::StrCat("a volume is already named ", Quoted(memory.mount_name())));
      }
    }
  }
  if (container->contains("volumeMounts") && (*container)["volumeMounts"].is_array()) {
    for (const auto& mount : (*container)["volumeMounts"]) {
      if (!mount.is_object()) continue;
      if (StringField(mount, "name") == memory.mount_name()) {
        return Invalid(absl::StrCat(kField, ".mount_name"),
                       absl::StrCat("a volume mount is already named ", Quoted(memory.mount_name())));
      }
      if (StringField(mount, "mountPath") == memory.mount_path()) {
        return Invalid(absl::StrCat(kField, ".mount_path"),
                       absl::StrCat(Quoted(memory.mount_path()), " is already mounted"));
      }
    }
  }
  Json empty_dir = Json{{"medium", "Memory"}};
  if (!memory.size_limit().empty()) {
    FNA_ASSIGN_OR_RETURN(ResourceValue limit,
                         ParseResourceValue(absl::StrCat(kField, ".size_limit"), memory.size_limit()));
    empty_dir["sizeLimit"] = limit.text;
  }
  Json& volumes = (*spec)["volumes"];
  if (!volumes.is_array()) volumes = Json::array();
  volumes.push_back(Json{{"name", memory.mount_name()}, {"emptyDir", empty_dir}});
  Json& mounts = (*container)["volumeMounts"];
  if (!mounts.is_array()) mounts = Json::array();
  mounts.push_back(Json{{"name", memory.mount_name()}, {"mountPath", memory.mount_path()}});
  return absl::OkStatus();
}

// True when `text` holds `{{`, optional white space and `.`: a propeller template variable.
bool HoldsTemplate(absl::string_view text) {
  for (size_t at = text.find("{{"); at != absl::string_view::npos; at = text.find("{{", at + 2)) {
    size_t i = at + 2;
    while (i < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i < text.size() && text[i] == '.') return true;
  }
  return false;
}

// The first string in `json` holding a propeller template ("{{.input}}", "{{ .outputPrefix }}"), with its
// path.
std::optional<std::pair<std::string, std::string>> FindTemplate(const Json& json, const std::string& path) {
  if (json.is_string()) {
    const std::string& text = json.get_ref<const std::string&>();
    if (HoldsTemplate(text)) return std::pair{path, text};
    return std::nullopt;
  }
  if (json.is_object()) {
    for (const auto& [key, value] : json.items()) {
      if (auto found = FindTemplate(value, path.empty() ? key : absl::StrCat(path, ".", key))) return found;
    }
  } else if (json.is_array()) {
    for (size_t i = 0; i < json.size(); ++i) {
      if (auto found = FindTemplate(json[i], absl::StrCat(path, "[", i, "]"))) return found;
    }
  }
  return std::nullopt;
}

// The env entries the agent adds to the primary container.
Json NeptuneEnv(const PodIdentity& identity, const PodOptions& options, const std::string& namespace_name) {
  Json env = Json::array();
  if (identity.tracking_disabled) return env;
  env.push_back(EnvVar("NEPTUNE_PROJECT", identity.neptune_project));
  env.push_back(EnvVar("NEPTUNE_CUSTOM_RUN_ID", identity.custom_run_id));
  if (options.token_namespaces.count(namespace_name) > 0 || options.token_namespaces.count("*") > 0) {
    env.push_back(Json{
        {"name", std::string(kTokenEnv)},
        {"valueFrom",
         {{"secretKeyRef",
           {{"name", options.token_secret.name}, {"key", options.token_secret.key}, {"optional", true}}}}}});
  }
  return env;
}

void AppendEnv(Json* container, const Json& env) {
  Json& list = (*container)["env"];
  if (!list.is_array()) list = Json::array();
  for (const auto& entry : env) list.push_back(entry);
  list = DedupeEnv(list);
  if (list.empty()) container->erase("env");
}

std::string ServiceAccount(const flyteidl::admin::TaskExecutionMetadata& metadata) {
  if (!metadata.k8s_service_account().empty()) return metadata.k8s_service_account();
  return metadata.identity().k8s_service_account();
}

bool IsInterruptible(const flyteidl::admin::TaskExecutionMetadata& metadata) {
  auto it = metadata.labels().find("interruptible");
  if (it != metadata.labels().end()) return it->second == "true";
  return metadata.interruptible();
}

// The primary container and pod spec of a container task (§1.4–§1.7).
absl::StatusOr<Json> BuildContainerPodSpec(const flyteidl::admin::CreateTaskRequest& request,
                                           const PodIdentity& identity, const PodOptions& options,
                                           const std::optional<PodTemplate>& pod_template) {
  const flyteidl::core::TaskTemplate& task = request.template_();
  const flyteidl::core::Container& source = task.container();
  const auto& metadata = request.task_execution_metadata();
  const auto& task_execution = metadata.task_execution_id();
  const auto& node_execution = task_execution.node_execution_id();
  const auto& execution = node_execution.execution_id();
  const auto& task_id = task_execution.task_id();
  const std::string& name = identity.pod_name;

  if (source.image().empty()) return Invalid("template.container.image", "empty");

  Json env = Json::array();
  for (int i = 0; i < source.env_size(); ++i) {
    if (source.env(i).key().empty())
      return Invalid(absl::StrCat("template.container.env[", i, "].key"), "empty");
    env.push_back(EnvVar(source.env(i).key(), source.env(i).value()));
  }
  std::string workflow;
  if (auto it = metadata.labels().find("workflow-name"); it != metadata.labels().end()) workflow = it->second;
  env.push_back(EnvVar("FLYTE_INTERNAL_EXECUTION_WORKFLOW",
                       absl::StrCat(execution.project(), ":", execution.domain(), ":", workflow)));
  env.push_back(EnvVar("FLYTE_INTERNAL_EXECUTION_ID", execution.name()));
  env.push_back(EnvVar("FLYTE_INTERNAL_EXECUTION_PROJECT", execution.project()));
  env.push_back(EnvVar("FLYTE_INTERNAL_EXECUTION_DOMAIN", execution.domain()));
  env.push_back(EnvVar("FLYTE_ATTEMPT_NUMBER", absl::StrCat(task_execution.retry_attempt())));
  if (!options.console_url.empty() && task.config().count("link_type") > 0) {
    env.push_back(EnvVar("FLYTE_EXECUTION_URL",
                         absl::StrCat(absl::StripSuffix(options.console_url, "/"), "/projects/",
                                      execution.project(), "/domains/", execution.domain(), "/executions/",
                                      execution.name(), "/nodeId/", node_execution.node_id(), "/nodes")));
  }
  env.push_back(EnvVar("FLYTE_INTERNAL_TASK_PROJECT", task_id.project()));
  env.push_back(EnvVar("FLYTE_INTERNAL_TASK_DOMAIN", task_id.domain()));
  env.push_back(EnvVar("FLYTE_INTERNAL_TASK_NAME", task_id.name()));
  env.push_back(EnvVar("FLYTE_INTERNAL_TASK_VERSION", task_id.version()));
  for (const auto& [key, value] : ToMap(metadata.environment_variables())) {
    if (key.empty()) return Invalid("task_execution_metadata.environment_variables", "an empty name");
    env.push_back(EnvVar(key, value));
  }
  for (const auto& [key, value] : options.default_env) env.push_back(EnvVar(key, value));
  for (const auto& entry : NeptuneEnv(identity, options, metadata.namespace_())) env.push_back(entry);

  Json env_from = Json::array();
  for (const std::string& secret : options.env_from_secrets) {
    env_from.push_back(Json{{"secretRef", {{"name", secret}, {"optional", true}}}});
  }
  for (const std::string& config_map : options.env_from_config_maps) {
    env_from.push_back(Json{{"configMapRef", {{"name", config_map}, {"optional", true}}}});
  }

  // Resources: the task's values over the template's, then the platform's defaults and caps.
  Resources requests;
  Resources limits;
  const Json template_base = pod_template.has_value()
                                 ? TemplateBase(pod_template->spec, name, /*primary=*/true, /*init=*/false)
                                 : Json();
  if (template_base.is_object() && template_base.contains("resources")) {
    const Json& resources = template_base["resources"];
    if (!resources.is_object()) return Invalid("pod template container resources", "not an object");
    FNA_RETURN_IF_ERROR(FromTemplateResources("pod template container resources.requests",
                                              resources.contains("requests") ? resources["requests"] : Json(),
                                              options.gpu_resource_name, &requests));
    FNA_RETURN_IF_ERROR(FromTemplateResources("pod template container resources.limits",
                                              resources.contains("limits") ? resources["limits"] : Json(),
                                              options.gpu_resource_name, &limits));
  }
  FNA_RETURN_IF_ERROR(FromFlyteResources("template.container.resources.requests",
                                         source.resources().requests(), options.gpu_resource_name,
                                         &requests));
  FNA_RETURN_IF_ERROR(FromFlyteResources("template.container.resources.limits", source.resources().limits(),
                                         options.gpu_resource_name, &limits));
  Resources defaults;
  Resources caps;
  FNA_RETURN_IF_ERROR(ParseResourceList("options.default_requests", options.default_requests, &defaults));
  FNA_RETURN_IF_ERROR(ParseResourceList("options.max_limits", options.max_limits, &caps));
  AdjustOrDefault("cpu", defaults, caps, &requests, &limits);
  AdjustOrDefault("memory", defaults, caps, &requests, &limits);
  for (const std::string& optional_name : {std::string("ephemeral-storage"), options.gpu_resource_name}) {
    if (requests.count(optional_name) > 0 || limits.count(optional_name) > 0) {
      AdjustOrDefault(optional_name, defaults, caps, &requests, &limits);
    }
  }
  requests.erase("storage");
  limits.erase("storage");
  if (const ResourceValue* gpu_request = Find(requests, options.gpu_resource_name)) {
    const ResourceValue* gpu_limit = Find(limits, options.gpu_resource_name);
    if (gpu_limit == nullptr || gpu_limit->quantity.value != gpu_request->quantity.value) {
      return Invalid("template.container.resources",
                     absl::StrCat("the ", options.gpu_resource_name, " request (", gpu_request->text,
                                  ") and limit (", gpu_limit != nullptr ? gpu_limit->text : "none",
                                  ") differ; Kubernetes requires them equal for an extended resource"));
    }
  }

  Json container = Json::object();
  container["name"] = name;
  container["image"] = source.image();
  if (source.command_size() > 0)
    container["command"] = std::vector<std::string>(source.command().begin(), source.command().end());
  if (source.args_size() > 0)
    container["args"] = std::vector<std::string>(source.args().begin(), source.args().end());
  container["env"] = DedupeEnv(env);
  if (!env_from.empty()) container["envFrom"] = env_from;
  Json resources = ResourcesJson(requests, limits);
  if (!resources.empty()) container["resources"] = resources;
  container["terminationMessagePolicy"] = "FallbackToLogsOnError";
  if (!options.image_pull_policy.empty()) container["imagePullPolicy"] = options.image_pull_policy;

  // UpdatePod (§1.6).
  const bool interruptible = IsInterruptible(metadata);
  Json spec = Json::object();
  spec["restartPolicy"] = "Never";
  if (const std::string account = ServiceAccount(metadata); !account.empty())
    spec["serviceAccountName"] = account;
  spec["containers"] = Json::array({container});
  Json tolerations = Json::array();
  std::set<std::string> resource_names;
  for (const auto& [resource, value] : requests) resource_names.insert(resource);
  for (const auto& [resource, value] : limits) resource_names.insert(resource);
  for (const std::string& resource : resource_names) {
    if (auto it = options.resource_tolerations.find(resource); it != options.resource_tolerations.end()) {
      for (const auto& toleration : it->second) tolerations.push_back(Json(toleration));
    }
  }
  if (interruptible) {
    for (const auto& toleration : options.interruptible_tolerations) tolerations.push_back(Json(toleration));
  }
  if (!tolerations.empty()) spec["tolerations"] = tolerations;
  if (interruptible && !options.interruptible_node_selector.empty()) {
    spec["nodeSelector"] = Json(options.interruptible_node_selector);
  }

  // The pod template (§1.7), then the (non-)interruptible node affinity, the GPU accelerator and shared
  // memory.
  if (pod_template.has_value()) {
    spec = MergeWithTemplate(pod_template->spec, spec, name);
    if (Json* primary = FindContainer(&spec, name); primary != nullptr) {
      if (primary->contains("env")) (*primary)["env"] = DedupeEnv((*primary)["env"]);
      // The template's requests and limits are already in the computed ones (renamed and adjusted).
      Json& merged_resources = (*primary)["resources"];
      if (!merged_resources.is_object()) merged_resources = Json::object();
      merged_resources.erase("requests");
      merged_resources.erase("limits");
      for (const auto& [key, value] : resources.items()) merged_resources[key] = value;
      if (merged_resources.empty()) primary->erase("resources");
    }
  }
  const nlohmann::json& requirement = interruptible ? options.interruptible_node_selector_requirement
                                                    : options.non_interruptible_node_selector_requirement;
  if (requirement.is_object()) AddRequiredNodeSelectorRequirements(&spec, Json::array({Json(requirement)}));
  if (task.extended_resources().has_gpu_accelerator()) {
    ApplyGpuAccelerator(task.extended_resources().gpu_accelerator(), options, &spec);
  }
  if (task.extended_resources().has_shared_memory()) {
    FNA_RETURN_IF_ERROR(ApplySharedMemory(task.extended_resources().shared_memory(), name, &spec));
  }
  return spec;
}

// The pod spec of a k8s_pod task: propeller's rendered spec plus the agent's additions.
absl::StatusOr<Json> BuildK8sPodSpec(const flyteidl::admin::CreateTaskRequest& request,
                                     const PodIdentity& identity, const PodOptions& options,
                                     std::string* primary) {
  const flyteidl::core::TaskTemplate& task = request.template_();
  if (!task.k8s_pod().has_pod_spec()) {
    return Invalid("template.k8s_pod.pod_spec",
                   "missing: pod tasks must specify their target as a K8sPod with a defined pod spec");
  }
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(task.k8s_pod().pod_spec(), &text).ok()) {
    return Invalid("template.k8s_pod.pod_spec", "cannot be converted to JSON");
  }
  Json spec = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!spec.is_object()) return Invalid("template.k8s_pod.pod_spec", "not a JSON object");
  if (auto found = FindTemplate(spec, "")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "template.k8s_pod.pod_spec.", found->first, " holds an unrendered template ", Quoted(found->second),
        ": propeller renders k8s_pod targets for agents from flyte v1.16.8 on; upgrade propeller"));
  }
  auto config = task.config().find(std::string(kPrimaryContainerAnnotation));
  if (config == task.config().end() || config->second.empty()) {
    return Invalid("template.config", "missing the \"primary_container_name\" key that a k8s_pod task needs");
  }
  *primary = config->second;
  if (!spec.contains("containers") || !spec["containers"].is_array() || spec["containers"].empty()) {
    return Invalid("template.k8s_pod.pod_spec.containers", "missing or empty");
  }
  Json* container = FindContainer(&spec, *primary);
  if (container == nullptr) {
    return Invalid("template.config[\"primary_container_name\"]",
                   absl::StrCat("no container named ", Quoted(*primary), " in template.k8s_pod.pod_spec"));
  }
  AppendEnv(container, NeptuneEnv(identity, options, request.task_execution_metadata().namespace_()));
  if (!spec.contains("restartPolicy") || IsZero(spec["restartPolicy"])) spec["restartPolicy"] = "Never";
  if (!spec.contains("serviceAccountName") || IsZero(spec["serviceAccountName"])) {
    if (const std::string account = ServiceAccount(request.task_execution_metadata()); !account.empty()) {
      spec["serviceAccountName"] = account;
    }
  }
  return spec;
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> BuildPod(const flyteidl::admin::CreateTaskRequest& request,
                                                const PodIdentity& identity, const PodOptions& options) {
  if (!IsDns1123Label(identity.pod_name) || identity.pod_name.size() > kMaxPodNameLength) {
    return Invalid("identity.pod_name",
                   absl::StrCat(Quoted(identity.pod_name), " is not a DNS-1123 label of at most ",
                                kMaxPodNameLength, " characters"));
  }
  FNA_RETURN_IF_ERROR(ValidateOptions(options));
  const flyteidl::core::TaskTemplate& task = request.template_();
  const auto& metadata = request.task_execution_metadata();
  const std::string& namespace_name = metadata.namespace_();
  if (!IsDns1123Label(namespace_name)) {
    return Invalid("task_execution_metadata.namespace",
                   absl::StrCat(Quoted(namespace_name), " is not a Kubernetes namespace name"));
  }
  if (const std::string account = ServiceAccount(metadata);
      !account.empty() && !IsDns1123Subdomain(account)) {
    return Invalid("task_execution_metadata.k8s_service_account",
                   absl::StrCat(Quoted(account), " is not a ServiceAccount name"));
  }

  std::optional<PodTemplate> pod_template;
  std::string primary;
  Json spec;
  switch (task.target_case()) {
    case flyteidl::core::TaskTemplate::kContainer: {
      FNA_ASSIGN_OR_RETURN(pod_template, ResolvePodTemplate(task, options));
      primary = identity.pod_name;
      FNA_ASSIGN_OR_RETURN(spec, BuildContainerPodSpec(request, identity, options, pod_template));
      break;
    }
    case flyteidl::core::TaskTemplate::kK8SPod: {
      FNA_ASSIGN_OR_RETURN(spec, BuildK8sPodSpec(request, identity, options, &primary));
      break;
    }
    default:
      return Invalid("template", "has neither a container nor a k8s_pod target: nothing to run as a Pod");
  }

  // Labels and annotations, lowest priority first (§1.3).
  StringMap labels;
  StringMap annotations;
  FNA_RETURN_IF_ERROR(AddLabels("options.default_labels", options.default_labels, &labels));
  FNA_RETURN_IF_ERROR(
      AddAnnotations("options.default_annotations", options.default_annotations, &annotations));
  if (pod_template.has_value()) {
    const Json& template_metadata = pod_template->metadata;
    FNA_ASSIGN_OR_RETURN(
        StringMap template_labels,
        JsonStringMap("pod template metadata.labels",
                      template_metadata.contains("labels") ? template_metadata["labels"] : Json()));
    FNA_ASSIGN_OR_RETURN(
        StringMap template_annotations,
        JsonStringMap("pod template metadata.annotations",
                      template_metadata.contains("annotations") ? template_metadata["annotations"] : Json()));
    FNA_RETURN_IF_ERROR(AddLabels("pod template metadata.labels", template_labels, &labels));
    FNA_RETURN_IF_ERROR(
        AddAnnotations("pod template metadata.annotations", template_annotations, &annotations));
  }
  if (task.has_k8s_pod()) {
    FNA_RETURN_IF_ERROR(
        AddLabels("template.k8s_pod.metadata.labels", ToMap(task.k8s_pod().metadata().labels()), &labels));
    FNA_RETURN_IF_ERROR(AddAnnotations("template.k8s_pod.metadata.annotations",
                                       ToMap(task.k8s_pod().metadata().annotations()), &annotations));
  }
  FNA_RETURN_IF_ERROR(
      AddLabels("template.metadata.metadata.labels", ToMap(task.metadata().metadata().labels()), &labels));
  FNA_RETURN_IF_ERROR(AddAnnotations("template.metadata.metadata.annotations",
                                     ToMap(task.metadata().metadata().annotations()), &annotations));
  FNA_RETURN_IF_ERROR(AddLabels("task_execution_metadata.labels", ToMap(metadata.labels()), &labels));
  FNA_RETURN_IF_ERROR(
      AddAnnotations("task_execution_metadata.annotations", ToMap(metadata.annotations()), &annotations));
  const auto& secrets = task.security_context().secrets();
  if (!secrets.empty()) {
    labels[std::string(kInjectSecretsLabel)] = "true";
    for (int i = 0; i < secrets.size(); ++i) {
      FNA_ASSIGN_OR_RETURN(std::string value, SecretAnnotationValue(i, secrets[i]));
      annotations[absl::StrCat(kSecretAnnotationPrefix, i)] = value;
    }
  }
  std::string execution_identity = metadata.identity().execution_identity();
  if (execution_identity.empty()) execution_identity = task.security_context().run_as().execution_identity();
  if (!execution_identity.empty())
    labels[std::string(kExecutionIdentityLabel)] = SanitizeLabelValue(execution_identity);
  annotations[std::string(kPrimaryContainerAnnotation)] = primary;
  FNA_RETURN_IF_ERROR(AddLabels("options.agent_labels", options.agent_labels, &labels));
  FNA_RETURN_IF_ERROR(AddAnnotations("options.agent_annotations", options.agent_annotations, &annotations));
  size_t annotation_bytes = 0;
  for (const auto& [key, value] : annotations) annotation_bytes += key.size() + value.size();
  if (annotation_bytes > kMaxAnnotationsTotalBytes) {
    return Invalid("annotations",
                   absl::StrCat("total ", annotation_bytes, " bytes, over Kubernetes' limit of ",
                                kMaxAnnotationsTotalBytes));
  }

  Json pod = Json::object();
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  Json& pod_metadata = pod["metadata"];
  pod_metadata["name"] = identity.pod_name;
  pod_metadata["namespace"] = namespace_name;
  pod_metadata["labels"] = Json(labels);
  pod_metadata["annotations"] = Json(annotations);
  if (!identity.flyteworkflow_uid.empty()) {
    const std::string& execution_name =
        metadata.task_execution_id().node_execution_id().execution_id().name();
    if (execution_name.empty()) {
      return Invalid("task_execution_metadata.task_execution_id.node_execution_id.execution_id.name",
                     "empty, but an ownerReference to the FlyteWorkflow needs it");
    }
    pod_metadata["ownerReferences"] = Json::array({Json{{"apiVersion", "flyte.lyft.com/v1alpha1"},
                                                        {"kind", "FlyteWorkflow"},
                                                        {"name", execution_name},
                                                        {"uid", identity.flyteworkflow_uid}}});
  }
  pod["spec"] = spec;
  return pod;
}

}  // namespace fna::executor::kubernetes
