#include "agent/kube/token_provider.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fna::kube {
namespace {

absl::StatusOr<Secret> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the Kubernetes token file ", path, ": ", std::strerror(errno)));
  }
  std::stringstream content;
  content << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(content.str()));
  if (token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("the Kubernetes token file ", path, " is empty"));
  }
  return Secret(std::move(token));
}

}  // namespace

TokenProvider::TokenProvider(Secret static_token, std::string token_file, const Clock* clock,
                             absl::Duration period)
    : static_token_(std::move(static_token)),
      token_file_(std::move(token_file)),
      clock_(clock),
      period_(period) {}

absl::StatusOr<Secret> TokenProvider::Token() {
  if (token_file_.empty()) return static_token_;
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = clock_->Now();
  if (file_token_.has_value() && now < next_read_) return *file_token_;
  absl::StatusOr<Secret> read = ReadTokenFile(token_file_);
  if (read.ok()) {
    file_token_ = *std::move(read);
    next_read_ = now + period_;
    ++reads_;
    return *file_token_;
  }
  if (file_token_.has_value()) return *file_token_;
  if (!static_token_.empty()) return static_token_;
  return read.status();
}

void TokenProvider::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  next_read_ = absl::InfinitePast();
}

int64_t TokenProvider::reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}

}  // namespace fna::kube
