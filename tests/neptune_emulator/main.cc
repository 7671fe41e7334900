// neptune-emulator: the strict Neptune 2.x emulator as a process, for tests that drive it from outside.
//
//   neptune-emulator [--port=N] [--host=ADDR] [--specs=DIR] [--tls-cert=PEM --tls-key=PEM]
//                    [--project=ws/proj[:KEY]]... [--api-key=KEY]... [--idle-after-seconds=N]
//                    [--access-token-lifetime-seconds=N]
//
// Prints one JSON line on stdout once it accepts connections:
//   {"port":N,"baseUrl":"http://127.0.0.1:N","apiToken":"<base64>","projects":["emulator/sandbox"],"tls":false}
// then serves until SIGINT or SIGTERM. Control endpoints are under /_emulator/ (see emulator.h). Without
// --project, the project emulator/sandbox (key SAN) exists.

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/neptune_emulator/emulator.h"

namespace {

constexpr char kUsage[] =
    "usage: neptune-emulator [--port=N] [--host=ADDR] [--specs=DIR] [--tls-cert=PEM --tls-key=PEM]\n"
    "                        [--project=ws/proj[:KEY]]... [--api-key=KEY]... [--idle-after-seconds=N]\n"
    "                        [--access-token-lifetime-seconds=N]\n";

int Fail(const std::string& message) {
  std::cerr << "neptune-emulator: " << message << "\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using fna::neptune_emulator::NeptuneEmulator;
  NeptuneEmulator::Options options;
  std::vector<std::string> api_keys;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (!absl::StartsWith(arg, "--")) return Fail("unexpected argument " + arg);
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Fail("--" + name + " needs a value");
    }
    int64_t number = 0;
    if (name == "port") {
      if (!absl::SimpleAtoi(value, &number) || number < 0 || number > 65535)
        return Fail("bad --port " + value);
      options.port = static_cast<int>(number);
    } else if (name == "host") {
      options.host = value;
    } else if (name == "specs") {
      options.specs_dir = value;
    } else if (name == "tls-cert") {
      options.tls_cert_path = value;
    } else if (name == "tls-key") {
      options.tls_key_path = value;
    } else if (name == "project") {
      std::vector<std::string> parts = absl::StrSplit(value, absl::MaxSplits(':', 1));
      options.projects.emplace_back(parts[0], parts.size() > 1 ? parts[1] : "");
    } else if (name == "api-key") {
      api_keys.push_back(value);
    } else if (name == "idle-after-seconds") {
      if (!absl::SimpleAtoi(value, &number) || number <= 0) return Fail("bad --idle-after-seconds " + value);
      options.idle_after = absl::Seconds(number);
    } else if (name == "access-token-lifetime-seconds") {
      if (!absl::SimpleAtoi(value, &number) || number <= 0)
        return Fail("bad --access-token-lifetime-seconds " + value);
      options.access_token_lifetime = absl::Seconds(number);
    } else {
      return Fail("unknown flag --" + name);
    }
  }
  if (!api_keys.empty()) options.api_keys = api_keys;
  if (options.projects.empty()) options.projects.emplace_back("emulator/sandbox", "SAN");

  // Block the stop signals before any thread starts, so that only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto emulator = NeptuneEmulator::Start(options);
  if (!emulator.ok()) {
    std::cerr << "neptune-emulator: " << emulator.status() << "\n";
    return 1;
  }
  nlohmann::json projects = nlohmann::json::array();
  for (const auto& project : (*emulator)->Projects()) projects.push_back(project.QualifiedName());
  const nlohmann::json ready = {{"port", (*emulator)->port()},
                                {"baseUrl", (*emulator)->base_url()},
                                {"apiToken", (*emulator)->api_token()},
                                {"projects", projects},
                                {"tls", (*emulator)->tls()}};
  std::cout << ready.dump() << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  emulator->reset();
  return 0;
}
