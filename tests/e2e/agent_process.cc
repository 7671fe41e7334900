#include "tests/e2e/agent_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace fna::e2e {

std::string BinDir() {
  const char* dir = std::getenv("FNA_TEST_BIN_DIR");
  return dir != nullptr ? dir : "bin";
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "fna-e2e-XXXXXX").string();
  path_ = mkdtemp(pattern.data());
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

AgentProcess::AgentProcess(const std::string& work_dir, const std::vector<std::string>& args) {
  static int instance = 0;
  log_path_ = absl::StrCat(work_dir, "/agent-", ++instance, ".log");
  std::vector<std::string> argv = {BinDir() + "/flyte-neptune-agent", "--server.listen_address=127.0.0.1:0",
                                   "--server.metrics_address=127.0.0.1:0", "--logging.format=json"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (auto& arg : argv) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, work_dir.c_str());
  const int rc = posix_spawn(&pid_, c_argv[0], &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    return;
  }
  // Wait for the "serving" line, or for the process to exit.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && port_ == 0) {
    for (absl::string_view line : absl::StrSplit(ReadFile(log_path_), '\n', absl::SkipEmpty())) {
      auto record = nlohmann::json::parse(line, nullptr, false);
      if (!record.is_discarded() && record.value("msg", "") == "serving") {
        port_ = std::stoi(record.value("port", "0"));
        const std::string metrics_port = record.value("metrics_port", "");
        metrics_port_ = metrics_port.empty() ? 0 : std::stoi(metrics_port);
      }
    }
    int status = 0;
    if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -(WIFEXITED(status) ? 1000 + WEXITSTATUS(status) : 2000);  // remembered for WaitExit
      return;
    }
    if (port_ == 0) absl::SleepFor(absl::Milliseconds(20));
  }
  if (port_ == 0) return;
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // the connection closes with the channel
  channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials(),
                                       channel_args);
  agent_ = flyteidl::service::AsyncAgentService::NewStub(channel_);
  metadata_ = flyteidl::service::AgentMetadataService::NewStub(channel_);
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) Kill();
}

int AgentProcess::Stop() {
  if (pid_ <= 0) return -1;
  // Close the connection first, as propeller's would be on a drain: the server waits for open connections.
  agent_.reset();
  metadata_.reset();
  channel_.reset();
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

void AgentProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

void AgentProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int AgentProcess::WaitExit() {
  if (pid_ <= -1000) return pid_ <= -2000 ? -1 : -pid_ - 1000;
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1000;
}

std::string AgentProcess::Logs() const { return ReadFile(log_path_); }

std::string AgentProcess::CreateTask(const flyteidl::admin::CreateTaskRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  flyteidl::admin::CreateTaskResponse response;
  const grpc::Status status = agent_->CreateTask(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << Logs();
  return response.resource_meta();
}

flyteidl::admin::Resource AgentProcess::GetTask(const std::string& resource_meta) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  flyteidl::admin::GetTaskRequest request;
  request.set_resource_meta(resource_meta);
  request.mutable_task_category()->set_name("neptune");
  flyteidl::admin::GetTaskResponse response;
  const grpc::Status status = agent_->GetTask(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.resource();
}

flyteidl::admin::Resource AgentProcess::PollPhase(const std::string& resource_meta,
                                                  flyteidl::core::TaskExecution::Phase phase,
                                                  absl::Duration timeout) {
  flyteidl::admin::Resource resource;
  const absl::Time deadline = absl::Now() + timeout;
  do {
    resource = GetTask(resource_meta);
    if (resource.phase() == phase) return resource;
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < deadline);
  ADD_FAILURE() << "phase " << resource.phase() << ": " << resource.message() << "\n" << Logs();
  return resource;
}

std::string CustomRunId(const flyteidl::admin::Resource& resource) {
  return resource.custom_info()
      .fields()
      .at("neptune")
      .struct_value()
      .fields()
      .at("custom_run_id")
      .string_value();
}

}  // namespace fna::e2e
