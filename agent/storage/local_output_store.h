#ifndef FNA_AGENT_STORAGE_LOCAL_OUTPUT_STORE_H_
#define FNA_AGENT_STORAGE_LOCAL_OUTPUT_STORE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/storage/output_store.h"

namespace fna::storage {

// Reads objects from the local filesystem: "file:///abs/path" (or "file://localhost/abs/path"; no
// percent-decoding) and absolute paths. A missing file (or a missing directory on the way) is std::nullopt.
// Any other scheme ("s3://", "gs://", ...) is Unimplemented, naming the scheme; a relative path or a file://
// URI with another host is InvalidArgument; a failed read is an error naming the path and the errno text.
// `deadline` is not consulted (local reads). Stateless; thread-safe.
class LocalOutputStore final : public OutputStore {
 public:
  absl::StatusOr<std::optional<std::string>> Read(absl::string_view uri, absl::Time deadline) override;
};

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_LOCAL_OUTPUT_STORE_H_
