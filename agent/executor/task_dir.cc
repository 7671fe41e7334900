#include "agent/executor/task_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <exception>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace fna::executor {
namespace {

using Json = nlohmann::json;

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

absl::Time ParseTimeOrThrow(const Json& value) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, value.get<std::string>(), &t, &error)) {
    throw std::invalid_argument("bad time: " + error);
  }
  return t;
}

// Runs `parse`, turning a missing field or a wrong type into DataLoss: records are only written by this code.
template <typename T, typename F>
absl::StatusOr<T> ParseRecord(absl::string_view json, F parse) {
  try {
    return parse(Json::parse(json.begin(), json.end()));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("malformed record: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<std::string> SerializeTaskSpecFile(const TaskSpecFile& spec) {
  Json env = Json::array();
  for (const auto& [name, value] : spec.env) env.push_back(Json::array({name, value}));
  const Json json = {{"argv", spec.argv},
                     {"env", std::move(env)},
                     {"working_directory", spec.working_directory},
                     {"abort_grace_ms", absl::ToInt64Milliseconds(spec.abort_grace)}};
  try {
    return json.dump();
  } catch (const Json::type_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the task's command or environment is not valid UTF-8: ", e.what()));
  }
}

absl::StatusOr<TaskSpecFile> ParseTaskSpecFile(absl::string_view json) {
  return ParseRecord<TaskSpecFile>(json, [](const Json& j) {
    TaskSpecFile spec;
    spec.argv = j.at("argv").get<std::vector<std::string>>();
    for (const Json& entry : j.at("env")) {
      spec.env.emplace_back(entry.at(0).get<std::string>(), entry.at(1).get<std::string>());
    }
    spec.working_directory = j.at("working_directory").get<std::string>();
    spec.abort_grace = absl::Milliseconds(j.at("abort_grace_ms").get<int64_t>());
    return spec;
  });
}

std::string SerializeRunnerFile(const RunnerFile& runner) {
  const Json json = {{"runner_pid", runner.runner_pid},
                     {"child_pid", runner.child_pid},
                     {"started_at", FormatRfc3339(runner.started_at)}};
  return json.dump();
}

absl::StatusOr<RunnerFile> ParseRunnerFile(absl::string_view json) {
  return ParseRecord<RunnerFile>(json, [](const Json& j) {
    RunnerFile runner;
    runner.runner_pid = j.at("runner_pid").get<int>();
    runner.child_pid = j.at("child_pid").get<int>();
    runner.started_at = ParseTimeOrThrow(j.at("started_at"));
    return runner;
  });
}

std::string SerializeResultFile(const ResultFile& result) {
  Json json = {{"finished_at", FormatRfc3339(result.finished_at)},
               {"start_error", result.start_error},
               {"aborted", result.aborted}};
  if (result.exit_code) json["exit_code"] = *result.exit_code;
  if (result.signal) json["signal"] = *result.signal;
  if (result.started_at) json["started_at"] = FormatRfc3339(*result.started_at);
  return json.dump();
}

absl::StatusOr<ResultFile> ParseResultFile(absl::string_view json) {
  return ParseRecord<ResultFile>(json, [](const Json& j) {
    ResultFile result;
    if (j.contains("exit_code")) result.exit_code = j.at("exit_code").get<int>();
    if (j.contains("signal")) result.signal = j.at("signal").get<int>();
    if (j.contains("started_at")) result.started_at = ParseTimeOrThrow(j.at("started_at"));
    result.finished_at = ParseTimeOrThrow(j.at("finished_at"));
    result.start_error = j.at("start_error").get<std::string>();
    result.aborted = j.at("aborted").get<bool>();
    return result;
  });
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::optional<std::string>> ReadFileIfExists(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::nullopt;
    return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  }
  std::string content;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  return content;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content) {
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  UniqueFd fd(mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  const auto fail = [&tmp](absl::string_view what) {
    const absl::Status status = absl::ErrnoToStatus(errno, absl::StrCat(what, " ", tmp));
    unlink(tmp.c_str());
    return status;
  };
  for (size_t done = 0; done < content.size();) {
    const ssize_t n = write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    done += static_cast<size_t>(n);
  }
  if (fdatasync(fd.get()) != 0) return fail("fdatasync");
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  return absl::OkStatus();
}

}  // namespace fna::executor
