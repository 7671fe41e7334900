#ifndef FNA_AGENT_TESTING_FAKE_OUTPUT_STORE_H_
#define FNA_AGENT_TESTING_FAKE_OUTPUT_STORE_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/storage/output_store.h"

namespace fna {

// An in-memory storage::OutputStore for unit tests: a map from URI to bytes. Thread-safe.
class FakeOutputStore final : public storage::OutputStore {
 public:
  // The injected error if any, else the bytes at `uri` or std::nullopt.
  absl::StatusOr<std::optional<std::string>> Read(absl::string_view uri, absl::Time /*deadline*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    if (!error_.ok()) return error_;
    const auto it = objects_.find(uri);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }

  void Put(std::string uri, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    objects_.insert_or_assign(std::move(uri), std::move(bytes));
  }
  void Remove(absl::string_view uri) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = objects_.find(uri);
    if (it != objects_.end()) objects_.erase(it);
  }
  // Every Read returns `status` until it is set back to OK.
  void SetError(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(status);
  }
  // Read calls so far, failed ones included.
  int reads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> objects_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fna

#endif  // FNA_AGENT_TESTING_FAKE_OUTPUT_STORE_H_
