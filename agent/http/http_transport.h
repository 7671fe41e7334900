#ifndef FNA_AGENT_HTTP_HTTP_TRANSPORT_H_
#define FNA_AGENT_HTTP_HTTP_TRANSPORT_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace fna::http {

struct HttpHeader {
  std::string name;
  std::string value;
};

// One HTTP exchange. Header values may carry credentials (X-Neptune-Api-Token, Authorization) and the body
// may too (the OAuth refresh form): nothing here is ever logged or put into a status message.
struct HttpRequest {
  std::string method;  // "GET", "POST"
  // Absolute: "http(s)://host[:port][/path][?query]", with the query already percent-encoded (UrlEncode).
  std::string url;
  std::vector<HttpHeader> headers;
  std::string content_type;  // "" for no Content-Type (requests without a body)
  std::string body;
  // The exchange is abandoned at this time of the transport's clock (DeadlineExceeded).
  absl::Time deadline = absl::InfiniteFuture();
};

struct HttpResponse {
  int status = 0;
  std::vector<HttpHeader> headers;
  std::string body;

  // The value of the first header called `name` (case-insensitive), or nullptr.
  const std::string* FindHeader(absl::string_view name) const;
};

// Ends a stream (HttpTransport::Stream) from another thread, promptly: the connection is closed under the
// reader. Once cancelled it stays cancelled, and a stream started with it ends at once. Thread-safe.
class StreamCanceller {
 public:
  void Cancel();
  bool cancelled() const;

  // For transports: `stop` closes the stream's connection. Attach returns false (and does not keep `stop`)
  // when already cancelled; Detach forgets it before the connection goes away.
  bool Attach(std::function<void()> stop);
  void Detach();

 private:
  mutable std::mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> stop_ ABSL_GUARDED_BY(mu_);
};

// Sends HTTP requests: the seam between the Neptune protocol (neptune_client.h) and the network, so that the
// protocol is unit-tested over a fake.
//
// Thread safety: implementations are safe for concurrent use.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;

  // Sends `request` once (no retries) and returns the response, whatever its status code. Errors:
  // DeadlineExceeded when `request.deadline` passed before or during the exchange; Unavailable when the
  // server cannot be reached or the connection broke (worth retrying); FailedPrecondition when the server's
  // TLS certificate is not trusted or the CA file cannot be loaded (not worth retrying); InvalidArgument for
  // a malformed URL. Messages name the host, never a header value or the body.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;

  // Sends `request` and hands a 2xx response's body to `on_data` piece by piece as it arrives, for
  // long-lived responses (a Kubernetes watch); returning false from `on_data` ends the stream. Returns the
  // status and headers, with the body only when the status is not 2xx. `request.deadline` bounds the whole
  // exchange; `canceller` (optional) ends it from another thread (Cancelled). Errors as Send. The default
  // sends with Send and hands the whole body over at once (for fakes); the real transport streams.
  virtual absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                              const std::function<bool(absl::string_view data)>& on_data,
                                              StreamCanceller* canceller);
};

// The parts of an absolute http(s) URL.
struct ParsedUrl {
  std::string scheme;  // "http" or "https", lower case
  std::string host;    // without brackets for IPv6 literals
  int port = 0;        // the explicit port, else 80 / 443
  std::string target;  // path and query, "/" at least
};

// Parses "http(s)://host[:port][/path][?query]" (userinfo is refused; "#fragment" dropped).
absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url);

// Percent-encodes everything but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~), for a query value,
// a form value or a path segment.
std::string UrlEncode(absl::string_view text);

// Whether `host` is exempt from proxying under a NO_PROXY value: a comma- (or space-) separated list of host
// names, domain suffixes (".example.com" or "example.com" both match example.com and its subdomains), IP
// literals, an optional ":port" per entry, or "*" for every host. Case-insensitive. CIDR ranges are not
// supported (such an entry matches nothing).
bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host, int port);

struct HttplibTransportOptions {
  // TLS. A PEM file of the CAs to trust; "" uses the system's store. Certificates are verified (chain and
  // host name) unless `allow_self_signed` (NEPTUNE_ALLOW_SELF_SIGNED_CERTIFICATE), which turns verification
  // off entirely: only for test servers.
  std::string ca_cert_file;
  bool allow_self_signed = false;
  // Mutual TLS: PEM files of a client certificate (optionally followed by its chain) and of its private key,
  // both or neither, presented to every https origin (Kubernetes users authenticated by certificate).
  std::string client_cert_file;
  std::string client_key_file;
  // The name the server's certificate is verified against and sent in SNI and the Host header instead of
  // the URL's host (kubeconfig's tls-server-name), for every https origin. The connection still goes to the
  // URL's host, resolved to its first address when a connection is opened. Not through a proxy (Send is
  // FailedPrecondition for a proxied origin).
  std::string tls_server_name;

  // Proxies, as the HTTPS_PROXY, HTTP_PROXY and NO_PROXY variables give them (the caller reads the
  // environment; this class never does): "http://[user:password@]host[:port]" (port 80 by default; an
  // https:// proxy URL is refused: cpp-httplib speaks plain HTTP to proxies). HTTPS requests are tunnelled
  // with CONNECT through `https_proxy`; plain HTTP requests go through `http_proxy`. Hosts matching
  // `no_proxy` (NoProxyMatches) are reached directly.
  std::string https_proxy;
  std::string http_proxy;
  std::string no_proxy;

  // Kept-alive connections per scheme://host:port, shared by all callers. A caller that finds them all busy
  // waits for one (until its deadline).
  int max_connections_per_host = 8;
  // Upper bounds for connecting and for each read or write; each request's deadline bounds them further.
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration io_timeout = absl::Minutes(10);
};

// HttpTransport over cpp-httplib 0.11 (Debian's build, with OpenSSL).
//
// Connections: a pool per scheme://host:port of at most `max_connections_per_host` httplib clients with
// keep-alive, each used by one request at a time; a client whose request failed is discarded (its
// connection closed), a server-closed idle connection is reopened transparently by httplib. Redirects are
// not followed. Responses are decompressed (gzip, brotli).
//
// Timeouts: connecting is bounded by min(connect_timeout, time left), each socket read or write by
// min(io_timeout, time left) — per operation, so a server trickling bytes can overrun the deadline by up to
// one read timeout.
//
// Thread safety: Send is safe for concurrent use. `clock` (not owned) must outlive the transport; it only
// turns deadlines into timeouts (and bounds the wait for a free connection).
class HttplibTransport final : public HttpTransport {
 public:
  // InvalidArgument for a malformed proxy URL, a CA file or client certificate or key file that cannot be
  // read, or only one of the client certificate and key.
  static absl::StatusOr<std::unique_ptr<HttplibTransport>> Create(HttplibTransportOptions options,
                                                                  const Clock* clock);
  ~HttplibTransport() override;

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;
  // On a connection of its own (not pooled), closed when the stream ends.
  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                      const std::function<bool(absl::string_view data)>& on_data,
                                      StreamCanceller* canceller) override;

  // Connections opened so far (httplib clients created), for tests and metrics.
  int64_t clients_created() const;

 private:
  struct Proxy {
    std::string host;  // "" for none
    int port = 0;
    std::string user;
    std::string password;
  };
  struct Pool {
    std::vector<std::unique_ptr<httplib::Client>> idle;
    int open = 0;  // idle + in use
  };

  HttplibTransport(HttplibTransportOptions options, Proxy https_proxy, Proxy http_proxy, const Clock* clock);

  // A client for `url`'s origin: an idle one, a new one, or (all busy) the first one released before
  // `deadline`.
  absl::StatusOr<std::unique_ptr<httplib::Client>> Acquire(const ParsedUrl& url, absl::Time deadline);
  // Returns `client` to its pool (reusable) or closes it; a null `client` gives back a reserved slot.
  void Release(const std::string& origin, std::unique_ptr<httplib::Client> client, bool reusable);
  // FailedPrecondition when the client certificate or key does not load, or when tls_server_name would go
  // through a proxy; Unavailable when the host does not resolve (tls_server_name only).
  absl::StatusOr<std::unique_ptr<httplib::Client>> NewClient(const ParsedUrl& url) const;

  const HttplibTransportOptions options_;
  const Proxy https_proxy_;
  const Proxy http_proxy_;
  const Clock* const clock_;

  mutable std::mutex mu_;
  std::condition_variable released_;                        // a client went back to its pool or was discarded
  std::map<std::string, Pool> pools_ ABSL_GUARDED_BY(mu_);  // by origin "scheme://host:port"
  int64_t clients_created_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fna::http

#endif  // FNA_AGENT_HTTP_HTTP_TRANSPORT_H_
