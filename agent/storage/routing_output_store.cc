#include "agent/storage/routing_output_store.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fna::storage {

absl::StatusOr<std::optional<std::string>> RoutingOutputStore::Read(absl::string_view uri,
                                                                    absl::Time deadline) {
  const size_t scheme_end = uri.find("://");
  const std::string scheme =
      scheme_end == absl::string_view::npos ? "" : absl::AsciiStrToLower(uri.substr(0, scheme_end));
  OutputStore* store = nullptr;
  if (scheme == "s3") {
    store = s3_;
  } else if (scheme.empty() || scheme == "file") {
    store = local_;
  }
  if (store == nullptr && (scheme == "s3" || scheme.empty() || scheme == "file")) {
    return absl::UnimplementedError(absl::StrCat("no output store is configured for ", uri));
  }
  if (store == nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        "the agent reads outputs under s3:// URIs and local paths, not \"", scheme, "\" URIs: ", uri));
  }
  return store->Read(uri, deadline);
}

}  // namespace fna::storage
