#ifndef FNA_AGENT_CONFIG_CONFIG_LOADER_H_
#define FNA_AGENT_CONFIG_CONFIG_LOADER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/config/config.h"

namespace fna {

// The agent's command line, parsed and merged with the environment and the configuration file.
struct CommandLine {
  AgentConfig config;         // the effective, validated configuration
  bool print_config = false;  // --print-config
  bool version = false;       // --version
  bool help = false;          // --help
  std::string config_file;    // --config, else FLYTE_NEPTUNE_AGENT_CONFIG; empty: none
};

// Builds the configuration from `args` (argv without argv[0]) and `environment` (all variables; only those
// starting with FLYTE_NEPTUNE_AGENT_ are read). Precedence: flags > environment > YAML file > embedded
// defaults. Every key (docs/configuration.md) is set in the YAML file by its nested path, by the variable
// FLYTE_NEPTUNE_AGENT_<KEY> (key upper-cased, '.' -> '_') and by the flag --<key>=<value>; lists are
// comma-separated in variables and flags; tracking.routing_rules is YAML-only.
//
// Errors (InvalidArgument, or the errno's code when the file cannot be read) are one line naming the source
// (file, variable or flag), the key and the bad value. Unknown keys, unknown FLYTE_NEPTUNE_AGENT_ variables
// and unknown flags are errors. With --help or --version only the flags are checked: neither the file nor the
// environment is read and `config` holds the defaults.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::map<std::string, std::string>& environment);

// The configuration as YAML in the file's layout, every key present; ParseCommandLine reads it back to an
// equal configuration. Holds no secret: the configuration names token files, never tokens.
std::string FormatConfig(const AgentConfig& config);

// The --help text: the flags, then every key with its type, default, variable and flag.
std::string UsageText();

// One configuration key, as documented. Routing rule fields have paths "tracking.routing_rules[].<field>" and
// no variable or flag.
struct ConfigKeyInfo {
  std::string path;           // "tracking.finalize_grace"
  std::string type;           // "duration"
  std::string default_value;  // as written in YAML: "2m", "[neptune]", "\"\""
  std::string env_var;        // "FLYTE_NEPTUNE_AGENT_TRACKING_FINALIZE_GRACE"; empty: YAML-only
  std::string flag;           // "--tracking.finalize_grace"; empty: YAML-only
  std::string help;
};

// Every key, in the file's order.
std::vector<ConfigKeyInfo> DescribeConfigKeys();

}  // namespace fna

#endif  // FNA_AGENT_CONFIG_CONFIG_LOADER_H_
