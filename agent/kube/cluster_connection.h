#ifndef FNA_AGENT_KUBE_CLUSTER_CONNECTION_H_
#define FNA_AGENT_KUBE_CLUSTER_CONNECTION_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/secret.h"

namespace fna::kube {

// The value of an environment variable, or std::nullopt when it is not set.
using EnvGetter = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
EnvGetter ProcessEnv();

// Files written for a kubeconfig's inline *-data values (certificate-authority-data, client-certificate-data,
// client-key-data): a private directory (0700) under $TMPDIR or /tmp holding them (0600), removed with them
// when the last ClusterConnection sharing it is destroyed.
class PrivateFiles;

// Where and how to reach one Kubernetes API server. Copyable; a plain value (copies share PrivateFiles).
struct ClusterConnection {
  // "https://host:port", or "http://host:port" for `kubectl proxy` (no TLS, and normally no credentials).
  std::string server;
  // TLS: a PEM file of the CAs to trust ("" = the system's store), or no verification at all.
  std::string ca_file;
  bool insecure_skip_tls_verify = false;
  // The name to verify the server's certificate against instead of the server URL's host ("" = the host).
  std::string tls_server_name;
  // Client certificate authentication: PEM files of the certificate and of its key, both or neither.
  std::string client_cert_file;
  std::string client_key_file;
  // Bearer token authentication: a file re-read as it rotates (token_provider.h), else a static token.
  std::string token_file;
  Secret token;
  // The namespace of the service account (in cluster) or of the kubeconfig context ("default" if unset).
  std::string default_namespace;
  // Where this came from, for messages: "in-cluster service account" or "kubeconfig <file> context <name>".
  std::string source;
  // Owns the files written for inline kubeconfig data (null when there are none).
  std::shared_ptr<const PrivateFiles> private_files;
};

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

// The connection of a process running in a Pod (client-go's InClusterConfig): https:// +
// $KUBERNETES_SERVICE_HOST (bracketed when an IPv6 literal) + ":" + $KUBERNETES_SERVICE_PORT, the CA
// `sa_dir`/ca.crt, the token file `sa_dir`/token (re-read as it rotates), and the namespace of
// $POD_NAMESPACE, else of `sa_dir`/namespace, else "default". FailedPrecondition naming the missing
// variable or the unreadable file (the token file must hold a token now). Reads `env` and the files; no
// network.
absl::StatusOr<ClusterConnection> InClusterConnection(const EnvGetter& env,
                                                      const std::string& sa_dir = kServiceAccountDir);

// The connection of a kubeconfig context, for development (kubernetes-executor.md §3.1).
//   Files: `path` alone when given; else the ':'-separated files of $KUBECONFIG (missing ones skipped),
//   merged with the first file winning per named cluster, user and context and for current-context; else
//   $HOME/.kube/config. YAML (so JSON too), parsed with yaml-cpp.
//   Context: `context` when given, else current-context. Read: contexts[].context.{cluster, user,
//   namespace}; clusters[].cluster.{server, certificate-authority, certificate-authority-data,
//   insecure-skip-tls-verify, tls-server-name}; users[].user.{token, tokenFile, client-certificate,
//   client-certificate-data, client-key, client-key-data}. Relative paths are relative to the file that
//   holds the entry; *-data values (base64) are written to PrivateFiles. A context without a user means no
//   credentials (`kubectl proxy`'s http:// server needs none).
//   Refused with a message saying what to do instead: user.exec and user.auth-provider (use `kubectl proxy`
//   or a token), username/password, cluster.proxy-url (set HTTPS_PROXY), a CA together with
//   insecure-skip-tls-verify.
// Errors: NotFound when no kubeconfig file exists; InvalidArgument naming the file and the entry for a file
// that does not parse, a missing or unknown context, cluster or user, and refused settings; Internal when
// the private files cannot be written. Never puts a token or key into a message.
absl::StatusOr<ClusterConnection> KubeconfigConnection(const std::string& path, const std::string& context,
                                                       const EnvGetter& env);

}  // namespace fna::kube

#endif  // FNA_AGENT_KUBE_CLUSTER_CONNECTION_H_
