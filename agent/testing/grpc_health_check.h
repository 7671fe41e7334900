#ifndef FNA_AGENT_TESTING_GRPC_HEALTH_CHECK_H_
#define FNA_AGENT_TESTING_GRPC_HEALTH_CHECK_H_

// Test helper: a grpc.health.v1 Check without the health protos (Debian ships no generated code for them),
// over a generic stub with the request and response encoded by hand. Header-only; needs gRPC++ and Abseil
// time.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace fna::testing {

// grpc.health.v1 Check of `service` ("" = the server as a whole): the status number (1 SERVING,
// 2 NOT_SERVING), or minus the gRPC code of a failed call. Waits at most 5 s.
inline int GrpcHealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string bytes;
  if (!service.empty())
    bytes = absl::StrCat("\x0a", std::string(1, static_cast<char>(service.size())), service);
  const grpc::Slice slice(bytes);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::CompletionQueue queue;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  call->Finish(&response, &status, nullptr);
  void* tag;
  bool ok;
  queue.Next(&tag, &ok);
  if (!status.ok()) return -status.error_code();
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string body;
  for (const grpc::Slice& part : slices)
    body.append(reinterpret_cast<const char*>(part.begin()), part.size());
  return body.size() == 2 && body[0] == '\x08' ? body[1] : 0;
}

}  // namespace fna::testing

#endif  // FNA_AGENT_TESTING_GRPC_HEALTH_CHECK_H_
