// flyte-neptune-agent: a Flyte agent (connector) that runs each task attempt and tracks it as a Neptune run.
// Wires the configured implementations of the seams into the lifecycle and serves it over gRPC until SIGTERM.

#include <signal.h>
#include <unistd.h>

#include <climits>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/common/clock.h"
#include "agent/common/log.h"
#include "agent/common/periodic.h"
#include "agent/config/config_loader.h"
#include "agent/executor/process_executor.h"
#include "agent/neptune/offline_tracker.h"
#include "agent/server/agent_server.h"
#include "agent/storage/local_output_store.h"
#include "agent/tracking/final_writer.h"
#include "agent/tracking/lifecycle.h"
#include "agent/version.h"

extern char** environ;

namespace fna {
namespace {

constexpr absl::Duration kShutdownDeadline = absl::Seconds(10);
constexpr absl::Duration kFinalWriterPeriod = absl::Seconds(1);

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::pair<std::string, std::string> kv = absl::StrSplit(*entry, absl::MaxSplits('=', 1));
    env.insert(std::move(kv));
  }
  return env;
}

// flyte-neptune-runner is installed next to the agent.
std::string DefaultRunnerPath() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "flyte-neptune-runner";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "flyte-neptune-runner";
}

int Fail(absl::string_view what, const absl::Status& status) {
  Log(LogLevel::kError, "main", absl::StrCat(what, ": ", status.message()));
  return 1;
}

int Run(const AgentConfig& config) {
  // Signals are taken by sigwait below; block them before any thread starts so none of them receives one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Clock* clock = Clock::Real();
  auto tracker =
      neptune::OfflineTracker::Create(neptune::OfflineTrackerOptions{config.offline_directory}, clock);
  if (!tracker.ok()) return Fail("cannot open the offline Neptune directory", tracker.status());

  executor::ProcessExecutor::Options executor_options;
  executor_options.state_directory = config.process_state_directory;
  executor_options.runner_path =
      config.process_runner_path.empty() ? DefaultRunnerPath() : config.process_runner_path;
  auto executor = executor::ProcessExecutor::Create(executor_options);
  if (!executor.ok()) return Fail("cannot start the process executor", executor.status());

  storage::LocalOutputStore outputs;
  tracking::FinalWriter::Options writer_options;
  writer_options.console_url = config.console_url;
  tracking::FinalWriter final_writer(writer_options, tracker->get(), executor->get(), clock);
  if (absl::Status resumed = final_writer.Resume(); !resumed.ok()) {
    return Fail("cannot read pending final writes", resumed);
  }
  tracking::TaskLifecycle lifecycle(&config, tracker->get(), executor->get(), &outputs, &final_writer, clock);

  auto server = server::AgentServer::Start(&config, &lifecycle);
  if (!server.ok()) return Fail("cannot start the gRPC server", server.status());
  PeriodicThread final_writes(kFinalWriterPeriod, [&final_writer] { final_writer.RunDue(); });
  Log(LogLevel::kInfo, "main", "serving",
      {{"address", config.listen_address},
       {"port", absl::StrCat((*server)->port())},
       {"task_types", absl::StrJoin(config.task_types, ",")},
       {"tracker", "offline"},
       {"offline_directory", config.offline_directory},
       {"executor", "process"},
       {"state_directory", config.process_state_directory},
       {"version", kVersion}});

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Log(LogLevel::kInfo, "main", "shutting down", {{"signal", strsignal(signal_number)}});
  (*server)->Shutdown(absl::Now() + kShutdownDeadline);
  final_writes.Stop();
  final_writer.RunDue();
  if (size_t pending = final_writer.pending(); pending > 0) {
    Log(LogLevel::kWarning, "main", "final writes still pending; a restarted agent resumes them",
        {{"count", absl::StrCat(pending)}});
  }
  Log(LogLevel::kInfo, "main", "stopped");
  return 0;
}

}  // namespace
}  // namespace fna

int main(int argc, char** argv) {
  using fna::ParseCommandLine;
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto command_line = ParseCommandLine(args, fna::Environment());
  if (!command_line.ok()) {
    std::cerr << "flyte-neptune-agent: " << command_line.status().message() << "\n";
    return 2;
  }
  if (command_line->help) {
    std::cout << fna::UsageText();
    return 0;
  }
  if (command_line->version) {
    std::cout << "flyte-neptune-agent " << fna::kVersion << " (flyteidl " << fna::kFlyteidlVersion << ")\n";
    return 0;
  }
  if (command_line->print_config) {
    std::cout << fna::FormatConfig(command_line->config);
    return 0;
  }
  fna::ConfigureLogging(command_line->config.log_format, command_line->config.log_level);
  return fna::Run(command_line->config);
}
