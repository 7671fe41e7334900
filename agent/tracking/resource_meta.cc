#include "agent/tracking/resource_meta.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/tracking/identity.h"

namespace fna::tracking {

absl::StatusOr<std::string> EncodeResourceMeta(ResourceMeta meta) {
  meta.set_version(kResourceMetaVersion);
  std::string bytes;
  if (!meta.SerializeToString(&bytes)) return absl::InternalError("cannot serialize resource_meta");
  if (bytes.size() > kResourceMetaBudgetBytes) {
    size_t tags = 0;
    for (const std::string& tag : meta.settings().tags()) tags += tag.size();
    return absl::InvalidArgumentError(absl::StrCat(
        "the task's tracking state is ", bytes.size(), " bytes, over its ", kResourceMetaBudgetBytes,
        "-byte budget (Flyte keeps it in the workflow object); shorten the Neptune settings: description ",
        meta.settings().description().size(), " bytes, tags ", tags, " bytes, name ",
        meta.settings().name().size(), " bytes"));
  }
  return bytes;
}

absl::StatusOr<ResourceMeta> DecodeResourceMeta(absl::string_view bytes) {
  ResourceMeta meta;
  if (bytes.empty()) {
    return absl::InvalidArgumentError(
        "resource_meta is empty: the task was not created by the neptune agent");
  }
  if (!meta.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource_meta (", bytes.size(), " bytes) is corrupt or was not written by the neptune agent"));
  }
  if (meta.version() == 0 || meta.execution_id().empty() || meta.custom_run_id().empty() ||
      meta.output_prefix().empty() || meta.execution_id().size() > kMaxExecutionIdLength ||
      meta.custom_run_id().size() > kMaxCustomRunIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource_meta (", bytes.size(),
                     " bytes) is not a neptune agent resource_meta: missing or invalid ids"));
  }
  return meta;
}

executor::TaskRef TaskRefOf(const ResourceMeta& meta) {
  return executor::TaskRef{meta.execution_id(), meta.ids().namespace_()};
}

}  // namespace fna::tracking
