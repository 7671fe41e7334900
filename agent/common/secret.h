#ifndef FNA_AGENT_COMMON_SECRET_H_
#define FNA_AGENT_COMMON_SECRET_H_

#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

namespace fna {

// A secret value (an API token). Secrets stay secret by construction:
// - streaming a Secret prints "[REDACTED]"; the value is reachable only through Reveal(), for the wire;
// - constructing a Secret registers its value with the process-wide redactor, which the logger (and any other
//   text leaving the process through RedactSecrets) applies to every line, so a value that escaped into a
//   message by another path is still masked.
// Copyable; thread-safe.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value);

  // The value, for putting on the wire only. Never log or format it.
  const std::string& Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }
  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "[REDACTED]"; }

 private:
  std::string value_;
};

// Returns `text` with every occurrence of a registered secret value replaced by "[REDACTED]". Thread-safe.
std::string RedactSecrets(absl::string_view text);

}  // namespace fna

#endif  // FNA_AGENT_COMMON_SECRET_H_
