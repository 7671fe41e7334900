#ifndef FNA_TESTS_E2E_AGENT_PROCESS_H_
#define FNA_TESTS_E2E_AGENT_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "flyteidl/service/agent.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace fna::e2e {

// The real flyte-neptune-agent binary, started as a child process in `work_dir` with JSON logs to a file.
// Not thread-safe; the stubs it hands out are.
class AgentProcess {
 public:
  // Starts the agent with `args` (after --server.listen_address=127.0.0.1:0,
  // --server.metrics_address=127.0.0.1:0 and --logging.format=json) and waits until it logs that it is
  // serving. On failure, `ok()` is false and `exit_code()` tells why.
  AgentProcess(const std::string& work_dir, const std::vector<std::string>& args);
  ~AgentProcess();

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  // The operations endpoint's port (/metrics, /readyz, /healthz); 0 when not served.
  int metrics_port() const { return metrics_port_; }
  // SIGTERM and wait; returns the exit status (or -signal).
  int Stop();
  // Sends `signal` and returns at once, keeping the connection open (as propeller's stays during a drain).
  void Signal(int signal);
  // SIGKILL, as a crash or an evicted Pod.
  void Kill();
  // The exit status after the process ended by itself (waits up to 10 s); -1000 if it still runs.
  int WaitExit();

  std::string Logs() const;

  // Propeller's calls, expecting OK (a failed call is a test failure). CreateTask returns the resource_meta.
  std::string CreateTask(const flyteidl::admin::CreateTaskRequest& request);
  flyteidl::admin::Resource GetTask(const std::string& resource_meta);
  // Polls GetTask every 50 ms until the phase is `phase` (at most `timeout`; then a test failure with the
  // agent's logs) and returns the last resource.
  flyteidl::admin::Resource PollPhase(const std::string& resource_meta,
                                      flyteidl::core::TaskExecution::Phase phase,
                                      absl::Duration timeout = absl::Seconds(15));

  flyteidl::service::AsyncAgentService::Stub& agent() { return *agent_; }
  flyteidl::service::AgentMetadataService::Stub& metadata() { return *metadata_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<flyteidl::service::AsyncAgentService::Stub> agent_;
  std::unique_ptr<flyteidl::service::AgentMetadataService::Stub> metadata_;
};

// custom_info.neptune.custom_run_id of a GetTask resource.
std::string CustomRunId(const flyteidl::admin::Resource& resource);

// <build>/bin, from the environment ctest sets.
std::string BinDir();

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& contents);

}  // namespace fna::e2e

#endif  // FNA_TESTS_E2E_AGENT_PROCESS_H_
