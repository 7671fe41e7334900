#include "agent/config/config_loader.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using Env = std::map<std::string, std::string>;

void ExpectSameConfig(const AgentConfig& a, const AgentConfig& b) {
  EXPECT_EQ(a.listen_address, b.listen_address);
  EXPECT_EQ(a.max_receive_message_bytes, b.max_receive_message_bytes);
  EXPECT_EQ(a.metrics_address, b.metrics_address);
  EXPECT_EQ(a.drain_timeout, b.drain_timeout);
  EXPECT_EQ(a.tls_cert_file, b.tls_cert_file);
  EXPECT_EQ(a.tls_key_file, b.tls_key_file);
  EXPECT_EQ(a.tls_client_ca_file, b.tls_client_ca_file);
  EXPECT_EQ(a.tls_refresh_interval, b.tls_refresh_interval);
  EXPECT_EQ(a.agent_name, b.agent_name);
  EXPECT_EQ(a.task_types, b.task_types);
  EXPECT_EQ(a.retryable_failure, b.retryable_failure);
  EXPECT_EQ(a.console_url, b.console_url);
  EXPECT_EQ(a.default_project, b.default_project);
  EXPECT_EQ(a.allowed_projects, b.allowed_projects);
  EXPECT_EQ(a.default_tags, b.default_tags);
  ASSERT_EQ(a.routing_rules.size(), b.routing_rules.size());
  for (size_t i = 0; i < a.routing_rules.size(); ++i) {
    const RoutingRule& x = a.routing_rules[i];
    const RoutingRule& y = b.routing_rules[i];
    EXPECT_EQ(x.flyte_project, y.flyte_project) << i;
    EXPECT_EQ(x.flyte_domain, y.flyte_domain) << i;
    EXPECT_EQ(x.allowed_projects, y.allowed_projects) << i;
    EXPECT_EQ(x.default_project, y.default_project) << i;
    EXPECT_EQ(x.tags, y.tags) << i;
    EXPECT_EQ(x.token_file, y.token_file) << i;
  }
  EXPECT_EQ(a.finalize_grace, b.finalize_grace);
  EXPECT_EQ(a.create_budget, b.create_budget);
  EXPECT_EQ(a.tracker, b.tracker);
  EXPECT_EQ(a.offline_directory, b.offline_directory);
  EXPECT_EQ(a.executor, b.executor);
  EXPECT_EQ(a.process_state_directory, b.process_state_directory);
  EXPECT_EQ(a.process_allow_non_loopback, b.process_allow_non_loopback);
  EXPECT_EQ(a.process_runner_path, b.process_runner_path);
  EXPECT_EQ(a.k8s_namespaces, b.k8s_namespaces);
  EXPECT_EQ(a.k8s_default_env, b.k8s_default_env);
  EXPECT_EQ(a.k8s_default_pod_template, b.k8s_default_pod_template);
  EXPECT_EQ(a.k8s_interruptible_tolerations, b.k8s_interruptible_tolerations);
  EXPECT_EQ(a.k8s_cleanup_delay, b.k8s_cleanup_delay);
  EXPECT_EQ(a.k8s_owner_references, b.k8s_owner_references);
  EXPECT_EQ(a.log_format, b.log_format);
  EXPECT_EQ(a.log_level, b.log_level);
}

class ConfigLoaderTest : public ::testing::Test {
 protected:
  // Writes `content` to a file of this test and returns its path.
  std::string WriteConfig(const std::string& content, const std::string& name = "agent.yaml") {
    const std::string path =
        absl::StrCat(::testing::TempDir(), "fna_config_", getpid(), "_",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_", name);
    std::ofstream(path) << content;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const std::string& file : files_) unlink(file.c_str());
  }

  // The error message of loading `yaml` as the configuration file, with the file's path replaced by "FILE".
  std::string FileError(const std::string& yaml) {
    const std::string path = WriteConfig(yaml);
    absl::StatusOr<CommandLine> result = ParseCommandLine({"--config", path}, {});
    if (result.ok()) return "OK";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    std::string message(result.status().message());
    if (absl::StartsWith(message, path)) message = "FILE" + message.substr(path.size());
    return message;
  }

  static std::string Error(const std::vector<std::string>& args, const Env& env = {}) {
    absl::StatusOr<CommandLine> result = ParseCommandLine(args, env);
    if (result.ok()) return "OK";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  }

  std::vector<std::string> files_;
};

TEST_F(ConfigLoaderTest, DefaultsWithoutFile) {
  absl::StatusOr<CommandLine> result = ParseCommandLine({}, {{"HOME", "/root"}, {"PATH", "/bin"}});
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameConfig(result->config, AgentConfig());
  EXPECT_EQ(result->config_file, "");
  EXPECT_FALSE(result->print_config);
  EXPECT_FALSE(result->version);
  EXPECT_FALSE(result->help);
}

TEST_F(ConfigLoaderTest, FileOverridesDefaults) {
  const std::string path = WriteConfig(R"(
server:
  listen_address: "[::1]:9000"
  max_receive_message_bytes: 4194304
  metrics_address: 0.0.0.0:9091
  drain_timeout: 45s
  tls_cert_file: /etc/tls/tls.crt
  tls_key_file: /etc/tls/tls.key
  tls_client_ca_file: /etc/tls/ca.crt
  tls_refresh_interval: 10s
agent:
  name: tracker
  task_types: [neptune, neptune_run]
  retryable_failure: state
flyte:
  console_url: https://flyte.example.com/console//
tracking:
  default_project: ml/flyte
  allowed_projects: ["*"]
  default_tags: [flyte, prod]
  finalize_grace: 0s
  create_budget: 1500ms
  routing_rules:
    - flyte_project: vision
      allowed_projects: [ws/a, ws/b]
      tags: [team-a]
      token_file: /etc/neptune/ws-a/token
    - flyte_domain: production
      default_project: ws/prod
tracker:
  kind: offline
  offline:
    directory: /var/lib/neptune
executor:
  kind: process
  process:
    state_directory: /var/lib/agent/tasks
    allow_non_loopback: false
    runner_path: /usr/bin/flyte-neptune-runner
logging:
  format: json
  level: debug
)");
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--config=" + path}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  const AgentConfig& config = result->config;
  EXPECT_EQ(result->config_file, path);
  EXPECT_EQ(config.listen_address, "[::1]:9000");
  EXPECT_EQ(config.max_receive_message_bytes, 4194304);
  EXPECT_EQ(config.metrics_address, "0.0.0.0:9091");
  EXPECT_EQ(config.drain_timeout, absl::Seconds(45));
  EXPECT_EQ(config.tls_cert_file, "/etc/tls/tls.crt");
  EXPECT_EQ(config.tls_key_file, "/etc/tls/tls.key");
  EXPECT_EQ(config.tls_client_ca_file, "/etc/tls/ca.crt");
  EXPECT_EQ(config.tls_refresh_interval, absl::Seconds(10));
  EXPECT_EQ(config.agent_name, "tracker");
  EXPECT_EQ(config.task_types, (std::vector<std::string>{"neptune", "neptune_run"}));
  EXPECT_EQ(config.retryable_failure, RetryableFailureMode::kState);
  EXPECT_EQ(config.console_url, "https://flyte.example.com/console");
  EXPECT_EQ(config.default_project, "ml/flyte");
  EXPECT_EQ(config.allowed_projects, std::vector<std::string>{"*"});
  EXPECT_EQ(config.default_tags, (std::vector<std::string>{"flyte", "prod"}));
  EXPECT_EQ(config.finalize_grace, absl::ZeroDuration());
  EXPECT_EQ(config.create_budget, absl::Milliseconds(1500));
  ASSERT_EQ(config.routing_rules.size(), 2u);
  EXPECT_EQ(config.routing_rules[0].flyte_project, "vision");
  EXPECT_EQ(config.routing_rules[0].flyte_domain, "*");
  EXPECT_EQ(config.routing_rules[0].allowed_projects, (std::vector<std::string>{"ws/a", "ws/b"}));
  EXPECT_EQ(config.routing_rules[0].default_project, "");
  EXPECT_EQ(config.routing_rules[0].tags, std::vector<std::string>{"team-a"});
  EXPECT_EQ(config.routing_rules[0].token_file, "/etc/neptune/ws-a/token");
  EXPECT_EQ(config.routing_rules[1].flyte_project, "*");
  EXPECT_EQ(config.routing_rules[1].flyte_domain, "production");
  EXPECT_EQ(config.routing_rules[1].default_project, "ws/prod");
  EXPECT_EQ(config.offline_directory, "/var/lib/neptune");
  EXPECT_EQ(config.process_state_directory, "/var/lib/agent/tasks");
  EXPECT_EQ(config.process_runner_path, "/usr/bin/flyte-neptune-runner");
  EXPECT_EQ(config.log_format, LogFormat::kJson);
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
}

TEST_F(ConfigLoaderTest, EmptyFileAndEmptySectionsKeepDefaults) {
  for (const std::string yaml : {"", "# nothing\n", "server:\ntracking:\n  routing_rules:\n"}) {
    absl::StatusOr<CommandLine> result = ParseCommandLine({"--config", WriteConfig(yaml)}, {});
    ASSERT_TRUE(result.ok()) << result.status();
    ExpectSameConfig(result->config, AgentConfig());
  }
}

TEST_F(ConfigLoaderTest, EnvironmentOverridesFile) {
  const std::string path =
      WriteConfig("tracking:\n  finalize_grace: 5m\n  default_tags: [a]\nagent:\n  name: x\n");
  absl::StatusOr<CommandLine> result =
      ParseCommandLine({}, {{"FLYTE_NEPTUNE_AGENT_CONFIG", path},
                            {"FLYTE_NEPTUNE_AGENT_TRACKING_FINALIZE_GRACE", "1h30m"},
                            {"FLYTE_NEPTUNE_AGENT_TRACKING_DEFAULT_TAGS", "b, c"},
                            {"FLYTE_NEPTUNE_AGENT_AGENT_TASK_TYPES", "neptune,neptune_run"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->config_file, path);
  EXPECT_EQ(result->config.finalize_grace, absl::Minutes(90));
  EXPECT_EQ(result->config.default_tags, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(result->config.task_types, (std::vector<std::string>{"neptune", "neptune_run"}));
  EXPECT_EQ(result->config.agent_name, "x");
}

TEST_F(ConfigLoaderTest, EmptyListFromEnvironment) {
  const std::string path = WriteConfig("tracking:\n  allowed_projects: [ws/a]\n");
  absl::StatusOr<CommandLine> result =
      ParseCommandLine({"--config", path}, {{"FLYTE_NEPTUNE_AGENT_TRACKING_ALLOWED_PROJECTS", ""}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->config.allowed_projects.empty());
}

TEST_F(ConfigLoaderTest, FlagOverridesEnvironment) {
  absl::StatusOr<CommandLine> result =
      ParseCommandLine({"--logging.level=warning", "--executor.process.allow_non_loopback=true",
                        "--server.listen_address=0.0.0.0:8000", "--tracking.allowed_projects=ws/a,*"},
                       {{"FLYTE_NEPTUNE_AGENT_LOGGING_LEVEL", "error"},
                        {"FLYTE_NEPTUNE_AGENT_SERVER_LISTEN_ADDRESS", "127.0.0.1:1"}});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->config.log_level, LogLevel::kWarning);
  EXPECT_EQ(result->config.listen_address, "0.0.0.0:8000");
  EXPECT_TRUE(result->config.process_allow_non_loopback);
  EXPECT_EQ(result->config.allowed_projects, (std::vector<std::string>{"ws/a", "*"}));
}

TEST_F(ConfigLoaderTest, LaterFlagWins) {
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--agent.name=a", "--agent.name=b"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->config.agent_name, "b");
}

TEST_F(ConfigLoaderTest, ConfigFlagForms) {
  const std::string path = WriteConfig("agent:\n  name: from-file\n");
  const std::string other = WriteConfig("agent:\n  name: from-env\n", "other.yaml");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--config", path}, std::vector<std::string>{"--config=" + path}}) {
    absl::StatusOr<CommandLine> result = ParseCommandLine(args, {{"FLYTE_NEPTUNE_AGENT_CONFIG", other}});
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->config_file, path);
    EXPECT_EQ(result->config.agent_name, "from-file");
  }
  EXPECT_EQ(Error({"--config"}), "--config: missing value (--config=FILE or --config FILE)");
  EXPECT_EQ(Error({"--config="}), "--config: missing value (--config=FILE or --config FILE)");
  EXPECT_EQ(Error({"--config", "--print-config"}),
            "--config: missing value (--config=FILE or --config FILE)");
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_CONFIG", ""}}), "FLYTE_NEPTUNE_AGENT_CONFIG: must not be empty");
}

TEST_F(ConfigLoaderTest, ActionFlags) {
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--print-config"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->print_config);
  EXPECT_EQ(Error({"--help=yes"}), "--help: takes no value, got \"yes\"");
  EXPECT_EQ(Error({"serve"}), "unexpected argument \"serve\"");
  EXPECT_EQ(Error({"--"}), "unexpected argument \"--\"");
}

TEST_F(ConfigLoaderTest, HelpAndVersionReadNoConfiguration) {
  for (const std::string flag : {"--help", "--version"}) {
    absl::StatusOr<CommandLine> result = ParseCommandLine({flag, "--config=/nonexistent/agent.yaml"},
                                                          {{"FLYTE_NEPTUNE_AGENT_NO_SUCH_KEY", "1"}});
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->help, flag == "--help");
    EXPECT_EQ(result->version, flag == "--version");
    ExpectSameConfig(result->config, AgentConfig());
  }
  EXPECT_EQ(Error({"--help", "--no-such-flag"}), "unknown flag \"--no-such-flag\"");
}

TEST_F(ConfigLoaderTest, UnknownKeys) {
  EXPECT_EQ(FileError("trackng:\n  finalize_grace: 1m\n"),
            "FILE: unknown key \"trackng\" (did you mean \"tracking\"?)");
  EXPECT_EQ(FileError("tracking:\n  finalise_grace: 2m\n"),
            "FILE: unknown key \"tracking.finalise_grace\" (did you mean \"tracking.finalize_grace\"?)");
  EXPECT_EQ(FileError("executor:\n  process:\n    zzz: 1\n"), "FILE: unknown key \"executor.process.zzz\"");
  EXPECT_EQ(FileError("tracking:\n  routing_rules:\n    - default_project: ws/a\n      tokn_file: /t\n"),
            "FILE: unknown key \"tracking.routing_rules[0].tokn_file\" (did you mean "
            "\"tracking.routing_rules[0].token_file\"?)");
  EXPECT_EQ(FileError("agent:\n  name: a\n  name: b\n"), "FILE: duplicate key \"agent.name\"");
  EXPECT_EQ(FileError("server.listen_address: 127.0.0.1:1\n"),
            "FILE: key \"server.listen_address\" must be nested, one map per '.'");
  EXPECT_EQ(FileError("? [a]\n: b\n"), "FILE: a top-level key is not a string");
  EXPECT_EQ(FileError("tracking:\n  routing_rules:\n    - {[a]: b}\n"),
            "FILE: a key of \"tracking.routing_rules[0]\" is not a string");
}

TEST_F(ConfigLoaderTest, WrongYamlTypes) {
  EXPECT_EQ(FileError("server:\n  max_receive_message_bytes: lots\n"),
            "FILE: server.max_receive_message_bytes: \"lots\" is not an integer");
  EXPECT_EQ(FileError("agent:\n  task_types: {neptune: 1}\n"),
            "FILE: agent.task_types: expected list of names, got a map");
  EXPECT_EQ(FileError("agent:\n  task_types: neptune\n"),
            "FILE: agent.task_types: expected list of names, got \"neptune\"");
  EXPECT_EQ(FileError("agent:\n  task_types: [[neptune]]\n"),
            "FILE: agent.task_types[0]: expected a string, got a list");
  EXPECT_EQ(FileError("agent:\n  name: [a, b]\n"), "FILE: agent.name: expected string, got a list");
  EXPECT_EQ(FileError("server: 8000\n"), "FILE: server: expected a map, got \"8000\"");
  EXPECT_EQ(FileError("- a\n- b\n"), "FILE: expected a map, got a list");
  EXPECT_EQ(FileError("tracking:\n  routing_rules: {a: b}\n"),
            "FILE: tracking.routing_rules: expected list of rules, got a map");
  EXPECT_EQ(FileError("tracking:\n  routing_rules: [ws/a]\n"),
            "FILE: tracking.routing_rules[0]: expected a map, got \"ws/a\"");
  EXPECT_EQ(FileError("executor:\n  process:\n    allow_non_loopback: yes\n"),
            "FILE: executor.process.allow_non_loopback: \"yes\" is not a boolean (true or false)");
}

TEST_F(ConfigLoaderTest, BadValues) {
  EXPECT_EQ(FileError("tracking:\n  finalize_grace: 2 minutes\n"),
            "FILE: tracking.finalize_grace: \"2 minutes\" is not a duration (e.g. 90s, 2m, 1h30m)");
  EXPECT_EQ(FileError("tracking:\n  finalize_grace: -1s\n"),
            "FILE: tracking.finalize_grace: -1s is out of range [0, inf)");
  EXPECT_EQ(FileError("tracking:\n  create_budget: 0s\n"),
            "FILE: tracking.create_budget: 0 is out of range (0, 1m]");
  EXPECT_EQ(FileError("tracking:\n  create_budget: 61s\n"),
            "FILE: tracking.create_budget: 1m1s is out of range (0, 1m]");
  EXPECT_EQ(FileError("server:\n  max_receive_message_bytes: 2147483648\n"),
            "FILE: server.max_receive_message_bytes: 2147483648 is out of range [4194304, 2147483647]");
  EXPECT_EQ(FileError("logging:\n  level: verbose\n"),
            "FILE: logging.level: \"verbose\" is not one of debug | info | warning | error");
  EXPECT_EQ(FileError("agent:\n  retryable_failure: Phase\n"),
            "FILE: agent.retryable_failure: \"Phase\" is not one of phase | state");
  EXPECT_EQ(FileError("tracker:\n  kind: online\n"),
            "FILE: tracker.kind: \"online\" is not one of offline | neptune");
  EXPECT_EQ(FileError("tracking:\n  default_project: flyte\n"),
            "FILE: tracking.default_project: \"flyte\" is not workspace/project");
  EXPECT_EQ(FileError("tracking:\n  default_project: \"my ws/flyte\"\n"),
            "FILE: tracking.default_project: \"my ws/flyte\" is not workspace/project");
  EXPECT_EQ(FileError("tracking:\n  allowed_projects: [ws/a, ws/]\n"),
            "FILE: tracking.allowed_projects[1]: \"ws/\" is not workspace/project or \"*\"");
  EXPECT_EQ(FileError("tracking:\n  default_tags: [\"\"]\n"),
            "FILE: tracking.default_tags[0]: must not be empty");
  EXPECT_EQ(FileError(absl::StrCat("tracking:\n  default_tags: [", std::string(129, 't'), "]\n")),
            absl::StrCat("FILE: tracking.default_tags[0]: \"", std::string(129, 't'),
                         "\" is longer than 128 characters"));
  EXPECT_EQ(FileError("agent:\n  name: \"\"\n"), "FILE: agent.name: must not be empty");
  EXPECT_EQ(FileError("agent:\n  task_types: []\n"), "FILE: agent.task_types: must not be empty");
  EXPECT_EQ(FileError("agent:\n  task_types: [a, b, a]\n"),
            "FILE: agent.task_types[2]: \"a\" is a duplicate");
  EXPECT_EQ(FileError("agent:\n  task_types: [python task]\n"),
            "FILE: agent.task_types[0]: \"python task\" is not a task type name ([A-Za-z0-9_.-]+)");
  EXPECT_EQ(FileError("flyte:\n  console_url: flyte.example.com\n"),
            "FILE: flyte.console_url: \"flyte.example.com\" is not an http:// or https:// URL");
  EXPECT_EQ(FileError("flyte:\n  console_url: https://\n"),
            "FILE: flyte.console_url: \"https://\" is not an http:// or https:// URL");
  EXPECT_EQ(FileError("executor:\n  process:\n    state_directory:\n"),
            "FILE: executor.process.state_directory: must not be empty");
}

TEST_F(ConfigLoaderTest, DrainTimeout) {
  EXPECT_EQ(Error({"--server.drain_timeout=0s"}), "--server.drain_timeout: 0 is out of range (0, 1h]");
  EXPECT_EQ(Error({"--server.drain_timeout=2h"}), "--server.drain_timeout: 2h is out of range (0, 1h]");
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_SERVER_DRAIN_TIMEOUT", "soon"}}),
            "FLYTE_NEPTUNE_AGENT_SERVER_DRAIN_TIMEOUT: \"soon\" is not a duration (e.g. 90s, 2m, 1h30m)");
}

TEST_F(ConfigLoaderTest, TlsKeys) {
  EXPECT_EQ(Error({"--server.tls_cert_file=/c.pem", "--server.tls_key_file=/k.pem",
                   "--server.tls_client_ca_file=/ca.pem", "--server.tls_refresh_interval=1s"}),
            "OK");
  EXPECT_EQ(Error({"--server.tls_refresh_interval=500ms"}),
            "--server.tls_refresh_interval: 500ms is out of range [1s, 24h]");
  EXPECT_EQ(Error({"--server.tls_cert_file=/c.pem"}),
            "server.tls_cert_file is set but server.tls_key_file is empty: TLS needs both");
  EXPECT_EQ(Error({"--server.tls_key_file=/k.pem"}),
            "server.tls_key_file is set but server.tls_cert_file is empty: TLS needs both");
  EXPECT_EQ(
      Error({"--server.tls_client_ca_file=/ca.pem"}),
      "server.tls_client_ca_file is set but server.tls_cert_file and server.tls_key_file are empty: mutual "
      "TLS needs the server's certificate too");
}

TEST_F(ConfigLoaderTest, MetricsAddress) {
  EXPECT_EQ(Error({"--server.metrics_address="}), "OK");  // not served
  EXPECT_EQ(Error({"--server.metrics_address=[::1]:0"}), "OK");
  EXPECT_EQ(Error({"--server.metrics_address=9090"}), "--server.metrics_address: \"9090\" is not host:port");
  EXPECT_EQ(FileError("server:\n  metrics_address: [a, b]\n"),
            "FILE: server.metrics_address: expected host:port, got a list");
}

TEST_F(ConfigLoaderTest, ListenAddresses) {
  for (const std::string good : {"127.0.0.1:0", "localhost:65535", "[::1]:8000", "127.1.2.3:80"}) {
    EXPECT_EQ(Error({"--server.listen_address=" + good}), "OK") << good;
  }
  EXPECT_EQ(Error({"--server.listen_address=localhost"}),
            "--server.listen_address: \"localhost\" is not host:port");
  EXPECT_EQ(Error({"--server.listen_address=::1:80"}),
            "--server.listen_address: \"::1:80\" is not host:port");
  EXPECT_EQ(Error({"--server.listen_address=:80"}), "--server.listen_address: \":80\" is not host:port");
  EXPECT_EQ(Error({"--server.listen_address=host:"}), "--server.listen_address: \"host:\" is not host:port");
  EXPECT_EQ(Error({"--server.listen_address=host:8o"}),
            "--server.listen_address: \"host:8o\" is not host:port");
  EXPECT_EQ(Error({"--server.listen_address=127.0.0.1:65536"}),
            "--server.listen_address: \"127.0.0.1:65536\" is not host:port (port 65536 is out of range [0, "
            "65535])");
  EXPECT_EQ(Error({"--server.listen_address=[::zz]:80"}),
            "--server.listen_address: \"[::zz]:80\" is not host:port (\"::zz\" is not an IPv6 address)");
}

TEST_F(ConfigLoaderTest, KubernetesServiceLinkVariablesAreNotConfiguration) {
  // What Kubernetes injects for a Service named flyte-neptune-agent in the agent's namespace.
  const Env env = {{"FLYTE_NEPTUNE_AGENT_PORT", "tcp://10.0.0.7:8000"},
                   {"FLYTE_NEPTUNE_AGENT_SERVICE_HOST", "10.0.0.7"},
                   {"FLYTE_NEPTUNE_AGENT_SERVICE_PORT", "8000"},
                   {"FLYTE_NEPTUNE_AGENT_SERVICE_PORT_GRPC", "8000"},
                   {"FLYTE_NEPTUNE_AGENT_PORT_8000_TCP", "tcp://10.0.0.7:8000"},
                   {"FLYTE_NEPTUNE_AGENT_PORT_8000_TCP_PROTO", "tcp"},
                   {"FLYTE_NEPTUNE_AGENT_PORT_8000_TCP_PORT", "8000"},
                   {"FLYTE_NEPTUNE_AGENT_PORT_8000_TCP_ADDR", "10.0.0.7"}};
  EXPECT_EQ(Error({}, env), "OK");
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_PORT_X_TCP", "1"}}).substr(0, 29),
            "unknown environment variable ");
}

TEST_F(ConfigLoaderTest, EnvironmentErrors) {
  EXPECT_EQ(
      Error({}, {{"FLYTE_NEPTUNE_AGENT_SERVER_MAX_RECEIVE_MESSAGE_BYTES", "1024"}}),
      "FLYTE_NEPTUNE_AGENT_SERVER_MAX_RECEIVE_MESSAGE_BYTES: 1024 is out of range [4194304, 2147483647]");
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_TRACKING_FINALISE_GRACE", "2m"}}),
            "unknown environment variable \"FLYTE_NEPTUNE_AGENT_TRACKING_FINALISE_GRACE\" (did you mean "
            "\"FLYTE_NEPTUNE_AGENT_TRACKING_FINALIZE_GRACE\"?)");
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_TRACKING_ALLOWED_PROJECTS", "ws/a,,ws/b"}}),
            "FLYTE_NEPTUNE_AGENT_TRACKING_ALLOWED_PROJECTS[1]: \"\" is not workspace/project or \"*\"");
  EXPECT_EQ(
      Error({}, {{"FLYTE_NEPTUNE_AGENT_EXECUTOR_PROCESS_ALLOW_NON_LOOPBACK", "1"}}),
      "FLYTE_NEPTUNE_AGENT_EXECUTOR_PROCESS_ALLOW_NON_LOOPBACK: \"1\" is not a boolean (true or false)");
  EXPECT_EQ(
      Error({}, {{"FLYTE_NEPTUNE_AGENT_TRACKING_ROUTING_RULES", "[]"}}),
      "FLYTE_NEPTUNE_AGENT_TRACKING_ROUTING_RULES: tracking.routing_rules can only be set in the YAML file");
  // Variables without the prefix are not the agent's.
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_RUNNER_X", "1"}, {"NEPTUNE_API_TOKEN", "secret"}}), "OK");
}

TEST_F(ConfigLoaderTest, FlagErrors) {
  EXPECT_EQ(Error({"--server.listen_adress=127.0.0.1:1"}),
            "unknown flag \"--server.listen_adress\" (did you mean \"--server.listen_address\"?)");
  EXPECT_EQ(Error({"--print_config"}), "unknown flag \"--print_config\" (did you mean \"--print-config\"?)");
  EXPECT_EQ(Error({"--server.listen_address"}),
            "--server.listen_address: missing value (--server.listen_address=VALUE)");
  EXPECT_EQ(
      Error({"--executor.process.allow_non_loopback"}),
      "--executor.process.allow_non_loopback: missing value (--executor.process.allow_non_loopback=VALUE)");
  EXPECT_EQ(Error({"--server"}), "unknown flag \"--server\"");
  EXPECT_EQ(Error({"--tracking.routing_rules=x"}),
            "--tracking.routing_rules: tracking.routing_rules can only be set in the YAML file");
  EXPECT_EQ(Error({"--tracking.finalize_grace=forever"}),
            "--tracking.finalize_grace: \"forever\" is not a duration (e.g. 90s, 2m, 1h30m)");
  EXPECT_EQ(Error({"--agent.task_types="}), "--agent.task_types: must not be empty");
}

TEST_F(ConfigLoaderTest, RoutingRuleErrors) {
  EXPECT_EQ(FileError(R"(
tracking:
  routing_rules:
    - allowed_projects: [ws/a]
    - default_project: ws/b
    - flyte_project: vision
      tags: [a]
)"),
            "FILE: tracking.routing_rules[2]: sets neither allowed_projects nor default_project");
  EXPECT_EQ(FileError("tracking:\n  routing_rules:\n    - default_project: \"*\"\n"),
            "FILE: tracking.routing_rules[0].default_project: \"*\" is not workspace/project");
  EXPECT_EQ(FileError("tracking:\n  routing_rules:\n    - allowed_projects: [ws]\n"),
            "FILE: tracking.routing_rules[0].allowed_projects[0]: \"ws\" is not workspace/project or \"*\"");
  EXPECT_EQ(FileError("tracking:\n  routing_rules:\n    - default_project: ws/a\n      flyte_domain: \"\"\n"),
            "FILE: tracking.routing_rules[0].flyte_domain: must not be empty");
}

TEST_F(ConfigLoaderTest, NonLoopbackListenerNeedsOptIn) {
  const std::string refused =
      "server.listen_address \"0.0.0.0:8000\" is not loopback: the process executor runs task commands on "
      "this "
      "host; set executor.process.allow_non_loopback: true to allow it";
  EXPECT_EQ(Error({"--server.listen_address=0.0.0.0:8000"}), refused);
  EXPECT_EQ(Error({}, {{"FLYTE_NEPTUNE_AGENT_SERVER_LISTEN_ADDRESS", "0.0.0.0:8000"}}), refused);
  EXPECT_EQ(FileError("server:\n  listen_address: 0.0.0.0:8000\n"), refused);
  EXPECT_EQ(
      Error({"--server.listen_address=[::]:8000"}),
      "server.listen_address \"[::]:8000\" is not loopback: the process executor runs task commands on this "
      "host; set executor.process.allow_non_loopback: true to allow it");
  EXPECT_EQ(
      Error({"--server.listen_address=agent.example.com:8000"}),
      "server.listen_address \"agent.example.com:8000\" is not loopback: the process executor runs task "
      "commands on this host; set executor.process.allow_non_loopback: true to allow it");
  // Allowed by the flag, whichever source sets it.
  EXPECT_EQ(Error({"--server.listen_address=0.0.0.0:8000", "--executor.process.allow_non_loopback=true"}),
            "OK");
  EXPECT_EQ(
      FileError("server:\n  listen_address: 0.0.0.0:8000\nexecutor:\n  process:\n    allow_non_loopback: "
                "true\n"),
      "OK");
  // Loopback addresses need no opt-in.
  for (const std::string address : {"127.0.0.1:8000", "127.255.0.1:8000", "localhost:8000", "LocalHost:1",
                                    "[::1]:8000", "[::ffff:127.0.0.1]:8000"}) {
    EXPECT_EQ(Error({"--server.listen_address=" + address}), "OK") << address;
  }
}

TEST_F(ConfigLoaderTest, MissingConfigFile) {
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--config=/nonexistent/agent.yaml"}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), "/nonexistent/agent.yaml: cannot read: No such file or directory");
}

TEST_F(ConfigLoaderTest, ConfigFileThatIsADirectory) {
  const std::string directory = ::testing::TempDir();
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--config", directory}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), directory + ": cannot read: Is a directory");
}

TEST_F(ConfigLoaderTest, UnparseableYamlNamesFileAndLine) {
  EXPECT_EQ(FileError("server:\n  listen_address: 127.0.0.1:8000\n  bad: [unclosed\n"),
            "FILE:4:1: not valid YAML: end of sequence flow not found");
  EXPECT_THAT(FileError("agent:\n  name: a\n name: b\n"), StartsWith("FILE:3:"));
  EXPECT_EQ(FileError("agent: {}\n---\nagent: {}\n"), "FILE: holds 2 YAML documents; expected one");
}

TEST_F(ConfigLoaderTest, FormatConfigParsesBackToAnEqualConfig) {
  AgentConfig config;
  config.listen_address = "[::1]:9000";
  config.max_receive_message_bytes = 8 << 20;
  config.metrics_address = "";
  config.drain_timeout = absl::Milliseconds(2500);
  config.tls_cert_file = "/etc/tls/tls.crt";
  config.tls_key_file = "/etc/tls/tls.key";
  config.tls_client_ca_file = "/etc/tls/ca.crt";
  config.tls_refresh_interval = absl::Seconds(5);
  config.agent_name = "agent: with colon";
  config.task_types = {"neptune", "neptune_run"};
  config.retryable_failure = RetryableFailureMode::kState;
  config.console_url = "https://flyte.example.com";
  config.default_project = "ws/proj";
  config.allowed_projects = {"*", "ws/other"};
  config.default_tags = {"true",      "123",       "#hash",   "a, b", "- dash",
                         "tab\there", "new\nline", "ünïcode", " pad "};
  config.routing_rules = {
      {"vision", "*", {"ws/a", "*"}, "", {"team-a"}, "/etc/neptune/token"},
      {"*", "production", {}, "ws/prod", {}, ""},
  };
  config.finalize_grace = absl::Milliseconds(1500);
  config.create_budget = absl::Seconds(60);
  config.offline_directory = "/var/lib/neptune";
  config.process_state_directory = "state dir";
  config.process_allow_non_loopback = true;
  config.process_runner_path = "~";
  config.k8s_namespaces = {"a", "b-c"};
  config.k8s_default_env = {"A=1", "B=x=y"};
  config.k8s_default_pod_template = R"({"spec":{"nodeSelector":{"disk":"ssd","gpu":"true"}}})";
  config.k8s_interruptible_tolerations = R"([{"key":"spot","tolerationSeconds":30,"value":"null"}])";
  config.k8s_cleanup_delay = absl::Minutes(5);
  config.k8s_owner_references = false;
  config.log_format = LogFormat::kText;
  config.log_level = LogLevel::kError;

  for (const AgentConfig& original : {AgentConfig(), config}) {
    const std::string yaml = FormatConfig(original);
    absl::StatusOr<CommandLine> result = ParseCommandLine({"--config", WriteConfig(yaml)}, {});
    ASSERT_TRUE(result.ok()) << result.status() << "\n" << yaml;
    ExpectSameConfig(result->config, original);
    EXPECT_EQ(FormatConfig(result->config), yaml);
  }
}

TEST_F(ConfigLoaderTest, KubernetesExecutorKeys) {
  const std::string path = WriteConfig(R"(
executor:
  kind: kubernetes
  kubernetes:
    namespaces: [flytesnacks-development, flytesnacks-production]
    token_namespaces: ["*"]
    default_env: [FOO=bar, EMPTY=]
    default_cpu: 500m
    default_memory: 2Gi
    default_pod_template:
      template:
        metadata:
          annotations: {safe-to-evict: "false", plain: false, count: "1"}
        spec:
          tolerations: [{key: a, operator: Exists, tolerationSeconds: 30}]
    interruptible_tolerations:
      - {key: spot, value: "true", effect: NoSchedule}
    interruptible_node_selector: [lifecycle=spot]
    cleanup_delay: 30m
)");
  absl::StatusOr<CommandLine> result = ParseCommandLine({"--config", path}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  const AgentConfig& config = result->config;
  EXPECT_EQ(config.executor, ExecutorKind::kKubernetes);
  EXPECT_EQ(config.k8s_namespaces,
            (std::vector<std::string>{"flytesnacks-development", "flytesnacks-production"}));
  EXPECT_EQ(config.k8s_token_namespaces, std::vector<std::string>{"*"});
  EXPECT_EQ(config.k8s_default_env, (std::vector<std::string>{"FOO=bar", "EMPTY="}));
  EXPECT_EQ(config.k8s_default_cpu, "500m");
  EXPECT_EQ(config.k8s_cleanup_delay, absl::Minutes(30));
  // Kubernetes JSON types: quoted scalars stay strings, plain ones are typed.
  EXPECT_EQ(config.k8s_default_pod_template,
            R"({"template":{"metadata":{"annotations":{"count":"1","plain":false,"safe-to-evict":"false"}},)"
            R"("spec":{"tolerations":[{"key":"a","operator":"Exists","tolerationSeconds":30}]}}})");
  EXPECT_EQ(config.k8s_interruptible_tolerations, R"([{"effect":"NoSchedule","key":"spot","value":"true"}])");

  // --print-config output loads back to the same JSON.
  const std::string yaml = FormatConfig(config);
  absl::StatusOr<CommandLine> again = ParseCommandLine({"--config", WriteConfig(yaml, "again.yaml")}, {});
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_EQ(again->config.k8s_default_pod_template, config.k8s_default_pod_template);
  EXPECT_EQ(again->config.k8s_interruptible_tolerations, config.k8s_interruptible_tolerations);
}

TEST_F(ConfigLoaderTest, KubernetesExecutorErrorsNameTheKey) {
  EXPECT_EQ(FileError("executor:\n  kubernetes:\n    default_cpu: lots\n"),
            "FILE: executor.kubernetes.default_cpu: \"lots\" is not a Kubernetes quantity (e.g. 500m, 1Gi)");
  EXPECT_EQ(
      FileError("executor:\n  kubernetes:\n    namespaces: [Flyte_Dev]\n"),
      "FILE: executor.kubernetes.namespaces[0]: \"Flyte_Dev\" is not a DNS-1123 label ([a-z0-9-], at most "
      "63, no leading or trailing '-')");
  EXPECT_EQ(
      FileError("executor:\n  kubernetes:\n    default_env: [NEPTUNE_API_TOKEN=abc]\n"),
      "FILE: executor.kubernetes.default_env[0]: NEPTUNE_API_TOKEN may not be set here: the token reaches a "
      "Pod only from its Secret (executor.kubernetes.token_namespaces)");
  EXPECT_EQ(FileError("executor:\n  kubernetes:\n    default_pod_template: [a]\n"),
            "FILE: executor.kubernetes.default_pod_template: expected a map, got a list");
  EXPECT_EQ(FileError("executor:\n  kubernetes:\n    image_pull_policy: always\n"),
            "FILE: executor.kubernetes.image_pull_policy: \"always\" is not Always, IfNotPresent or Never");
  EXPECT_EQ(
      Error({"--executor.kubernetes.default_pod_template={}"}),
      "--executor.kubernetes.default_pod_template: executor.kubernetes.default_pod_template can only be set "
      "in the YAML file");
  EXPECT_EQ(Error({"--executor.kubernetes.qps=0"}),
            "--executor.kubernetes.qps: 0 is out of range [1, 10000]");
}

TEST_F(ConfigLoaderTest, FormatConfigOfDefaults) {
  EXPECT_EQ(FormatConfig(AgentConfig()), R"(server:
  listen_address: 127.0.0.1:8000
  max_receive_message_bytes: 67108864
  metrics_address: 127.0.0.1:9090
  drain_timeout: 20s
  tls_cert_file: ""
  tls_key_file: ""
  tls_client_ca_file: ""
  tls_refresh_interval: 1m
agent:
  name: neptune-agent
  task_types: [neptune]
  retryable_failure: phase
flyte:
  console_url: ""
tracking:
  default_project: local/flyte
  allowed_projects: []
  default_tags: []
  finalize_grace: 2m
  create_budget: 2s
  routing_rules: []
tracker:
  kind: offline
  offline:
    directory: .neptune
  neptune:
    host: ""
    application_url: ""
    api_token_file: ""
    ca_file: ""
    allow_self_signed: false
    ping_interval: 10s
    ping_idle_expiry: 15m
    max_pings_per_second: 50
executor:
  kind: process
  process:
    state_directory: .flyte-neptune-agent/tasks
    allow_non_loopback: false
    runner_path: ""
  kubernetes:
    kubeconfig: ""
    context: ""
    namespaces: []
    token_namespaces: []
    token_secret: neptune-api-token
    token_secret_key: token
    default_env: []
    env_from_secrets: []
    env_from_config_maps: []
    default_cpu: 1000m
    default_memory: 1024Mi
    gpu_resource_name: nvidia.com/gpu
    image_pull_policy: ""
    default_pod_template: {}
    interruptible_tolerations: []
    interruptible_node_selector: []
    owner_references: true
    watch: true
    request_timeout: 2s
    cleanup_delay: 1h
    sweep_interval: 1m
    image_pull_backoff_grace: 3m
    create_container_error_grace: 3m
    pod_pending_timeout: 0
    qps: 100
    burst: 25
storage:
  s3:
    endpoint: ""
    region: ""
    force_path_style: false
    sts_endpoint: ""
    ca_file: ""
logging:
  format: auto
  level: info
)");
}

const std::vector<std::string>& AllKeys() {
  static const auto* const keys = new std::vector<std::string>{
      "server.listen_address",
      "server.max_receive_message_bytes",
      "server.metrics_address",
      "server.drain_timeout",
      "server.tls_cert_file",
      "server.tls_key_file",
      "server.tls_client_ca_file",
      "server.tls_refresh_interval",
      "agent.name",
      "agent.task_types",
      "agent.retryable_failure",
      "flyte.console_url",
      "tracking.default_project",
      "tracking.allowed_projects",
      "tracking.default_tags",
      "tracking.finalize_grace",
      "tracking.create_budget",
      "tracking.routing_rules",
      "tracking.routing_rules[].flyte_project",
      "tracking.routing_rules[].flyte_domain",
      "tracking.routing_rules[].allowed_projects",
      "tracking.routing_rules[].default_project",
      "tracking.routing_rules[].tags",
      "tracking.routing_rules[].token_file",
      "tracker.kind",
      "tracker.offline.directory",
      "tracker.neptune.host",
      "tracker.neptune.application_url",
      "tracker.neptune.api_token_file",
      "tracker.neptune.ca_file",
      "tracker.neptune.allow_self_signed",
      "tracker.neptune.ping_interval",
      "tracker.neptune.ping_idle_expiry",
      "tracker.neptune.max_pings_per_second",
      "executor.kind",
      "executor.process.state_directory",
      "executor.process.allow_non_loopback",
      "executor.process.runner_path",
      "executor.kubernetes.kubeconfig",
      "executor.kubernetes.context",
      "executor.kubernetes.namespaces",
      "executor.kubernetes.token_namespaces",
      "executor.kubernetes.token_secret",
      "executor.kubernetes.token_secret_key",
      "executor.kubernetes.default_env",
      "executor.kubernetes.env_from_secrets",
      "executor.kubernetes.env_from_config_maps",
      "executor.kubernetes.default_cpu",
      "executor.kubernetes.default_memory",
      "executor.kubernetes.gpu_resource_name",
      "executor.kubernetes.image_pull_policy",
      "executor.kubernetes.default_pod_template",
      "executor.kubernetes.interruptible_tolerations",
      "executor.kubernetes.interruptible_node_selector",
      "executor.kubernetes.owner_references",
      "executor.kubernetes.watch",
      "executor.kubernetes.request_timeout",
      "executor.kubernetes.cleanup_delay",
      "executor.kubernetes.sweep_interval",
      "executor.kubernetes.image_pull_backoff_grace",
      "executor.kubernetes.create_container_error_grace",
      "executor.kubernetes.pod_pending_timeout",
      "executor.kubernetes.qps",
      "executor.kubernetes.burst",
      "storage.s3.endpoint",
      "storage.s3.region",
      "storage.s3.force_path_style",
      "storage.s3.sts_endpoint",
      "storage.s3.ca_file",
      "logging.format",
      "logging.level",
  };
  return *keys;
}

TEST_F(ConfigLoaderTest, UsageTextListsEveryKey) {
  std::vector<std::string> described;
  for (const ConfigKeyInfo& key : DescribeConfigKeys()) described.push_back(key.path);
  EXPECT_EQ(described, AllKeys());

  const std::string usage = UsageText();
  for (const ConfigKeyInfo& key : DescribeConfigKeys()) {
    EXPECT_THAT(usage, HasSubstr(absl::StrCat("  ", key.path, " (", key.type, ", default ", key.default_value,
                                              ")\n")));
    if (!key.env_var.empty()) {
      EXPECT_THAT(usage, HasSubstr(absl::StrCat(key.env_var, ", ", key.flag, "\n")));
    }
  }
  EXPECT_THAT(usage, HasSubstr("  server.listen_address (host:port, default 127.0.0.1:8000)\n"
                               "      FLYTE_NEPTUNE_AGENT_SERVER_LISTEN_ADDRESS, --server.listen_address\n"));
  EXPECT_THAT(usage, HasSubstr("  tracking.finalize_grace (duration, default 2m)\n"));
  EXPECT_THAT(usage, HasSubstr("--config=FILE"));
  EXPECT_THAT(usage, HasSubstr("--print-config"));
}

TEST_F(ConfigLoaderTest, EveryDescribedVariableAndFlagIsAccepted) {
  AgentConfig defaults;
  const std::string yaml = FormatConfig(defaults);
  for (const ConfigKeyInfo& key : DescribeConfigKeys()) {
    if (key.env_var.empty()) continue;
    // The default, written as in YAML, is accepted back from a variable and a flag.
    std::string value = key.default_value;
    if (value == "\"\"") value = "";
    if (absl::StartsWith(value, "[")) value = value.substr(1, value.size() - 2);
    EXPECT_EQ(Error({}, {{key.env_var, value}}), "OK") << key.env_var;
    EXPECT_EQ(Error({key.flag + "=" + value}), "OK") << key.flag;
  }
}

// docs/configuration.md has a table row per key giving its type, default, variable and flag ("—" for none).
TEST_F(ConfigLoaderTest, DocumentationMatchesTheKeys) {
  std::ifstream file(absl::StrCat(FNA_SOURCE_DIR, "/docs/configuration.md"));
  ASSERT_TRUE(file.good());
  std::stringstream doc;
  doc << file.rdbuf();
  std::vector<std::string> documented;
  for (absl::string_view line : absl::StrSplit(doc.str(), '\n')) {
    if (absl::StartsWith(line, "| `")) documented.emplace_back(line);
  }
  for (const ConfigKeyInfo& key : DescribeConfigKeys()) {
    const std::string row_start =
        absl::StrCat("| `", key.path, "` | ", absl::StrReplaceAll(key.type, {{"|", "\\|"}}), " | `",
                     key.default_value, "` | ");
    const std::string variable = key.env_var.empty() ? "—" : absl::StrCat("`", key.env_var, "`");
    const std::string flag = key.flag.empty() ? "—" : absl::StrCat("`", key.flag, "`");
    bool found = false;
    for (const std::string& row : documented) {
      if (!absl::StartsWith(row, row_start)) continue;
      found = true;
      EXPECT_THAT(row, HasSubstr(absl::StrCat(" | ", variable, " | ", flag, " | "))) << key.path;
    }
    EXPECT_TRUE(found) << "no row starting with: " << row_start;
  }
}

}  // namespace
}  // namespace fna
