#include "agent/kube/cluster_connection.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/common/status_macros.h"
#include "agent/http/http_transport.h"
#include "yaml-cpp/yaml.h"

namespace fna::kube {

class PrivateFiles {
 public:
  // A new private directory under `root`.
  static absl::StatusOr<std::shared_ptr<PrivateFiles>> Create(const std::string& root) {
    std::string pattern = absl::StrCat(root, "/fna-kube-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot create a private directory under ", root, ": ", std::strerror(errno)));
    }
    return std::shared_ptr<PrivateFiles>(new PrivateFiles(std::move(pattern)));
  }
  ~PrivateFiles() {
    for (const std::string& file : files_) unlink(file.c_str());
    rmdir(dir_.c_str());
  }
  PrivateFiles(const PrivateFiles&) = delete;
  PrivateFiles& operator=(const PrivateFiles&) = delete;

  // Writes `content` to a new file `name` (mode 0600) and returns its path.
  absl::StatusOr<std::string> Write(absl::string_view name, absl::string_view content) {
    std::string path = absl::StrCat(dir_, "/", name);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
    files_.push_back(path);
    size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = write(fd, content.data() + written, content.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int error = errno;
        close(fd);
        return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(error)));
      }
      written += static_cast<size_t>(n);
    }
    if (close(fd) != 0)
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    return path;
  }

 private:
  explicit PrivateFiles(std::string dir) : dir_(std::move(dir)) {}

  const std::string dir_;
  std::vector<std::string> files_;
};

namespace {

// The variable's value; unset and empty are both "not set".
std::optional<std::string> Env(const EnvGetter& env, const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

// The trimmed content of `path`, or std::nullopt (with `error` set) when it cannot be read.
std::optional<std::string> ReadTrimmed(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream content;
  content << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(content.str()));
}

// --- kubeconfig ---

// A named entry (cluster, user or context) and the directory of the file it came from.
struct Named {
  YAML::Node value;  // the "cluster" / "user" / "context" map
  std::string file;
  std::string dir;
};

struct Kubeconfig {
  std::vector<std::string> files;  // read, in order
  std::string current_context;
  std::string current_context_file;
  std::map<std::string, Named> clusters;
  std::map<std::string, Named> users;
  std::map<std::string, Named> contexts;
};

absl::Status Invalid(absl::string_view file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", file, ": ", what));
}

// The string at `map[key]`: "" when absent or null; InvalidArgument when not a scalar.
absl::StatusOr<std::string> StringAt(const YAML::Node& map, const char* key, absl::string_view file,
                                     absl::string_view where) {
  const YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) return std::string();
  if (!node.IsScalar()) return Invalid(file, absl::StrCat(where, ".", key, " must be a string"));
  return node.Scalar();
}

absl::StatusOr<bool> BoolAt(const YAML::Node& map, const char* key, absl::string_view file,
                            absl::string_view where) {
  const YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) return false;
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return Invalid(file, absl::StrCat(where, ".", key, " must be true or false"));
  }
  return value;
}

// Adds the named entries of list `list_key` ("clusters") whose value is under `value_key` ("cluster") to
// `into`, unless an earlier file named them already.
absl::Status MergeNamed(const YAML::Node& root, const char* list_key, const char* value_key,
                        const std::string& file, const std::string& dir, std::map<std::string, Named>* into) {
  const YAML::Node list = root[list_key];
  if (!list.IsDefined() || list.IsNull()) return absl::OkStatus();
  if (!list.IsSequence()) return Invalid(file, absl::StrCat(list_key, " must be a list"));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = absl::StrCat(list_key, "[", i, "]");
    if (!list[i].IsMap()) return Invalid(file, absl::StrCat(where, " must be a map"));
    FNA_ASSIGN_OR_RETURN(const std::string name, StringAt(list[i], "name", file, where));
    if (name.empty()) return Invalid(file, absl::StrCat(where, " has no name"));
    YAML::Node value = list[i][value_key];
    if (value.IsDefined() && !value.IsNull() && !value.IsMap()) {
      return Invalid(file, absl::StrCat(where, ".", value_key, " must be a map"));
    }
    if (!value.IsDefined() || value.IsNull()) value = YAML::Node(YAML::NodeType::Map);
    into->emplace(name, Named{value, file, dir});  // the first file wins
  }
  return absl::OkStatus();
}

// Reads `file` into `config`. NotFound when it does not exist.
absl::Status MergeFile(const std::string& file, Kubeconfig* config) {
  std::error_code ignored;
  if (!std::filesystem::exists(file, ignored)) {
    return absl::NotFoundError(absl::StrCat("kubeconfig ", file, " does not exist"));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::ParserException& e) {
    return Invalid(file, absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  } catch (const YAML::Exception& e) {
    return Invalid(file, e.what());
  }
  config->files.push_back(file);
  if (!root.IsDefined() || root.IsNull()) return absl::OkStatus();  // an empty file
  if (!root.IsMap()) return Invalid(file, "not a kubeconfig (expected a map at the top)");
  const std::string dir = std::filesystem::absolute(file, ignored).parent_path().string();
  FNA_ASSIGN_OR_RETURN(const std::string current, StringAt(root, "current-context", file, "kubeconfig"));
  if (config->current_context.empty() && !current.empty()) {
    config->current_context = current;
    config->current_context_file = file;
  }
  FNA_RETURN_IF_ERROR(MergeNamed(root, "clusters", "cluster", file, dir, &config->clusters));
  FNA_RETURN_IF_ERROR(MergeNamed(root, "users", "user", file, dir, &config->users));
  FNA_RETURN_IF_ERROR(MergeNamed(root, "contexts", "context", file, dir, &config->contexts));
  return absl::OkStatus();
}

absl::StatusOr<Kubeconfig> LoadKubeconfig(const std::string& path, const EnvGetter& env) {
  Kubeconfig config;
  if (!path.empty()) {
    FNA_RETURN_IF_ERROR(MergeFile(path, &config));
    return config;
  }
  if (const std::optional<std::string> list = Env(env, "KUBECONFIG"); list.has_value()) {
    for (absl::string_view file : absl::StrSplit(*list, ':', absl::SkipEmpty())) {
      const absl::Status merged = MergeFile(std::string(file), &config);
      if (!merged.ok() && !absl::IsNotFound(merged)) return merged;
    }
    if (config.files.empty()) {
      return absl::NotFoundError(absl::StrCat("none of the kubeconfig files in $KUBECONFIG exists: ", *list));
    }
    return config;
  }
  const std::optional<std::string> home = Env(env, "HOME");
  if (!home.has_value()) {
    return absl::NotFoundError("no kubeconfig: neither $KUBECONFIG nor $HOME is set");
  }
  FNA_RETURN_IF_ERROR(MergeFile(absl::StrCat(*home, "/.kube/config"), &config));
  return config;
}

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(dir, "/", path);
}

// The file path for a `file_key` / `data_key` pair: the (resolved) file, or the decoded data written to a
// private file `name`. Data wins when both are set (as in client-go).
absl::StatusOr<std::string> FileOrData(const Named& entry, const char* file_key, const char* data_key,
                                       absl::string_view where, absl::string_view name,
                                       std::shared_ptr<PrivateFiles>* files, const EnvGetter& env) {
  FNA_ASSIGN_OR_RETURN(const std::string file, StringAt(entry.value, file_key, entry.file, where));
  FNA_ASSIGN_OR_RETURN(const std::string data, StringAt(entry.value, data_key, entry.file, where));
  if (data.empty()) return Resolve(entry.dir, file);
  std::string decoded;
  if (!absl::Base64Unescape(data, &decoded) || decoded.empty()) {
    return Invalid(entry.file, absl::StrCat(where, ".", data_key, " is not base64"));
  }
  if (*files == nullptr) {
    FNA_ASSIGN_OR_RETURN(*files, PrivateFiles::Create(Env(env, "TMPDIR").value_or("/tmp")));
  }
  return (*files)->Write(name, decoded);
}

std::string Names(const std::map<std::string, Named>& entries) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : entries) names.push_back(absl::StrCat("\"", name, "\""));
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

}  // namespace

EnvGetter ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<ClusterConnection> InClusterConnection(const EnvGetter& env, const std::string& sa_dir) {
  const auto missing = [](const char* name) {
    return absl::FailedPreconditionError(
        absl::StrCat("in-cluster Kubernetes configuration: ", name,
                     " is not set (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set in every Pod; "
                     "outside a cluster use a kubeconfig)"));
  };
  const std::optional<std::string> host = Env(env, "KUBERNETES_SERVICE_HOST");
  if (!host.has_value()) return missing("KUBERNETES_SERVICE_HOST");
  const std::optional<std::string> port = Env(env, "KUBERNETES_SERVICE_PORT");
  if (!port.has_value()) return missing("KUBERNETES_SERVICE_PORT");
  int port_number = 0;
  if (!absl::SimpleAtoi(*port, &port_number) || port_number <= 0 || port_number > 65535) {
    return absl::FailedPreconditionError(absl::StrCat(
        "in-cluster Kubernetes configuration: KUBERNETES_SERVICE_PORT is not a port: \"", *port, "\""));
  }
  ClusterConnection connection;
  const bool v6 = absl::StrContains(*host, ':') && !absl::StartsWith(*host, "[");
  connection.server = absl::StrCat("https://", v6 ? "[" : "", *host, v6 ? "]" : "", ":", port_number);
  connection.source = "in-cluster service account";

  const auto unreadable = [](absl::string_view what, const std::string& file, absl::string_view error) {
    return absl::FailedPreconditionError(absl::StrCat("in-cluster Kubernetes configuration: cannot read the ",
                                                      what, " ", file, ": ", error,
                                                      " (is automountServiceAccountToken false?)"));
  };
  std::string error;
  connection.ca_file = absl::StrCat(sa_dir, "/ca.crt");
  if (access(connection.ca_file.c_str(), R_OK) != 0) {
    return unreadable("cluster CA", connection.ca_file, std::strerror(errno));
  }
  connection.token_file = absl::StrCat(sa_dir, "/token");
  const std::optional<std::string> token = ReadTrimmed(connection.token_file, &error);
  if (!token.has_value()) return unreadable("service account token", connection.token_file, error);
  if (token->empty()) return unreadable("service account token", connection.token_file, "empty");

  if (std::optional<std::string> ns = Env(env, "POD_NAMESPACE"); ns.has_value()) {
    connection.default_namespace = *std::move(ns);
  } else if (std::optional<std::string> file = ReadTrimmed(absl::StrCat(sa_dir, "/namespace"), &error);
             file.has_value() && !file->empty()) {
    connection.default_namespace = *std::move(file);
  } else {
    connection.default_namespace = "default";
  }
  return connection;
}

absl::StatusOr<ClusterConnection> KubeconfigConnection(const std::string& path, const std::string& context,
                                                       const EnvGetter& env) {
  FNA_ASSIGN_OR_RETURN(const Kubeconfig config, LoadKubeconfig(path, env));
  const std::string files = absl::StrJoin(config.files, ":");
  const std::string context_name = context.empty() ? config.current_context : context;
  if (context_name.empty()) {
    return Invalid(files, absl::StrCat("no current-context: name one of the contexts (",
                                       Names(config.contexts), ") or run `kubectl config use-context`"));
  }
  const auto context_it = config.contexts.find(context_name);
  if (context_it == config.contexts.end()) {
    return Invalid(files, absl::StrCat("context \"", context_name,
                                       "\" not found (contexts: ", Names(config.contexts), ")"));
  }
  const Named& ctx = context_it->second;
  const std::string ctx_where = absl::StrCat("context \"", context_name, "\"");
  FNA_ASSIGN_OR_RETURN(const std::string cluster_name, StringAt(ctx.value, "cluster", ctx.file, ctx_where));
  FNA_ASSIGN_OR_RETURN(const std::string user_name, StringAt(ctx.value, "user", ctx.file, ctx_where));
  FNA_ASSIGN_OR_RETURN(const std::string ns, StringAt(ctx.value, "namespace", ctx.file, ctx_where));
  const auto cluster_it = config.clusters.find(cluster_name);
  if (cluster_it == config.clusters.end()) {
    return Invalid(ctx.file,
                   absl::StrCat(ctx_where, " names cluster \"", cluster_name,
                                "\", which is not defined (clusters: ", Names(config.clusters), ")"));
  }

  ClusterConnection connection;
  connection.source = absl::StrCat("kubeconfig ", files, " context \"", context_name, "\"");
  connection.default_namespace = ns.empty() ? "default" : ns;
  std::shared_ptr<PrivateFiles> private_files;

  const Named& cluster = cluster_it->second;
  const std::string cluster_where = absl::StrCat("cluster \"", cluster_name, "\"");
  FNA_ASSIGN_OR_RETURN(std::string server, StringAt(cluster.value, "server", cluster.file, cluster_where));
  while (absl::EndsWith(server, "/")) server.pop_back();
  if (server.empty()) return Invalid(cluster.file, absl::StrCat(cluster_where, " has no server"));
  if (absl::Status url = http::ParseUrl(server).status(); !url.ok()) {
    return Invalid(cluster.file, absl::StrCat(cluster_where, ".server: ", url.message()));
  }
  connection.server = server;
  FNA_ASSIGN_OR_RETURN(const std::string proxy,
                       StringAt(cluster.value, "proxy-url", cluster.file, cluster_where));
  if (!proxy.empty()) {
    return Invalid(cluster.file, absl::StrCat(cluster_where, " sets proxy-url, which is not supported: set ",
                                              "HTTPS_PROXY (and NO_PROXY) for the agent instead"));
  }
  FNA_ASSIGN_OR_RETURN(connection.ca_file,
                       FileOrData(cluster, "certificate-authority", "certificate-authority-data",
                                  cluster_where, "ca.crt", &private_files, env));
  FNA_ASSIGN_OR_RETURN(connection.insecure_skip_tls_verify,
                       BoolAt(cluster.value, "insecure-skip-tls-verify", cluster.file, cluster_where));
  if (connection.insecure_skip_tls_verify && !connection.ca_file.empty()) {
    return Invalid(cluster.file, absl::StrCat(cluster_where, " sets both a certificate authority and ",
                                              "insecure-skip-tls-verify: keep one"));
  }
  FNA_ASSIGN_OR_RETURN(connection.tls_server_name,
                       StringAt(cluster.value, "tls-server-name", cluster.file, cluster_where));

  if (!user_name.empty()) {
    const auto user_it = config.users.find(user_name);
    if (user_it == config.users.end()) {
      return Invalid(ctx.file, absl::StrCat(ctx_where, " names user \"", user_name,
                                            "\", which is not defined (users: ", Names(config.users), ")"));
    }
    const Named& user = user_it->second;
    const std::string user_where = absl::StrCat("user \"", user_name, "\"");
    if (user.value["exec"].IsDefined() && !user.value["exec"].IsNull()) {
      std::string command;
      if (user.value["exec"].IsMap() && user.value["exec"]["command"].IsScalar()) {
        command = absl::StrCat(" (", user.value["exec"]["command"].Scalar(), ")");
      }
      return Invalid(user.file,
                     absl::StrCat(user_where, " authenticates with an exec credential plugin", command,
                                  ", which the agent does not run: run `kubectl proxy` and use its "
                                  "http://127.0.0.1:8001 server, or give the user a token or tokenFile"));
    }
    if (user.value["auth-provider"].IsDefined() && !user.value["auth-provider"].IsNull()) {
      return Invalid(user.file,
                     absl::StrCat(user_where, " authenticates with an auth-provider, which the agent ",
                                  "does not support: run `kubectl proxy` and use its "
                                  "http://127.0.0.1:8001 server, or give the user a token or "
                                  "tokenFile"));
    }
    if (user.value["username"].IsDefined() || user.value["password"].IsDefined()) {
      return Invalid(user.file,
                     absl::StrCat(user_where, " uses a username and password (basic authentication), ",
                                  "which the agent does not support: use a token or a client "
                                  "certificate"));
    }
    FNA_ASSIGN_OR_RETURN(const std::string token, StringAt(user.value, "token", user.file, user_where));
    connection.token = Secret(token);
    FNA_ASSIGN_OR_RETURN(const std::string token_file,
                         StringAt(user.value, "tokenFile", user.file, user_where));
    connection.token_file = Resolve(user.dir, token_file);
    FNA_ASSIGN_OR_RETURN(connection.client_cert_file,
                         FileOrData(user, "client-certificate", "client-certificate-data", user_where,
                                    "client.crt", &private_files, env));
    FNA_ASSIGN_OR_RETURN(
        connection.client_key_file,
        FileOrData(user, "client-key", "client-key-data", user_where, "client.key", &private_files, env));
    if (connection.client_cert_file.empty() != connection.client_key_file.empty()) {
      return Invalid(user.file, absl::StrCat(user_where,
                                             " has a client certificate without its key, or a key "
                                             "without its certificate"));
    }
  }
  connection.private_files = std::move(private_files);
  return connection;
}

}  // namespace fna::kube
