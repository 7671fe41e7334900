#include "agent/common/secret.h"

#include <mutex>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_replace.h"

namespace fna {
namespace {

constexpr char kRedacted[] = "[REDACTED]";

// Values shorter than this are not registered: masking them would mangle ordinary text, and no real token is
// that short.
constexpr size_t kMinSecretLength = 8;

class Redactor {
 public:
  void Register(const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.insert(value);
  }
  std::string Redact(absl::string_view text) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out(text);
    for (const std::string& value : values_) {
      if (out.find(value) != std::string::npos) absl::StrReplaceAll({{value, kRedacted}}, &out);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::set<std::string> values_ ABSL_GUARDED_BY(mu_);
};

Redactor& GlobalRedactor() {
  static Redactor* const redactor = new Redactor();
  return *redactor;
}

}  // namespace

Secret::Secret(std::string value) : value_(std::move(value)) {
  if (value_.size() >= kMinSecretLength) GlobalRedactor().Register(value_);
}

std::string RedactSecrets(absl::string_view text) { return GlobalRedactor().Redact(text); }

}  // namespace fna
