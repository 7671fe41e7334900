#ifndef FNA_AGENT_STORAGE_OUTPUT_STORE_H_
#define FNA_AGENT_STORAGE_OUTPUT_STORE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna::storage {

// Reads objects under a task's output_prefix (error.pb). The seam between the lifecycle and Flyte's blob
// store. Thread-safe.
class OutputStore {
 public:
  virtual ~OutputStore() = default;

  // The object at `uri`, or std::nullopt when it does not exist. Unimplemented for a URI scheme this store
  // cannot read (the caller records that it could not check); other errors for failed reads.
  virtual absl::StatusOr<std::optional<std::string>> Read(absl::string_view uri, absl::Time deadline) = 0;
};

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_OUTPUT_STORE_H_
