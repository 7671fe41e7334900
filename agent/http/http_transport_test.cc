#include "agent/http/http_transport.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::http {
namespace {

using ::testing::HasSubstr;

// The common name of the client certificate `request` came with, or "".
std::string PeerName(const httplib::Request& request) {
  if (request.ssl == nullptr) return "";
  X509* cert = SSL_get1_peer_certificate(request.ssl);
  if (cert == nullptr) return "";
  char name[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name));
  X509_free(cert);
  return name;
}

// An httplib server on 127.0.0.1 (TLS with `pki`, requiring a client certificate its CA signed when
// `client_auth`), run on its own thread; records the client ports it saw (one per connection).
class TestServer {
 public:
  explicit TestServer(const testing::TestPki* pki = nullptr, bool client_auth = false) {
    if (pki == nullptr) {
      server_ = std::make_unique<httplib::Server>();
    } else {
      server_ =
          std::make_unique<httplib::SSLServer>(pki->server_cert_file.c_str(), pki->server_key_file.c_str(),
                                               client_auth ? pki->ca_file.c_str() : nullptr);
    }
    server_->Get("/slow", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms_.load()));
      response.set_content("slow", "text/plain");
    });
    // Three chunks, then (with ?hold) the stream stays open until the server stops.
    server_->Get("/stream", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      const bool hold = request.has_param("hold");
      response.set_chunked_content_provider(
          "application/json", [this, hold, sent = 0](size_t, httplib::DataSink& sink) mutable {
            if (sent < 3) {
              const std::string line = absl::StrCat("{\"n\":", sent++, "}\n");
              return sink.write(line.data(), line.size());
            }
            if (!hold) {
              sink.done();
              return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            return !stopping_.load();
          });
    });
    server_->Get("/missing", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.status = 404;
      response.set_content(R"({"kind":"Status","code":404})", "application/json");
    });
    server_->Get(".*", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.set_header("X-Echo-Target", request.target);
      response.set_header("X-Echo-Host", request.get_header_value("Host"));
      response.set_header("X-Echo-Peer", PeerName(request));
      response.set_content(absl::StrCat("hello ", request.get_header_value("X-Test")), "text/plain");
    });
    server_->Post(".*", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.status = 201;
      response.set_content(absl::StrCat(request.get_header_value("Content-Type"), "|", request.body),
                           "text/plain");
    });
    server_->set_keep_alive_max_count(1000);  // httplib's default closes a connection after 5 requests
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::yield();
  }
  ~TestServer() {
    stopping_ = true;
    server_->stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::atomic<bool> stopping_{false};
  std::string Url(absl::string_view path, bool tls = false) const {
    return absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", port_, path);
  }
  size_t connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ports_.size();
  }
  int requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  void set_slow_ms(int ms) { slow_ms_ = ms; }

 private:
  void Record(const httplib::Request& request) {
    std::lock_guard<std::mutex> lock(mu_);
    ports_.insert(request.remote_port);
    ++requests_;
  }

  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> slow_ms_{1000};
  mutable std::mutex mu_;
  std::set<int> ports_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
};

// A minimal forward proxy on 127.0.0.1: tunnels CONNECT requests, answers plain requests itself with
// "proxied", and records each request line.
class TestProxy {
 public:
  TestProxy() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t size = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    listen(listener_, 16);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TestProxy() {
    stop_ = true;
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
    for (std::thread& worker : workers_) worker.join();
  }
  int port() const { return port_; }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  void Loop() {
    while (!stop_) {
      const int client = accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      workers_.emplace_back([this, client] { Serve(client); });
    }
  }

  void Serve(int client) {
    std::string head;
    char buffer[4096];
    while (!absl::StrContains(head, "\r\n\r\n")) {
      const ssize_t n = read(client, buffer, sizeof(buffer));
      if (n <= 0) break;
      head.append(buffer, static_cast<size_t>(n));
    }
    const std::string line = head.substr(0, head.find("\r\n"));
    {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
    }
    if (absl::StartsWith(line, "CONNECT ")) {
      const std::string authority = line.substr(8, line.find(' ', 8) - 8);
      const int target_port = std::atoi(authority.substr(authority.rfind(':') + 1).c_str());
      const int upstream = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(static_cast<uint16_t>(target_port));
      if (connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        close(upstream);
        close(client);
        return;
      }
      const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
      (void)!write(client, ok.data(), ok.size());
      Pump(client, upstream);
      close(upstream);
    } else {
      const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied";
      (void)!write(client, response.data(), response.size());
    }
    close(client);
  }

  static void Pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buffer[16384];
    while (poll(fds, 2, 5000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
        if (n <= 0) return;
        if (write(fds[1 - i].fd, buffer, static_cast<size_t>(n)) != n) return;
      }
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<HttplibTransport> MakeTransport(HttplibTransportOptions options = {}) {
  absl::StatusOr<std::unique_ptr<HttplibTransport>> transport =
      HttplibTransport::Create(std::move(options), Clock::Real());
  EXPECT_TRUE(transport.ok()) << transport.status();
  return transport.ok() ? *std::move(transport) : nullptr;
}

HttpRequest Get(std::string url, absl::Duration budget = absl::Seconds(10)) {
  HttpRequest request;
  request.method = "GET";
  request.url = std::move(url);
  request.deadline = absl::Now() + budget;
  return request;
}

TEST(ParseUrlTest, SplitsAbsoluteUrls) {
  absl::StatusOr<ParsedUrl> url = ParseUrl("HTTPS://Neptune.example.com/api/x?y=1#frag");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->host, "Neptune.example.com");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/api/x?y=1");
  url = ParseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->target, "/");
  url = ParseUrl("http://[::1]:9?q");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9);
  EXPECT_EQ(url->target, "/?q");
  EXPECT_FALSE(ParseUrl("neptune.example.com/x").ok());
  EXPECT_FALSE(ParseUrl("ftp://x/").ok());
  EXPECT_FALSE(ParseUrl("http://user:pw@x/").ok());
  EXPECT_FALSE(ParseUrl("http://x:0/").ok());
  EXPECT_FALSE(ParseUrl("http://x:99999/").ok());
  EXPECT_FALSE(ParseUrl("http://:80/").ok());
}

TEST(UrlEncodeTest, KeepsOnlyUnreserved) {
  EXPECT_EQ(UrlEncode("ws/proj a+b=c&d~e_f.g-h"), "ws%2Fproj%20a%2Bb%3Dc%26d~e_f.g-h");
  EXPECT_EQ(UrlEncode("\xC3\xA9"), "%C3%A9");
}

TEST(NoProxyTest, Matches) {
  EXPECT_TRUE(NoProxyMatches("*", "anything", 1));
  EXPECT_TRUE(NoProxyMatches("localhost,127.0.0.1", "127.0.0.1", 80));
  EXPECT_TRUE(NoProxyMatches(".example.com", "neptune.example.com", 443));
  EXPECT_TRUE(NoProxyMatches("example.com", "example.com", 443));
  EXPECT_TRUE(NoProxyMatches("example.com", "A.Example.COM", 443));
  EXPECT_TRUE(NoProxyMatches(" foo , *.example.com ", "a.example.com", 443));
  EXPECT_TRUE(NoProxyMatches("example.com:443", "example.com", 443));
  EXPECT_FALSE(NoProxyMatches("example.com:8443", "example.com", 443));
  EXPECT_FALSE(NoProxyMatches("example.com", "badexample.com", 443));
  EXPECT_FALSE(NoProxyMatches("10.0.0.0/8", "10.1.2.3", 80));
  EXPECT_FALSE(NoProxyMatches("", "example.com", 443));
}

TEST(HttplibTransportTest, BadOptionsAreRefused) {
  HttplibTransportOptions options;
  options.https_proxy = "https://proxy:3128";
  EXPECT_EQ(HttplibTransport::Create(options, Clock::Real()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.http_proxy = "http://user:hunter22@proxy:notaport";
  absl::Status status = HttplibTransport::Create(options, Clock::Real()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::Not(HasSubstr("hunter22")));
  options = {};
  options.ca_cert_file = "/nonexistent/ca.pem";
  EXPECT_EQ(HttplibTransport::Create(options, Clock::Real()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttplibTransportTest, SendsHeadersAndBodyAndReusesOneConnection) {
  TestServer server;
  std::unique_ptr<HttplibTransport> transport = MakeTransport();
  for (int i = 0; i < 20; ++i) {
    HttpRequest request = Get(server.Url("/echo?x=%2F"));
    request.headers.push_back({"X-Test", absl::StrCat("n", i)});
    absl::StatusOr<HttpResponse> response = transport->Send(request);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, absl::StrCat("hello n", i));
    ASSERT_NE(response->FindHeader("x-echo-target"), nullptr);       // any case
    EXPECT_EQ(*response->FindHeader("X-ECHO-TARGET"), "/echo?x=/");  // as the server decodes it
  }
  HttpRequest post = Get(server.Url("/post"));
  post.method = "POST";
  post.content_type = "application/json";
  post.body = R"([{"path":"a"}])";
  absl::StatusOr<HttpResponse> response = transport->Send(post);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, R"(application/json|[{"path":"a"}])");
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(transport->clients_created(), 1);
}

TEST(HttplibTransportTest, ConcurrentRequestsShareAFewConnections) {
  TestServer server;
  server.set_slow_ms(5);
  HttplibTransportOptions options;
  options.max_connections_per_host = 4;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 50; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 4; ++i) {
        absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/slow"), absl::Seconds(60)));
        if (response.ok() && response->status == 200) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_LE(server.connections(), 4u);
  EXPECT_LE(transport->clients_created(), 4);
}

TEST(HttplibTransportTest, DeadlineBoundsTheExchange) {
  TestServer server;
  server.set_slow_ms(3000);
  std::unique_ptr<HttplibTransport> transport = MakeTransport();
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/slow"), absl::Milliseconds(300)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // Nothing is sent once the deadline has passed.
  const int before = server.requests();
  HttpRequest late = Get(server.Url("/x"));
  late.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(transport->Send(late).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server.requests(), before);
}

TEST(HttplibTransportTest, StreamsTheBodyAsItArrivesAndEndsWithTheServer) {
  TestServer server;
  auto transport = HttplibTransport::Create({}, Clock::Real());
  ASSERT_TRUE(transport.ok());
  HttpRequest request;
  request.method = "GET";
  request.url = server.Url("/stream");
  request.deadline = absl::Now() + absl::Seconds(10);
  std::string received;
  auto response = (*transport)
                      ->Stream(
                          request,
                          [&](absl::string_view data) {
                            received.append(data.data(), data.size());
                            return true;
                          },
                          nullptr);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(received, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
  EXPECT_TRUE(response->body.empty());

  // An error status comes back with its body, which is not streamed.
  request.url = server.Url("/missing");
  received.clear();
  response = (*transport)
                 ->Stream(
                     request,
                     [&](absl::string_view data) {
                       received.append(data.data(), data.size());
                       return true;
                     },
                     nullptr);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, R"({"kind":"Status","code":404})");
  EXPECT_TRUE(received.empty());
}

TEST(HttplibTransportTest, AStreamEndsWhenTheReaderSaysSoOrWhenCancelled) {
  TestServer server;
  auto transport = HttplibTransport::Create({}, Clock::Real());
  ASSERT_TRUE(transport.ok());
  HttpRequest request;
  request.method = "GET";
  request.url = server.Url("/stream?hold=1");
  request.deadline = absl::Now() + absl::Seconds(30);
  int lines = 0;
  auto response = (*transport)
                      ->Stream(
                          request,
                          [&](absl::string_view data) {
                            lines += static_cast<int>(std::count(data.begin(), data.end(), '\n'));
                            return lines < 2;
                          },
                          nullptr);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);

  StreamCanceller canceller;
  std::atomic<int> seen{0};
  std::thread reader([&] {
    auto held = (*transport)
                    ->Stream(
                        request,
                        [&](absl::string_view) {
                          ++seen;
                          return true;
                        },
                        &canceller);
    EXPECT_EQ(held.status().code(), absl::StatusCode::kCancelled);
  });
  while (seen.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const absl::Time cancelled_at = absl::Now();
  canceller.Cancel();
  reader.join();
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(2));
  // Cancelled stays cancelled.
  EXPECT_EQ((*transport)
                ->Stream(
                    request, [](absl::string_view) { return true; }, &canceller)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
}

TEST(HttplibTransportTest, BusyPoolWaitsOnlyUntilTheDeadline) {
  TestServer server;
  server.set_slow_ms(1500);
  HttplibTransportOptions options;
  options.max_connections_per_host = 1;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  std::thread slow([&] { EXPECT_TRUE(transport->Send(Get(server.Url("/slow"))).ok()); });
  while (server.requests() == 0) std::this_thread::yield();
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/x"), absl::Milliseconds(200)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(response.status().message(), HasSubstr("stayed busy"));
  slow.join();
  EXPECT_TRUE(transport->Send(Get(server.Url("/x"))).ok());  // the connection is free again
}

TEST(HttplibTransportTest, RefusedConnectionIsUnavailable) {
  int port;
  {
    TestServer server;  // a port that was just free
    port = server.port();
  }
  std::unique_ptr<HttplibTransport> transport = MakeTransport();
  absl::StatusOr<HttpResponse> response = transport->Send(Get(absl::StrCat("http://127.0.0.1:", port, "/")));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(response.status().message(), HasSubstr("127.0.0.1"));
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/fna-pki-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    ASSERT_TRUE(testing::WriteTestPki(dir_, &pki_));
  }
  void TearDown() override { testing::RemoveTestPki(dir_, pki_); }
  std::string dir_;
  testing::TestPki pki_;
};

TEST_F(TlsTest, TrustsTheConfiguredCa) {
  TestServer server(&pki_);
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.ca_file;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/tls", /*tls=*/true)));
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
  }
  // By name too (the certificate is for localhost and 127.0.0.1).
  absl::StatusOr<HttpResponse> response =
      transport->Send(Get(absl::StrCat("https://localhost:", server.port(), "/tls")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(server.connections(), 2u);
}

TEST_F(TlsTest, RefusesAServerTheCaDidNotSign) {
  TestServer server(&pki_);
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.other_ca_file;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/tls", /*tls=*/true)));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_EQ(server.requests(), 0);
  // The system store does not know the test CA either.
  transport = MakeTransport();
  EXPECT_FALSE(transport->Send(Get(server.Url("/tls", /*tls=*/true))).ok());
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(TlsTest, SelfSignedOnlyWhenAllowed) {
  TestServer server(&pki_);
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.other_ca_file;
  options.allow_self_signed = true;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/tls", /*tls=*/true)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
}

TEST_F(TlsTest, PresentsTheClientCertificate) {
  TestServer server(&pki_, /*client_auth=*/true);
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.ca_file;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  EXPECT_FALSE(transport->Send(Get(server.Url("/mtls", /*tls=*/true))).ok());  // refused without one
  EXPECT_EQ(server.requests(), 0);

  options.client_cert_file = pki_.client_cert_file;
  options.client_key_file = pki_.client_key_file;
  transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/mtls", /*tls=*/true)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  ASSERT_NE(response->FindHeader("X-Echo-Peer"), nullptr);
  EXPECT_EQ(*response->FindHeader("X-Echo-Peer"), testing::kTestClientName);
}

TEST_F(TlsTest, ClientCertificateOptionsAreChecked) {
  HttplibTransportOptions options;
  options.client_cert_file = pki_.client_cert_file;  // without its key
  EXPECT_EQ(HttplibTransport::Create(options, Clock::Real()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.client_key_file = dir_ + "/missing-key.pem";
  absl::Status status = HttplibTransport::Create(options, Clock::Real()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("missing-key.pem"));
  // A key that does not match the certificate is found when a connection is opened.
  TestServer server(&pki_, /*client_auth=*/true);
  options.ca_cert_file = pki_.ca_file;
  options.client_key_file = pki_.server_key_file;
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/mtls", /*tls=*/true)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_THAT(response.status().message(), HasSubstr("client certificate"));
}

TEST_F(TlsTest, VerifiesTheTlsServerNameInsteadOfTheHost) {
  TestServer server(&pki_);
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.ca_file;
  options.tls_server_name = "kubernetes.default.svc";  // in the certificate; the URL host is an address
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    absl::StatusOr<HttpResponse> response =
        transport->Send(Get(absl::StrCat("https://", host, ":", server.port(), "/renamed")));
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
    ASSERT_NE(response->FindHeader("X-Echo-Host"), nullptr);
    EXPECT_EQ(*response->FindHeader("X-Echo-Host"), absl::StrCat("kubernetes.default.svc:", server.port()));
  }
  // A name the certificate does not carry fails even though the URL host (127.0.0.1) would pass.
  options.tls_server_name = "apiserver.example.com";
  transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/renamed", /*tls=*/true)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_EQ(server.requests(), 2);
  // Not through a proxy: the proxy would be asked for the server name.
  options.tls_server_name = "kubernetes.default.svc";
  options.https_proxy = "http://127.0.0.1:1";
  transport = MakeTransport(options);
  response = transport->Send(Get(server.Url("/renamed", /*tls=*/true)));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_THAT(response.status().message(), HasSubstr("proxy"));
  options.no_proxy = "127.0.0.1";
  transport = MakeTransport(options);
  EXPECT_TRUE(transport->Send(Get(server.Url("/renamed", /*tls=*/true))).ok());
}

TEST_F(TlsTest, HttpsThroughAProxyTunnel) {
  TestServer server(&pki_);
  TestProxy proxy;
  HttplibTransportOptions options;
  options.ca_cert_file = pki_.ca_file;
  options.https_proxy = absl::StrCat("127.0.0.1:", proxy.port());
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/tunnelled", /*tls=*/true)));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  ASSERT_EQ(proxy.lines().size(), 1u);
  EXPECT_EQ(proxy.lines()[0], absl::StrCat("CONNECT 127.0.0.1:", server.port(), " HTTP/1.1"));
}

TEST(HttplibTransportTest, PlainHttpThroughAProxyUnlessNoProxy) {
  TestServer server;
  TestProxy proxy;
  HttplibTransportOptions options;
  options.http_proxy = absl::StrCat("http://127.0.0.1:", proxy.port());
  std::unique_ptr<HttplibTransport> transport = MakeTransport(options);
  absl::StatusOr<HttpResponse> response = transport->Send(Get(server.Url("/via?x=1")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "proxied");
  ASSERT_EQ(proxy.lines().size(), 1u);
  EXPECT_EQ(proxy.lines()[0], absl::StrCat("GET http://127.0.0.1:", server.port(), "/via?x=1 HTTP/1.1"));
  EXPECT_EQ(server.requests(), 0);

  options.no_proxy = "localhost,127.0.0.1";
  transport = MakeTransport(options);
  response = transport->Send(Get(server.Url("/direct")));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "hello ");
  EXPECT_EQ(proxy.lines().size(), 1u);
  EXPECT_EQ(server.requests(), 1);
}

}  // namespace
}  // namespace fna::http
