// flyte-neptune-sync: uploads the runs an offline flyte-neptune-agent (tracker.kind offline) wrote to a
// Neptune 2.x server, like `neptune sync --path DIR` but for the agent's runs (agent/sync/offline_sync.h).
//
//   flyte-neptune-sync [--path DIR] [--api-token-file FILE] [--host URL] [--ca-file FILE]
//
// --path is the Neptune data directory (default .neptune; the runs are under DIR/offline/). The other flags
// mean what the agent's tracker.neptune.api_token_file, .host and .ca_file mean; without --api-token-file the
// token is NEPTUNE_API_TOKEN. HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured as by the agent. Prints one
// line per run ("synced", "skipped" or "failed", the run directory, project/custom run id, and the versions
// sent or the reason). Exit status: 0 when no run failed, 1 when one did, 2 for a usage or set-up error.

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"
#include "agent/neptune/neptune_client.h"
#include "agent/neptune/token_files.h"
#include "agent/sync/offline_sync.h"
#include "agent/version.h"

namespace fna {
namespace {

constexpr absl::Duration kPerRunBudget = absl::Minutes(5);

constexpr char kUsage[] =
    "usage: flyte-neptune-sync [--path DIR] [--api-token-file FILE] [--host URL] [--ca-file FILE]\n"
    "Uploads the runs under DIR/offline/ (default DIR: .neptune) that flyte-neptune-agent wrote offline.\n"
    "The API token is read from --api-token-file, else NEPTUNE_API_TOKEN.\n";

struct Flags {
  std::string path = ".neptune";
  std::string api_token_file;
  std::string host;
  std::string ca_file;
  bool help = false;
};

// Accepts "--name VALUE" and "--name=VALUE".
absl::Status ParseFlags(const std::vector<std::string>& args, Flags* flags) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
      continue;
    }
    std::string* target = nullptr;
    absl::string_view name = arg;
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    if (name == "--path") {
      target = &flags->path;
    } else if (name == "--api-token-file") {
      target = &flags->api_token_file;
    } else if (name == "--host") {
      target = &flags->host;
    } else if (name == "--ca-file") {
      target = &flags->ca_file;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument ", arg));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      value = args[++i];
    }
    *target = std::move(value);
  }
  return absl::OkStatus();
}

std::string EnvOr(const std::string& upper) {
  for (const std::string& name : {upper, absl::AsciiStrToLower(upper)}) {
    const char* value = std::getenv(name.c_str());
    if (value != nullptr && *value != '\0') return value;
  }
  return "";
}

std::string Describe(const sync::RunSyncResult& run) {
  std::string line = run.directory;
  if (!run.project.empty()) absl::StrAppend(&line, " ", run.project, "/", run.custom_run_id);
  return line;
}

int Main(const std::vector<std::string>& args) {
  Flags flags;
  if (absl::Status parsed = ParseFlags(args, &flags); !parsed.ok()) {
    std::cerr << "flyte-neptune-sync: " << parsed.message() << "\n" << kUsage;
    return 2;
  }
  if (flags.help) {
    std::cout << kUsage;
    return 0;
  }

  neptune::TokenFiles token_files;
  Secret environment_token;
  if (const char* token = std::getenv("NEPTUNE_API_TOKEN"); token != nullptr && *token != '\0') {
    environment_token = Secret(token);
  }
  if (flags.api_token_file.empty() && environment_token.empty()) {
    std::cerr << "flyte-neptune-sync: no API token: pass --api-token-file or set NEPTUNE_API_TOKEN\n";
    return 2;
  }
  if (!flags.api_token_file.empty()) {
    if (auto token = token_files.Read(flags.api_token_file); !token.ok()) {
      std::cerr << "flyte-neptune-sync: " << token.status().message() << "\n";
      return 2;
    }
  }

  const Clock* clock = Clock::Real();
  http::HttplibTransportOptions transport_options;
  transport_options.ca_cert_file = flags.ca_file;
  transport_options.https_proxy = EnvOr("HTTPS_PROXY");
  transport_options.http_proxy = EnvOr("HTTP_PROXY");
  transport_options.no_proxy = EnvOr("NO_PROXY");
  auto transport = http::HttplibTransport::Create(transport_options, clock);
  if (!transport.ok()) {
    std::cerr << "flyte-neptune-sync: " << transport.status().message() << "\n";
    return 2;
  }

  neptune::NeptuneClientOptions options;
  options.token_source = [&](int /*routing_rule*/) -> absl::StatusOr<Secret> {
    if (!flags.api_token_file.empty()) return token_files.Read(flags.api_token_file);
    return environment_token;
  };
  options.host = flags.host;
  options.user_agent = absl::StrCat("flyte-neptune-sync/", kVersion);
  // No pinger thread: RunDue is never called, so no run is pinged.
  neptune::NeptuneClient client(options, transport->get(), clock);

  absl::StatusOr<sync::SyncReport> report = sync::SyncOfflineRuns(flags.path, &client, clock, kPerRunBudget);
  if (!report.ok()) {
    std::cerr << "flyte-neptune-sync: " << report.status().message() << "\n";
    return 2;
  }
  for (const sync::RunSyncResult& run : report->synced) {
    std::cout << "synced " << Describe(run) << ": " << run.operations << " operations (versions "
              << run.first_version << ".." << run.last_version << ")\n";
  }
  for (const sync::RunSyncResult& run : report->skipped) {
    std::cout << "skipped " << Describe(run) << ": " << run.reason << "\n";
  }
  for (const sync::RunSyncResult& run : report->failed) {
    std::cout << "failed " << Describe(run) << ": " << run.reason << "\n";
  }
  return report->failed.empty() ? 0 : 1;
}

}  // namespace
}  // namespace fna

int main(int argc, char** argv) { return fna::Main(std::vector<std::string>(argv + 1, argv + argc)); }
