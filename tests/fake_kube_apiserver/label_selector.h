#ifndef FNA_TESTS_FAKE_KUBE_APISERVER_LABEL_SELECTOR_H_
#define FNA_TESTS_FAKE_KUBE_APISERVER_LABEL_SELECTOR_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fna::fake_kube {

// A parsed Kubernetes label selector (kubernetes/apimachinery pkg/labels/selector.go), as the API server
// reads the labelSelector query parameter: requirements separated by commas, all of which must hold:
//   key=value, key==value   the label is set to value
//   key!=value              the label is not set, or set to another value
//   key in (v1,v2)          the label is set to one of the values
//   key notin (v1,v2)       the label is not set, or set to none of the values
//   key                     the label is set
//   !key                    the label is not set
// Whitespace around tokens is ignored. Keys must be qualified names ([prefix/]name) and values label values
// (at most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends; empty allowed). The empty selector
// matches everything. The numeric `gt`/`lt` operators are not supported. Immutable; thread-compatible.
class LabelSelector {
 public:
  enum class Operator { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Operator op = Operator::kExists;
    std::set<std::string> values;  // one for (not) equals, at least one for (not)in, none otherwise
  };

  // InvalidArgument with a message in the API server's style ("unable to parse requirement: ...").
  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);

  bool Matches(const std::map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

// Kubernetes name rules (apimachinery pkg/util/validation): "" when `value` is valid, else the reason.
std::string CheckDns1123Subdomain(absl::string_view value);
std::string CheckDns1123Label(absl::string_view value);
std::string CheckQualifiedName(absl::string_view value);
std::string CheckLabelValue(absl::string_view value);

}  // namespace fna::fake_kube

#endif  // FNA_TESTS_FAKE_KUBE_APISERVER_LABEL_SELECTOR_H_
