#ifndef FNA_AGENT_KUBE_TOKEN_PROVIDER_H_
#define FNA_AGENT_KUBE_TOKEN_PROVIDER_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/secret.h"

namespace fna::kube {

// The bearer token sent to the Kubernetes API, re-read from its file as the kubelet rotates it
// (kubernetes-executor.md §3.1, client-go's cached file token source): at most once per `period` of the
// injected clock, and on the first call after Invalidate() (the API answered 401). It is never cached for the
// process lifetime. A re-read that fails keeps the last token read (the kubelet swaps the file atomically; a
// passing error must not drop authentication) and is tried again on the next call. The file is read by path
// on each re-read, so a swapped symlink is followed.
//
// A static token is used while the file has never been read successfully (client-go: the file, once read,
// takes precedence over the static token). With neither, Token() is an empty Secret: no authentication (an
// http:// server such as `kubectl proxy`, or client-certificate users).
//
// Thread safety: safe for concurrent use. `clock` (not owned) must outlive the provider. Errors name the
// file, never its content.
class TokenProvider {
 public:
  static constexpr absl::Duration kDefaultPeriod = absl::Minutes(1);

  TokenProvider(Secret static_token, std::string token_file, const Clock* clock,
                absl::Duration period = kDefaultPeriod);

  // The token to send now. FailedPrecondition naming the file when it cannot be read (or is empty) and there
  // is no earlier token and no static token.
  absl::StatusOr<Secret> Token();

  // Makes the next Token() re-read the file (after a 401). No effect without a file.
  void Invalidate();

  // Whether there is a file to re-read (a 401 may then be cured by a retry).
  bool rotates() const { return !token_file_.empty(); }

  // Successful file reads so far, for tests.
  int64_t reads() const;

 private:
  const Secret static_token_;
  const std::string token_file_;
  const Clock* const clock_;
  const absl::Duration period_;

  mutable std::mutex mu_;
  std::optional<Secret> file_token_ ABSL_GUARDED_BY(mu_);  // the last successful read
  absl::Time next_read_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t reads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fna::kube

#endif  // FNA_AGENT_KUBE_TOKEN_PROVIDER_H_
