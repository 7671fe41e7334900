#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_TESTING_MANIFEST_VALIDATOR_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_TESTING_MANIFEST_VALIDATOR_H_

// Test helper: validates a Pod manifest offline with validate_manifest.py (kubernetes-executor.md §5, §5.x):
// unknown fields and JSON types by a python3-kubernetes round trip, types/enums/quantities by
// kubernetes-models 4.x. Runs a subprocess; for tests only.

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace fna::executor::kubernetes::testing {

// OK when valid; InvalidArgument listing the problems (one per line, with JSON paths); Unavailable when a
// checker is not installed (the caller skips); Internal when the script cannot be run.
inline absl::Status ValidateManifest(const nlohmann::ordered_json& manifest) {
  char path[] = "/tmp/fna-manifest-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return absl::InternalError("mkstemp failed");
  const std::string text = manifest.dump(2);
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!written) {
    unlink(path);
    return absl::InternalError("cannot write the manifest");
  }
  const std::string command =
      absl::StrCat("/usr/bin/python3 '", FNA_K8S_MANIFEST_VALIDATOR, "' '", path, "' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    unlink(path);
    return absl::InternalError("popen failed");
  }
  std::string output;
  char buffer[4096];
  size_t read;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, read);
  const int status = pclose(pipe);
  unlink(path);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0) return absl::OkStatus();
  if (code == 1) return absl::InvalidArgumentError(output);
  if (code == 77) return absl::UnavailableError(output);
  return absl::InternalError(absl::StrCat("validate_manifest.py exited with ", code, ": ", output));
}

}  // namespace fna::executor::kubernetes::testing

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_TESTING_MANIFEST_VALIDATOR_H_
