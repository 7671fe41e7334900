#ifndef FNA_TESTS_E2E_OPERATIONS_H_
#define FNA_TESTS_E2E_OPERATIONS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"

// What the operations tests observe of the agent from outside: its HTTP endpoint, its gRPC health, the output
// of one-shot runs of a binary.
namespace fna::e2e {

// One scrape of /metrics: each series ("name{labels}" exactly as exposed) and its value.
using Metrics = std::map<std::string, double>;
Metrics ParseMetrics(const std::string& text);

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
  std::string content_type;
};
HttpAnswer HttpGet(int port, const std::string& path);

// grpc.health.v1 Check of `service` over `channel`: the status number (1 SERVING, 2 NOT_SERVING), or minus
// the gRPC code of a failed call.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service = "");

struct CommandResult {
  int exit_code = -1;  // -1000: killed after the timeout
  std::string out;
  std::string err;
};
// Runs `argv` in `work_dir` with the environment plus `env` ("NAME=value"), for at most 30 s.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& work_dir,
                         const std::vector<std::string>& env = {});

// The lines of `text`, without empty ones.
std::vector<std::string> Lines(const std::string& text);

}  // namespace fna::e2e

#endif  // FNA_TESTS_E2E_OPERATIONS_H_
