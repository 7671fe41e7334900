#ifndef FNA_AGENT_SERVER_TLS_H_
#define FNA_AGENT_SERVER_TLS_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/config/config.h"
#include "grpcpp/security/server_credentials.h"

namespace fna::server {

// The gRPC server's credentials from the configuration. Plaintext by default (propeller's default channel is
// insecure). With server.tls_cert_file and server.tls_key_file: TLS, the files re-read every
// server.tls_refresh_interval, so that a rotated certificate is served without a restart (replace both files
// at once, e.g. by a symlinked directory swap as Kubernetes does for Secrets; a key and certificate that do
// not match are not taken). With server.tls_client_ca_file also: mutual TLS, every client must present a
// certificate those CAs signed.
//
// The files are checked first (CheckTlsFiles); gRPC reads them itself afterwards.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const AgentConfig& config);

// Checks that the configured TLS files are PEM files that can be read now: a certificate (chain), a private
// key that matches it, and CA certificates. InvalidArgument (or the errno's code) naming the key and the
// path, e.g. `server.tls_key_file "/etc/tls/tls.key": cannot read: No such file or directory`. OK without
// TLS.
absl::Status CheckTlsFiles(const AgentConfig& config);

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_TLS_H_
