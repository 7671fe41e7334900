#include "agent/http/http_transport.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "agent/common/status_macros.h"

namespace fna::http {
namespace {

// "host" or "[v6]" as it goes into an authority.
std::string AuthorityHost(absl::string_view host) {
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : std::string(host);
}

std::string Origin(const ParsedUrl& url) {
  return absl::StrCat(url.scheme, "://", AuthorityHost(url.host), ":", url.port);
}

// Splits "host[:port]" / "[v6][:port]" of an authority; `port` stays as given when there is none.
absl::Status SplitHostPort(absl::string_view authority, std::string* host, int* port) {
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("unterminated IPv6 literal");
    *host = std::string(authority.substr(0, close));
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (!absl::ConsumePrefix(&rest, ":")) return absl::InvalidArgumentError("junk after IPv6 literal");
      port_text = rest;
    }
  } else {
    const size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      *host = std::string(authority.substr(0, colon));
      port_text = authority.substr(colon + 1);
    } else {
      *host = std::string(authority);
    }
  }
  if (host->empty()) return absl::InvalidArgumentError("no host");
  if (!port_text.empty() || absl::EndsWith(authority, ":")) {
    int value = 0;
    if (!absl::SimpleAtoi(port_text, &value) || value <= 0 || value > 65535) {
      return absl::InvalidArgumentError("bad port");
    }
    *port = value;
  }
  return absl::OkStatus();
}

absl::Duration Clamp(absl::Duration d, absl::Duration lo, absl::Duration hi) {
  return std::min(std::max(d, lo), hi);
}

// httplib waits in whole milliseconds, rounding down: round up (and a millisecond more), so that a timeout
// fires at or after the deadline it stands for, never just before.
std::chrono::microseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))) + 1);
}

// A real-time wait standing for `d` of the injected clock, bounded so that it cannot overflow
// steady_clock arithmetic.
std::chrono::nanoseconds WaitTime(absl::Duration d) {
  return absl::ToChronoNanoseconds(std::min(d, absl::Hours(1)));
}

// The first address `host` resolves to, as a numeric string (an IP literal stays as it is).
absl::StatusOr<std::string> NumericAddress(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int error = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (error != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(error)));
  }
  char text[NI_MAXHOST];
  const int named =
      getnameinfo(found->ai_addr, found->ai_addrlen, text, sizeof(text), nullptr, 0, NI_NUMERICHOST);
  freeaddrinfo(found);
  if (named != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(named)));
  }
  return std::string(text);
}

}  // namespace

const std::string* HttpResponse::FindHeader(absl::string_view name) const {
  for (const HttpHeader& header : headers) {
    if (absl::EqualsIgnoreCase(header.name, name)) return &header.value;
  }
  return nullptr;
}

absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url) {
  ParsedUrl parsed;
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("not an absolute URL: \"", url, "\""));
  }
  parsed.scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported URL scheme \"", parsed.scheme, "\""));
  }
  parsed.port = parsed.scheme == "https" ? 443 : 80;
  absl::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('#'));
  const size_t target_start = rest.find_first_of("/?");
  const absl::string_view authority = rest.substr(0, target_start);
  if (absl::StrContains(authority, '@')) {
    return absl::InvalidArgumentError("URLs with credentials (user@host) are not supported");
  }
  if (absl::Status split = SplitHostPort(authority, &parsed.host, &parsed.port); !split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad host in URL \"", url, "\": ", split.message()));
  }
  parsed.target = target_start == absl::string_view::npos ? "/" : std::string(rest.substr(target_start));
  if (parsed.target[0] == '?') parsed.target.insert(0, "/");
  return parsed;
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  return out;
}

bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host, int port) {
  const std::string lower_host = absl::AsciiStrToLower(host);
  for (absl::string_view entry : absl::StrSplit(no_proxy, absl::ByAnyChar(", "), absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry == "*") return true;
    std::string entry_host;
    int entry_port = 0;
    if (!SplitHostPort(entry, &entry_host, &entry_port).ok()) continue;
    if (entry_port != 0 && entry_port != port) continue;
    absl::string_view domain = entry_host;
    absl::ConsumePrefix(&domain, "*");
    absl::ConsumePrefix(&domain, ".");
    const std::string lower_domain = absl::AsciiStrToLower(domain);
    if (lower_domain.empty()) continue;
    if (lower_host == lower_domain || absl::EndsWith(lower_host, absl::StrCat(".", lower_domain))) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::unique_ptr<HttplibTransport>> HttplibTransport::Create(HttplibTransportOptions options,
                                                                           const Clock* clock) {
  const auto parse_proxy = [](absl::string_view name, absl::string_view value) -> absl::StatusOr<Proxy> {
    Proxy proxy;
    value = absl::StripAsciiWhitespace(value);
    if (value.empty()) return proxy;
    std::string url(value);
    if (!absl::StrContains(url, "://")) url = absl::StrCat("http://", url);
    absl::string_view rest = url;
    if (!absl::ConsumePrefix(&rest, "http://")) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be an http:// proxy URL (the proxy is spoken to in plain HTTP)"));
    }
    rest = rest.substr(0, rest.find('/'));
    if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
      const absl::string_view userinfo = rest.substr(0, at);
      const size_t colon = userinfo.find(':');
      proxy.user = std::string(userinfo.substr(0, colon));
      if (colon != absl::string_view::npos) proxy.password = std::string(userinfo.substr(colon + 1));
      rest = rest.substr(at + 1);
    }
    proxy.port = 80;
    if (absl::Status split = SplitHostPort(rest, &proxy.host, &proxy.port); !split.ok()) {
      // The URL may hold a password: name the setting, not the value.
      return absl::InvalidArgumentError(absl::StrCat(name, " is not a valid proxy URL: ", split.message()));
    }
    return proxy;
  };
  auto https_proxy = parse_proxy("the HTTPS proxy", options.https_proxy);
  if (!https_proxy.ok()) return https_proxy.status();
  auto http_proxy = parse_proxy("the HTTP proxy", options.http_proxy);
  if (!http_proxy.ok()) return http_proxy.status();
  const auto readable = [](absl::string_view what, const std::string& path) {
    return path.empty() || access(path.c_str(), R_OK) == 0
               ? absl::OkStatus()
               : absl::InvalidArgumentError(absl::StrCat("the ", what, " file ", path, " cannot be read"));
  };
  FNA_RETURN_IF_ERROR(readable("CA certificate", options.ca_cert_file));
  FNA_RETURN_IF_ERROR(readable("client certificate", options.client_cert_file));
  FNA_RETURN_IF_ERROR(readable("client key", options.client_key_file));
  if (options.client_cert_file.empty() != options.client_key_file.empty()) {
    return absl::InvalidArgumentError("a client certificate needs its key, and a key its certificate");
  }
  if (options.max_connections_per_host < 1) options.max_connections_per_host = 1;
  return std::unique_ptr<HttplibTransport>(
      new HttplibTransport(std::move(options), *std::move(https_proxy), *std::move(http_proxy), clock));
}

HttplibTransport::HttplibTransport(HttplibTransportOptions options, Proxy https_proxy, Proxy http_proxy,
                                   const Clock* clock)
    : options_(std::move(options)),
      https_proxy_(std::move(https_proxy)),
      http_proxy_(std::move(http_proxy)),
      clock_(clock) {}

HttplibTransport::~HttplibTransport() = default;

int64_t HttplibTransport::clients_created() const {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_created_;
}

absl::StatusOr<std::unique_ptr<httplib::Client>> HttplibTransport::NewClient(const ParsedUrl& url) const {
  const bool https = url.scheme == "https";
  const Proxy& proxy = https ? https_proxy_ : http_proxy_;
  const bool proxied = !proxy.host.empty() && !NoProxyMatches(options_.no_proxy, url.host, url.port);
  // With tls_server_name, httplib's host is that name (SNI, verification, Host) and its address map sends
  // the connection to the URL host's address.
  const bool renamed = https && !options_.tls_server_name.empty();
  std::string address;
  if (renamed) {
    if (proxied) {
      return absl::FailedPreconditionError(absl::StrCat("cannot verify ", url.host, " as ",
                                                        options_.tls_server_name,
                                                        " through a proxy (exempt it with no_proxy)"));
    }
    FNA_ASSIGN_OR_RETURN(address, NumericAddress(url.host));
  }
  const std::string origin =
      renamed ? absl::StrCat("https://", AuthorityHost(options_.tls_server_name), ":", url.port)
              : Origin(url);
  auto client =
      https && !options_.client_cert_file.empty()
          ? std::make_unique<httplib::Client>(origin, options_.client_cert_file, options_.client_key_file)
          : std::make_unique<httplib::Client>(origin);
  if (!client->is_valid()) {
    return absl::FailedPreconditionError(absl::StrCat("the client certificate ", options_.client_cert_file,
                                                      " or its key ", options_.client_key_file,
                                                      " cannot be loaded"));
  }
  if (renamed) client->set_hostname_addr_map({{options_.tls_server_name, address}});
  client->set_keep_alive(true);
  // httplib writes a request's headers and body separately: with Nagle's algorithm the body would wait for
  // the server's delayed ACK of the headers (~40 ms per POST).
  client->set_tcp_nodelay(true);
  client->set_follow_location(false);
  client->set_url_encode(false);  // targets come encoded
  client->set_decompress(true);
  if (https) {
    client->enable_server_certificate_verification(!options_.allow_self_signed);
    if (!options_.ca_cert_file.empty()) client->set_ca_cert_path(options_.ca_cert_file);
  }
  if (proxied) {
    client->set_proxy(proxy.host, proxy.port);
    if (!proxy.user.empty()) client->set_proxy_basic_auth(proxy.user, proxy.password);
  }
  return client;
}

absl::StatusOr<std::unique_ptr<httplib::Client>> HttplibTransport::Acquire(const ParsedUrl& url,
                                                                           absl::Time deadline) {
  const std::string origin = Origin(url);
  std::unique_lock<std::mutex> lock(mu_);
  Pool& pool = pools_[origin];
  const int max = options_.max_connections_per_host;
  const auto available = [&pool, max]() { return !pool.idle.empty() || pool.open < max; };
  if (!available()) {
    const absl::Duration left = deadline - clock_->Now();
    if (left <= absl::ZeroDuration() || !released_.wait_for(lock, WaitTime(left), available)) {
      return absl::DeadlineExceededError(
          absl::StrCat("all ", max, " connections to ", url.host, " stayed busy until the deadline"));
    }
  }
  if (!pool.idle.empty()) {
    std::unique_ptr<httplib::Client> client = std::move(pool.idle.back());
    pool.idle.pop_back();
    return client;
  }
  ++pool.open;  // reserved; the client is made outside the lock (it may resolve a name)
  lock.unlock();
  absl::StatusOr<std::unique_ptr<httplib::Client>> client = NewClient(url);
  if (!client.ok()) {
    Release(origin, nullptr, /*reusable=*/false);
    return client.status();
  }
  lock.lock();
  ++clients_created_;
  return client;
}

void HttplibTransport::Release(const std::string& origin, std::unique_ptr<httplib::Client> client,
                               bool reusable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pool& pool = pools_[origin];
    if (reusable) {
      pool.idle.push_back(std::move(client));
    } else {
      --pool.open;
    }
  }
  released_.notify_all();
  client.reset();  // a discarded client closes its connection here, outside the lock
}

void StreamCanceller::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (stop_) stop_();
}

bool StreamCanceller::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool StreamCanceller::Attach(std::function<void()> stop) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return false;
  stop_ = std::move(stop);
  return true;
}

void StreamCanceller::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = nullptr;
}

absl::StatusOr<HttpResponse> HttpTransport::Stream(const HttpRequest& request,
                                                   const std::function<bool(absl::string_view data)>& on_data,
                                                   StreamCanceller* canceller) {
  if (canceller != nullptr && canceller->cancelled()) return absl::CancelledError("stream cancelled");
  FNA_ASSIGN_OR_RETURN(HttpResponse response, Send(request));
  if (response.status / 100 == 2) {
    on_data(response.body);
    response.body.clear();
  }
  return response;
}

absl::StatusOr<HttpResponse> HttplibTransport::Stream(
    const HttpRequest& request, const std::function<bool(absl::string_view data)>& on_data,
    StreamCanceller* canceller) {
  FNA_ASSIGN_OR_RETURN(const ParsedUrl url, ParseUrl(request.url));
  const absl::Duration left = request.deadline - clock_->Now();
  if (left <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before calling ", url.host));
  }
  FNA_ASSIGN_OR_RETURN(std::unique_ptr<httplib::Client> client, NewClient(url));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++clients_created_;
  }
  const absl::Duration floor = absl::Milliseconds(1);
  client->set_keep_alive(false);
  client->set_connection_timeout(ToChrono(Clamp(left, floor, options_.connect_timeout)));
  client->set_read_timeout(ToChrono(Clamp(left, floor, options_.io_timeout)));
  client->set_write_timeout(ToChrono(Clamp(left, floor, options_.io_timeout)));
  httplib::Client* raw = client.get();
  if (canceller != nullptr && !canceller->Attach([raw] { raw->stop(); })) {
    return absl::CancelledError("stream cancelled");
  }

  HttpResponse response;
  bool success = false;
  httplib::Request req;
  req.method = request.method;
  req.path = url.target;
  for (const HttpHeader& header : request.headers) req.headers.emplace(header.name, header.value);
  if (!request.content_type.empty()) req.headers.emplace("Content-Type", request.content_type);
  req.body = request.body;
  req.response_handler = [&](const httplib::Response& head) {
    response.status = head.status;
    success = head.status / 100 == 2;
    for (const auto& [name, value] : head.headers) response.headers.push_back(HttpHeader{name, value});
    return true;
  };
  req.content_receiver = [&](const char* data, size_t length, uint64_t /*offset*/, uint64_t /*total*/) {
    if (!success) {
      response.body.append(data, length);  // an error's Status body, read whole
      return true;
    }
    return on_data(absl::string_view(data, length));
  };
  httplib::Result result = client->send(req);
  if (canceller != nullptr) canceller->Detach();
  if (canceller != nullptr && canceller->cancelled()) return absl::CancelledError("stream cancelled");
  if (!result && !(result.error() == httplib::Error::Canceled && response.status != 0)) {
    const std::string what = absl::StrCat(request.method, " ", url.host, ":", url.port,
                                          " failed: ", httplib::to_string(result.error()));
    if (response.status / 100 == 2) return absl::UnavailableError(absl::StrCat(what, " (stream cut)"));
    if (clock_->Now() >= request.deadline) return absl::DeadlineExceededError(what);
    return absl::UnavailableError(what);
  }
  return response;
}

absl::StatusOr<HttpResponse> HttplibTransport::Send(const HttpRequest& request) {
  auto url = ParseUrl(request.url);
  if (!url.ok()) return url.status();
  if (clock_->Now() >= request.deadline) {
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before calling ", url->host));
  }
  auto client = Acquire(*url, request.deadline);
  if (!client.ok()) return client.status();
  const absl::Duration left = request.deadline - clock_->Now();
  if (left <= absl::ZeroDuration()) {
    Release(Origin(*url), *std::move(client), /*reusable=*/true);
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before calling ", url->host));
  }
  const absl::Duration floor = absl::Milliseconds(1);
  (*client)->set_connection_timeout(ToChrono(Clamp(left, floor, options_.connect_timeout)));
  (*client)->set_read_timeout(ToChrono(Clamp(left, floor, options_.io_timeout)));
  (*client)->set_write_timeout(ToChrono(Clamp(left, floor, options_.io_timeout)));

  httplib::Request req;
  req.method = request.method;
  // (httplib itself sends the absolute form a forward proxy needs, and tunnels HTTPS with CONNECT.)
  req.path = url->target;
  for (const HttpHeader& header : request.headers) req.headers.emplace(header.name, header.value);
  if (!request.content_type.empty()) req.headers.emplace("Content-Type", request.content_type);
  req.body = request.body;

  httplib::Result result = (*client)->send(req);
  const std::string origin = Origin(*url);
  if (!result) {
    const httplib::Error error = result.error();
    Release(origin, *std::move(client), /*reusable=*/false);
    const std::string what =
        absl::StrCat(request.method, " ", url->host, ":", url->port, " failed: ", httplib::to_string(error));
    if (error == httplib::Error::SSLServerVerification || error == httplib::Error::SSLLoadingCerts) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " (the server's TLS certificate is not trusted: check the CA file)"));
    }
    if (clock_->Now() >= request.deadline) return absl::DeadlineExceededError(what);
    return absl::UnavailableError(what);
  }
  HttpResponse response;
  response.status = result->status;
  response.body = std::move(result->body);
  response.headers.reserve(result->headers.size());
  bool close = false;
  for (const auto& [name, value] : result->headers) {
    if (absl::EqualsIgnoreCase(name, "Connection") && absl::EqualsIgnoreCase(value, "close")) close = true;
    response.headers.push_back(HttpHeader{name, value});
  }
  Release(origin, *std::move(client), /*reusable=*/!close);
  return response;
}

}  // namespace fna::http
