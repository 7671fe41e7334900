#include "tests/e2e/operations.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/testing/grpc_health_check.h"
#include "httplib.h"
#include "tests/e2e/agent_process.h"

extern char** environ;

namespace fna::e2e {

Metrics ParseMetrics(const std::string& text) {
  Metrics metrics;
  for (const std::string& line : Lines(text)) {
    if (line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == std::string::npos) continue;
    const std::string number = line.substr(space + 1);
    if (number == "+Inf") {
      value = HUGE_VAL;
    } else if (!absl::SimpleAtod(number, &value)) {
      continue;
    }
    metrics[line.substr(0, space)] = value;
  }
  return metrics;
}

HttpAnswer HttpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  HttpAnswer answer;
  if (auto response = client.Get(path.c_str()); response) {
    answer.status = response->status;
    answer.body = response->body;
    answer.content_type = response->get_header_value("Content-Type");
  }
  return answer;
}

int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  return testing::GrpcHealthCheck(channel, service);
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& work_dir,
                         const std::vector<std::string>& env) {
  static int instance = 0;
  const std::string out_path = absl::StrCat(work_dir, "/command-", ++instance, ".out");
  const std::string err_path = absl::StrCat(work_dir, "/command-", instance, ".err");
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (std::string& arg : args) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);
  std::vector<std::string> variables = env;
  for (char** entry = environ; *entry != nullptr; ++entry) variables.emplace_back(*entry);
  std::vector<char*> c_env;
  for (std::string& variable : variables) c_env.push_back(variable.data());
  c_env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addchdir_np(&actions, work_dir.c_str());
  pid_t pid = -1;
  CommandResult result;
  const int rc = posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return result;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.exit_code = -1000;
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (result.exit_code != -1000)
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

}  // namespace fna::e2e
