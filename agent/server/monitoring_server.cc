#include "agent/server/monitoring_server.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace fna::server {
namespace {

// Kept-alive connections are closed after this long idle, and Stop() waits at most about this long for them.
constexpr time_t kKeepAliveSeconds = 1;

void Answer(const Health::Report& report, httplib::Response& response) {
  response.status = report.ok ? 200 : 503;
  response.set_content(report.ok ? "ok\n" : absl::StrCat(report.reason, "\n"), "text/plain; charset=utf-8");
}

}  // namespace

absl::StatusOr<std::unique_ptr<MonitoringServer>> MonitoringServer::Start(const std::string& address,
                                                                          const metrics::Registry* registry,
                                                                          const Health* health) {
  const absl::Status unavailable = absl::UnavailableError(
      absl::StrCat("cannot listen on ", address, " (address in use or not available here)"));
  std::string host;
  int port = -1;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) return unavailable;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  std::unique_ptr<MonitoringServer> server(new MonitoringServer());
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->server_;
  http.set_keep_alive_timeout(kKeepAliveSeconds);
  // httplib's default adds SO_REUSEPORT, which would let a second agent share the port unnoticed.
  http.set_socket_options([](socket_t socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry->TextExposition(), metrics::Registry::kContentType);
  });
  http.Get("/readyz", [health](const httplib::Request&, httplib::Response& response) {
    Answer(health->Readiness(), response);
  });
  http.Get("/healthz", [health](const httplib::Request&, httplib::Response& response) {
    Answer(health->Liveness(), response);
  });
  if (port == 0) {
    server->port_ = http.bind_to_any_port(host);
    if (server->port_ <= 0) return unavailable;
  } else {
    if (!http.bind_to_port(host, port)) return unavailable;
    server->port_ = port;
  }
  MonitoringServer* raw = server.get();
  server->thread_ = std::thread([raw] {
    raw->server_->listen_after_bind();
    raw->listening_done_ = true;
  });
  // A stop() before the listening loop runs would be lost.
  while (!http.is_running() && !raw->listening_done_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return server;
}

MonitoringServer::~MonitoringServer() { Stop(); }

void MonitoringServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace fna::server
