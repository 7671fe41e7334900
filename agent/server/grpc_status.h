#ifndef FNA_AGENT_SERVER_GRPC_STATUS_H_
#define FNA_AGENT_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace fna::server {

// The one place where internal errors become gRPC status: same canonical code, same message (which the
// lifecycle writes for a Flyte user: propeller shows it in the console).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_GRPC_STATUS_H_
