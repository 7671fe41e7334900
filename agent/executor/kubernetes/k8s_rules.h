#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_K8S_RULES_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_K8S_RULES_H_

// Kubernetes name, label and quantity rules (kubernetes-executor.md §3.5) and the Flyte encodings the Pod
// builder needs (§1.3 label sanitizing, §1.8 base32). Pure functions, no I/O.

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna::executor::kubernetes {

inline constexpr size_t kMaxLabelValueLength = 63;
inline constexpr size_t kMaxDns1123LabelLength = 63;
inline constexpr size_t kMaxDns1123SubdomainLength = 253;
inline constexpr size_t kMaxAnnotationsTotalBytes = 256 * 1024;

// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters (Pod names the agent makes, container names,
// namespaces).
bool IsDns1123Label(absl::string_view text);

// DNS-1123 labels joined by '.', at most 253 characters (Pod names, ServiceAccount names, key prefixes).
bool IsDns1123Subdomain(absl::string_view text);

// A label value: at most 63 characters of `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?` (empty allowed).
bool IsLabelValue(absl::string_view text);

// A label or annotation key: an optional DNS-1123 subdomain prefix and '/', then a name of 1 to 63 characters
// of `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
bool IsQualifiedName(absl::string_view text);

// Propeller's SanitizeLabelValue (flytepropeller/pkg/utils/k8s.go): lower-cases, replaces each run of
// characters outside [-a-z0-9] with '-', keeps the first 63 characters and trims '-' at both ends. The result
// is always a valid label value (possibly empty).
std::string SanitizeLabelValue(absl::string_view text);

// `text` if it is already a valid label value, else SanitizeLabelValue(text). Valid values (which may hold
// upper case, '.' and '_') are kept as they are.
std::string LabelValueOrSanitized(absl::string_view text);

// A parsed Kubernetes quantity ("500m", "1Gi", "1e3", "0.5"): its value in base units. `long double` keeps
// every value a Pod uses exact enough to compare.
struct Quantity {
  long double value = 0;
  bool IsZero() const { return value == 0; }
};

// Parses `<signedNumber><suffix>` with suffixes Ki Mi Gi Ti Pi Ei, n u m "" k M G T P E, or e<n>/E<n>. No
// spaces. nullopt for anything else.
std::optional<Quantity> ParseQuantity(absl::string_view text);

// Base32 of `data` (RFC 4648 bit order) with Flyte's alphabet `abcdefghijklmnopqrstuvwxyz123456` and no
// padding: flyteplugins' encoding.Base32Encoder.
std::string FlyteBase32(absl::string_view data);

// A Go time.Duration's String(): "0s", "1.5s", "3m0s", "1h0m0s", "500ms", "2µs", "7ns".
std::string GoDurationString(absl::Duration duration);

}  // namespace fna::executor::kubernetes

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_K8S_RULES_H_
