#ifndef FNA_AGENT_STORAGE_ROUTING_OUTPUT_STORE_H_
#define FNA_AGENT_STORAGE_ROUTING_OUTPUT_STORE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/storage/output_store.h"

namespace fna::storage {

// The one OutputStore main.cc installs: routes each URI by its scheme (case-insensitively). "s3://" goes to
// `s3`; "file://" and absolute paths go to `local`; any other scheme (gs://, abfs://...), or a route whose
// store is null, is Unimplemented, so the run records that error.pb was not checked.
//
// Thread safety: as thread-safe as the stores. Neither store is owned; both must outlive the router.
class RoutingOutputStore final : public OutputStore {
 public:
  RoutingOutputStore(OutputStore* local, OutputStore* s3) : local_(local), s3_(s3) {}

  absl::StatusOr<std::optional<std::string>> Read(absl::string_view uri, absl::Time deadline) override;

 private:
  OutputStore* const local_;
  OutputStore* const s3_;
};

}  // namespace fna::storage

#endif  // FNA_AGENT_STORAGE_ROUTING_OUTPUT_STORE_H_
