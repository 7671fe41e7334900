// flyte-agent-client: plays propeller's part against an agent, for local use and debugging.
//
//   flyte-agent-client list
//   flyte-agent-client run TASK_FILE        create, poll GetTask as propeller does, print phases and links
//   flyte-agent-client create TASK_FILE     create only; prints the resource_meta (base64)
//   flyte-agent-client get META             one GetTask for a base64 resource_meta
//   flyte-agent-client abort META           DeleteTask, as propeller does on abort
//
// Polling follows propeller's webapi plugin (flyte-agent-protocol.md §2): the first GetTask comes one resync
// interval after CreateTask, then one per interval, through a token-bucket read rate limiter.

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/client/task_file.h"
#include "agent/version.h"
#include "flyteidl/service/agent.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, address, "127.0.0.1:8000", "the agent's gRPC address");
ABSL_FLAG(absl::Duration, resync, absl::Seconds(30),
          "GetTask interval (propeller: webApi.caching.resyncInterval)");
ABSL_FLAG(double, qps, 10,
          "read rate limit, GetTask calls per second (propeller: webApi.readRateLimiter.qps)");
ABSL_FLAG(int, burst, 100, "read rate limit burst (propeller: webApi.readRateLimiter.burst)");
ABSL_FLAG(absl::Duration, abort_after, absl::ZeroDuration(),
          "send DeleteTask this long after CreateTask (0: never)");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(10),
          "deadline of each call (connector-service default: 10s)");
ABSL_FLAG(absl::Duration, max_wait, absl::Hours(24), "give up polling after this long");
ABSL_FLAG(bool, tls, false, "connect with TLS, trusting the system's CAs (or --tls_ca_file's)");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM file of the CAs that signed the agent's certificate; implies --tls");
ABSL_FLAG(std::string, outputs, "",
          "root of output prefixes for task files without one (default: ./outputs)");

namespace {

using flyteidl::core::TaskExecution;

// A token bucket: `qps` tokens per second, at most `burst` stored.
class RateLimiter {
 public:
  RateLimiter(double qps, int burst) : qps_(qps), burst_(burst), tokens_(burst), last_(absl::Now()) {}
  void Acquire() {
    while (true) {
      const absl::Time now = absl::Now();
      tokens_ = std::min<double>(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * qps_);
      last_ = now;
      if (tokens_ >= 1) {
        tokens_ -= 1;
        return;
      }
      absl::SleepFor(absl::Seconds((1 - tokens_) / qps_));
    }
  }

 private:
  const double qps_;
  const int burst_;
  double tokens_;
  absl::Time last_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_rpc_timeout)));
  return context;
}

int Report(const grpc::Status& status, absl::string_view what) {
  std::cerr << what << " failed: code " << status.error_code() << ": " << status.error_message() << "\n";
  return 2;
}

std::string PhaseName(const flyteidl::admin::Resource& resource) {
  if (resource.phase() == TaskExecution::UNDEFINED) {
    return absl::StrCat("UNDEFINED (state ", flyteidl::admin::State_Name(resource.state()), ")");
  }
  return TaskExecution::Phase_Name(resource.phase());
}

bool IsTerminal(const flyteidl::admin::Resource& resource) {
  switch (resource.phase()) {
    case TaskExecution::SUCCEEDED:
    case TaskExecution::FAILED:
    case TaskExecution::ABORTED:
    case TaskExecution::RETRYABLE_FAILED:
      return true;
    case TaskExecution::UNDEFINED:
      return resource.state() != flyteidl::admin::PENDING && resource.state() != flyteidl::admin::RUNNING;
    default:
      return false;
  }
}

void Print(const flyteidl::admin::Resource& resource) {
  std::cout << absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()) << " phase "
            << PhaseName(resource);
  if (!resource.message().empty()) std::cout << ": " << resource.message();
  std::cout << "\n";
  for (const auto& link : resource.log_links())
    std::cout << "    link " << link.name() << ": " << link.uri() << "\n";
}

int List(flyteidl::service::AgentMetadataService::Stub& metadata) {
  flyteidl::admin::ListAgentsResponse response;
  auto context = Context();
  grpc::Status status = metadata.ListAgents(context.get(), {}, &response);
  if (!status.ok()) return Report(status, "ListAgents");
  for (const auto& agent : response.agents()) {
    std::cout << agent.name() << (agent.is_sync() ? " (sync)" : "") << ":";
    for (const auto& category : agent.supported_task_categories()) {
      std::cout << " " << category.name() << "@" << category.version();
    }
    std::cout << "\n";
  }
  return 0;
}

int Get(flyteidl::service::AsyncAgentService::Stub& agent, const std::string& meta, const std::string& type,
        flyteidl::admin::Resource* resource) {
  flyteidl::admin::GetTaskRequest request;
  request.set_resource_meta(meta);
  request.set_task_type(type);
  request.mutable_task_category()->set_name(type);
  flyteidl::admin::GetTaskResponse response;
  auto context = Context();
  grpc::Status status = agent.GetTask(context.get(), request, &response);
  if (!status.ok()) return Report(status, "GetTask");
  *resource = response.resource();
  return 0;
}

int Abort(flyteidl::service::AsyncAgentService::Stub& agent, const std::string& meta,
          const std::string& type) {
  flyteidl::admin::DeleteTaskRequest request;
  request.set_resource_meta(meta);
  request.set_task_type(type);
  request.mutable_task_category()->set_name(type);
  flyteidl::admin::DeleteTaskResponse response;
  auto context = Context();
  grpc::Status status = agent.DeleteTask(context.get(), request, &response);
  if (!status.ok()) return Report(status, "DeleteTask");
  std::cout << "aborted\n";
  return 0;
}

int Create(flyteidl::service::AsyncAgentService::Stub& agent, const std::string& file, std::string* meta,
           std::string* type) {
  absl::BitGen random;
  std::string name = "f";
  for (int i = 0; i < 19; ++i)
    name.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[absl::Uniform(random, 0, 36)]);
  std::string outputs = absl::GetFlag(FLAGS_outputs);
  if (outputs.empty()) {
    char cwd[4096];
    outputs = absl::StrCat("file://", getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : ".", "/outputs");
  }
  auto request = fna::client::LoadTaskFile(file, name, outputs);
  if (!request.ok()) {
    std::cerr << request.status().message() << "\n";
    return 2;
  }
  *type = request->template_().type();
  flyteidl::admin::CreateTaskResponse response;
  auto context = Context();
  grpc::Status status = agent.CreateTask(context.get(), *request, &response);
  if (!status.ok()) return Report(status, "CreateTask");
  *meta = response.resource_meta();
  const auto& execution = request->task_execution_metadata().task_execution_id().node_execution_id();
  std::cout << "created " << execution.execution_id().name() << "/" << execution.node_id()
            << " (output prefix " << request->output_prefix() << ")\n";
  return 0;
}

int RunTask(flyteidl::service::AsyncAgentService::Stub& agent, const std::string& file) {
  std::string meta, type;
  if (int rc = Create(agent, file, &meta, &type); rc != 0) return rc;
  std::cout << "resource_meta " << absl::Base64Escape(meta) << "\n";
  RateLimiter limiter(absl::GetFlag(FLAGS_qps), absl::GetFlag(FLAGS_burst));
  const absl::Time created = absl::Now();
  const absl::Duration abort_after = absl::GetFlag(FLAGS_abort_after);
  std::string last;
  while (absl::Now() - created < absl::GetFlag(FLAGS_max_wait)) {
    absl::Duration wait = absl::GetFlag(FLAGS_resync);
    bool abort_now = false;
    if (abort_after > absl::ZeroDuration()) {
      const absl::Duration until_abort = created + abort_after - absl::Now();
      if (until_abort <= wait) {
        wait = std::max(until_abort, absl::ZeroDuration());
        abort_now = true;
      }
    }
    absl::SleepFor(wait);
    if (abort_now) {
      if (int rc = Abort(agent, meta, type); rc != 0) return rc;
      flyteidl::admin::Resource resource;
      if (Get(agent, meta, type, &resource) == 0) Print(resource);
      return 3;
    }
    limiter.Acquire();
    flyteidl::admin::Resource resource;
    if (int rc = Get(agent, meta, type, &resource); rc != 0) continue;  // propeller counts and retries
    const std::string now = absl::StrCat(PhaseName(resource), resource.message());
    if (now != last) Print(resource);
    last = now;
    if (IsTerminal(resource)) return resource.phase() == TaskExecution::SUCCEEDED ? 0 : 1;
  }
  std::cerr << "gave up after " << absl::FormatDuration(absl::GetFlag(FLAGS_max_wait)) << "\n";
  return 4;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "plays propeller's part against a Flyte agent.\n"
      "  flyte-agent-client [flags] list | run TASK_FILE | create TASK_FILE | get META | abort META\n"
      "META is a base64 resource_meta as printed by run/create. Exit status of run: 0 succeeded, 1 failed, "
      "3 aborted.");
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] { return fna::VersionLine("flyte-agent-client") + "\n"; };
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  const std::string command = args[1];
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const std::string ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  if (absl::GetFlag(FLAGS_tls) || !ca_file.empty()) {
    grpc::SslCredentialsOptions options;
    if (!ca_file.empty()) {
      std::ifstream in(ca_file, std::ios::binary);
      std::stringstream pem;
      pem << in.rdbuf();
      if (!in || pem.str().empty()) {
        std::cerr << "--tls_ca_file: cannot read " << ca_file << "\n";
        return 2;
      }
      options.pem_root_certs = pem.str();
    }
    credentials = grpc::SslCredentials(options);
  }
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_address), credentials);
  flyteidl::service::AsyncAgentService::Stub agent(channel);
  flyteidl::service::AgentMetadataService::Stub metadata(channel);
  if (command == "list") return List(metadata);
  if (args.size() < 3) {
    std::cerr << command << " needs an argument\n";
    return 2;
  }
  const std::string argument = args[2];
  const std::string type = args.size() > 3 ? args[3] : "neptune";
  if (command == "run") return RunTask(agent, argument);
  if (command == "create") {
    std::string meta, created_type;
    if (int rc = Create(agent, argument, &meta, &created_type); rc != 0) return rc;
    std::cout << "resource_meta " << absl::Base64Escape(meta) << "\n";
    return 0;
  }
  std::string meta;
  if (!absl::Base64Unescape(argument, &meta)) {
    std::cerr << "META must be base64\n";
    return 2;
  }
  if (command == "get") {
    flyteidl::admin::Resource resource;
    if (int rc = Get(agent, meta, type, &resource); rc != 0) return rc;
    Print(resource);
    return 0;
  }
  if (command == "abort") return Abort(agent, meta, type);
  std::cerr << "unknown command " << command << "\n";
  return 2;
}
