#include "tests/neptune_emulator/emulator.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/neptune_emulator/swagger_validator.h"
#include "tests/neptune_emulator/tokens.h"
#include "tests/neptune_emulator/websocket.h"

#ifndef FNA_NEPTUNE_DEFAULT_SPECS_DIR
#define FNA_NEPTUNE_DEFAULT_SPECS_DIR "../shared/specs/neptune-2x"
#endif

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kControlPrefix = "/_emulator/";
constexpr absl::string_view kBackendSwaggerPath = "/api/backend/swagger.json";
constexpr absl::string_view kLeaderboardSwaggerPath = "/api/leaderboard/swagger.json";
constexpr absl::string_view kTokenSuffix = "/protocol/openid-connect/token";
constexpr absl::string_view kDiscoverySuffix = "/.well-known/openid-configuration";
constexpr absl::string_view kSignalPrefix = "/api/notifications/v1/runs/";
constexpr char kRedacted[] = "[REDACTED]";

// The TCP connection the current server thread is serving (set by ConnectionTaskQueue): its id, and whether
// its socket has been registered (see Impl::RegisterConnection).
thread_local int64_t t_connection_id = 0;
thread_local bool t_connection_registered = false;

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string upgrade_run;  // set with status 101: serve this run's signal socket (ServeSignalSocket)
};

Reply JsonReply(int status, const json& body) {
  Reply r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// The backend document's `Error` shape.
Reply ErrorReply(int status, absl::string_view message, absl::string_view error_type = "") {
  json body = {{"code", status}, {"message", std::string(message)}};
  if (!error_type.empty()) body["errorType"] = std::string(error_type);
  return JsonReply(status, body);
}

Reply BearerError(absl::string_view message) {
  Reply r = ErrorReply(401, message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"neptune\", error=\"invalid_token\"");
  return r;
}

// An OAuth2 token-endpoint error (RFC 6749 §5.2, as Keycloak words them).
Reply OAuthError(int status, absl::string_view error, absl::string_view description) {
  Reply r =
      JsonReply(status, {{"error", std::string(error)}, {"error_description", std::string(description)}});
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding ('+' is a space).
std::string FormDecode(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseForm(absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view part : absl::StrSplit(text, '&', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      out.emplace_back(FormDecode(part), "");
    } else {
      out.emplace_back(FormDecode(part.substr(0, eq)), FormDecode(part.substr(eq + 1)));
    }
  }
  return out;
}

std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form, absl::string_view name) {
  for (const auto& [key, value] : form) {
    if (key == name) return value;
  }
  return "";
}

std::string RawQuery(const httplib::Request& req) {
  const size_t q = req.target.find('?');
  return q == std::string::npos ? "" : req.target.substr(q + 1);
}

// The media type of a Content-Type header, lower case, without parameters.
std::string MediaType(absl::string_view content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
}

bool IsInternalHeader(absl::string_view name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT";
}

bool IsSecretHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Authorization") ||
         absl::EqualsIgnoreCase(name, "X-Neptune-Api-Token") || absl::EqualsIgnoreCase(name, "Cookie") ||
         absl::EqualsIgnoreCase(name, "Proxy-Authorization");
}

// The inodes of this network namespace's TCP sockets (IPv4 and IPv6) with local port `local_port`, remote
// port `remote_port` (0: any) and state `state` (the kernel's hex code, e.g. "0A" = LISTEN; "": any), read
// from /proc/net/tcp{,6}. Touches no file descriptor.
std::vector<uint64_t> TcpSocketInodes(int local_port, int remote_port, absl::string_view state) {
  std::vector<uint64_t> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() < 10) continue;
      auto port = [](absl::string_view address) {
        const size_t colon = address.rfind(':');
        uint32_t value = 0;
        if (colon == absl::string_view::npos || !absl::SimpleHexAtoi(address.substr(colon + 1), &value))
          return -1;
        return static_cast<int>(value);
      };
      uint64_t inode = 0;
      if (port(f[1]) != local_port || (remote_port > 0 && port(f[2]) != remote_port)) continue;
      if (!state.empty() && f[3] != state) continue;
      if (absl::SimpleAtoi(f[9], &inode) && inode != 0) inodes.push_back(inode);
    }
  }
  return inodes;
}

// The descriptor of this process whose /proc/self/fd link reads socket:[inode], or -1. Reads links only: it
// never operates on a descriptor that another thread might be closing.
int FdOfSocketInode(uint64_t inode) {
  const std::string target = absl::StrCat("socket:[", inode, "]");
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    std::error_code ignored;
    if (std::filesystem::read_symlink(entry.path(), ignored).string() == target) {
      int fd;
      if (absl::SimpleAtoi(entry.path().filename().string(), &fd)) return fd;
    }
  }
  return -1;
}

// httplib 0.11 listens with a backlog of 5: a burst of concurrent connects overflows it and the kernel drops
// SYNs (the client retries after 1 s). Calling listen() again on the bound socket raises the backlog. Runs
// before the server thread starts, so the listening descriptor is stable.
void RaiseListenBacklog(int local_port) {
  for (uint64_t inode : TcpSocketInodes(local_port, 0, "0A")) {
    const int fd = FdOfSocketInode(inode);
    if (fd >= 0) listen(fd, SOMAXCONN);
  }
}

const char* ActionName(Fault::Action action) {
  switch (action) {
    case Fault::Action::kRespond:
      return "respond";
    case Fault::Action::kDrop:
      return "drop";
    case Fault::Action::kDelay:
      return "delay";
  }
  return "respond";
}

Reply FaultReply(const Fault& fault) {
  Reply r;
  r.status = fault.status;
  r.content_type = fault.content_type;
  r.body =
      fault.body.empty() ? json({{"code", fault.status}, {"message", "Injected fault"}}).dump() : fault.body;
  if (!fault.retry_after.empty()) r.headers.emplace_back("Retry-After", fault.retry_after);
  return r;
}

void WriteReply(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  if (!reply.body.empty()) {
    res.set_content(reply.body, reply.content_type);
  } else {
    res.set_header("Content-Length", "0");
  }
}

bool HasToken(absl::string_view header_value, absl::string_view token) {
  for (absl::string_view t : absl::StrSplit(header_value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(t), token)) return true;
  }
  return false;
}

// RFC 6455 §4.2.1: whether a GET is a websocket opening handshake; the error reply when it is not. An
// unsupported version is 426 naming the supported one (§4.4). Origin, subprotocols and extensions are not
// checked: none is negotiated.
std::optional<Reply> CheckOpeningHandshake(const httplib::Request& req) {
  if (req.version != "HTTP/1.1") return ErrorReply(400, "An opening handshake needs HTTP/1.1");
  if (req.get_header_value("Host").empty()) return ErrorReply(400, "header.Host: required");
  if (!HasToken(req.get_header_value("Upgrade"), "websocket"))
    return ErrorReply(400, "header.Upgrade: expected \"websocket\"");
  if (!HasToken(req.get_header_value("Connection"), "Upgrade"))
    return ErrorReply(400, "header.Connection: expected \"Upgrade\"");
  const std::string version = req.get_header_value("Sec-WebSocket-Version");
  if (version.empty()) return ErrorReply(400, "header.Sec-WebSocket-Version: required");
  if (version != "13") {
    Reply r = ErrorReply(426, absl::StrCat("header.Sec-WebSocket-Version: ", version, " is not supported"));
    r.headers.emplace_back("Sec-WebSocket-Version", "13");
    return r;
  }
  if (!IsValidWebSocketKey(req.get_header_value("Sec-WebSocket-Key")))
    return ErrorReply(400, "header.Sec-WebSocket-Key: expected the base64 of 16 bytes");
  return std::nullopt;
}

// Close codes an endpoint may send (RFC 6455 §7.4; 1004-1006 and 1015 are reserved or never sent).
bool IsSendableCloseCode(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// A write to a signal socket that cannot proceed for this long fails, and the socket is closed.
constexpr int kSocketWriteTimeoutMs = 5000;
// Longest client frame payload accepted (the real client sends only control frames).
constexpr uint64_t kMaxClientPayload = 1 << 20;
constexpr ssize_t kWouldBlock = -2;

// The bytes of an upgraded connection: through its TLS session when there is one, else on the socket. The
// socket is made non-blocking. With TLS, SIGPIPE is blocked in this thread while the object lives (OpenSSL
// writes with write(2), which raises it on a connection the client has closed) and a pending one is consumed
// at the end. Used only by the thread serving the connection, while httplib waits in the handler.
class SocketIo {
 public:
  SocketIo(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    if (ssl_ != nullptr) {
      sigemptyset(&sigpipe_);
      sigaddset(&sigpipe_, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_mask_);
    }
  }
  ~SocketIo() {
    if (ssl_ == nullptr) return;
    const timespec zero = {0, 0};
    while (sigtimedwait(&sigpipe_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SocketIo(const SocketIo&) = delete;
  SocketIo& operator=(const SocketIo&) = delete;

  int fd() const { return fd_; }
  // Whether decrypted bytes wait in the TLS session (poll() cannot see them).
  bool Pending() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

  // > 0: bytes read; 0: end of stream; kWouldBlock; -1: error.
  ssize_t Read(char* buffer, size_t size) {
    if (ssl_ == nullptr) {
      const ssize_t n = recv(fd_, buffer, size, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return kWouldBlock;
      return n;
    }
    ERR_clear_error();
    const int n = SSL_read(ssl_, buffer, static_cast<int>(size));
    if (n > 0) return n;
    const int error = SSL_get_error(ssl_, n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return kWouldBlock;
    return error == SSL_ERROR_ZERO_RETURN ? 0 : -1;
  }

  // Writes all of `data`; false on an error or when no progress is possible for kSocketWriteTimeoutMs.
  bool WriteAll(absl::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      short wait_for = POLLOUT;
      if (ssl_ == nullptr) {
        const ssize_t n = send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
          done += static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
      } else {
        ERR_clear_error();
        const int n = SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done));
        if (n > 0) {
          done += static_cast<size_t>(n);
          continue;
        }
        const int error = SSL_get_error(ssl_, n);
        if (error == SSL_ERROR_WANT_READ) {
          wait_for = POLLIN;
        } else if (error != SSL_ERROR_WANT_WRITE) {
          return false;
        }
      }
      pollfd p = {fd_, wait_for, 0};
      if (poll(&p, 1, kSocketWriteTimeoutMs) <= 0) return false;
    }
    return true;
  }

 private:
  const int fd_;
  SSL* const ssl_;
  sigset_t sigpipe_;
  sigset_t old_mask_;
};

}  // namespace

std::string DefaultSpecsDir() {
  const char* env = std::getenv("FNA_NEPTUNE_SPECS");
  if (env != nullptr && *env != '\0') return env;
  return FNA_NEPTUNE_DEFAULT_SPECS_DIR;
}

std::string ApiTokenFor(absl::string_view base_url, absl::string_view api_key) {
  return EncodeApiToken(base_url, api_key);
}

class NeptuneEmulator::Impl {
 public:
  Impl(Options options, std::unique_ptr<SwaggerSpec> backend, std::unique_ptr<SwaggerSpec> leaderboard,
       RunStore::Settings store_settings)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
        backend_(std::move(backend)),
        leaderboard_(std::move(leaderboard)),
        jwt_secret_(RandomHex(32)),
        user_id_(NewUuid()),
        store_(std::move(store_settings)) {
    json backend_doc = backend_->document();
    backend_doc.erase("host");
    backend_served_ = backend_doc.dump();
    json leaderboard_doc = leaderboard_->document();
    leaderboard_doc.erase("host");
    leaderboard_served_ = leaderboard_doc.dump();
  }

  ~Impl() { Stop(); }

  absl::Status Init();
  void Stop();

  int port() const { return port_; }
  const std::string& base_url() const { return base_url_; }
  bool tls() const { return !options_.tls_cert_path.empty(); }
  std::string api_token() const { return ApiTokenFor(base_url_, options_.api_keys.front()); }

  absl::StatusOr<Project> AddProject(absl::string_view name, absl::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto project = store_.AddProject(name, key);
    if (!project.ok()) return project.status();
    return **project;
  }
  std::vector<Project> Projects() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Project> out;
    for (const Project* p : store_.Projects()) out.push_back(*p);
    return out;
  }

  int64_t AddFault(Fault fault) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.push_back({++next_fault_id_, std::move(fault)});
    return next_fault_id_;
  }
  void ClearFaults() {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.clear();
  }
  std::vector<Fault> PendingFaults() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Fault> out;
    for (const auto& entry : faults_) out.push_back(entry.fault);
    return out;
  }
  void SetOutage(Outage outage) {
    std::lock_guard<std::mutex> lock(mu_);
    outage_ = outage;
  }
  void ExpireAccessTokens(bool refresh_too) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [jti, token] : tokens_) {
      if (!token.refresh || refresh_too) token.revoked = true;
    }
  }

  std::optional<RunSnapshot> RunById(absl::string_view id) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<std::string> run = store_.ResolveRun(id, /*allow_qualified=*/true);
    if (!run.has_value()) run = store_.FindRunByShortId(id);
    if (!run.has_value()) return std::nullopt;
    return store_.Snapshot(*run);
  }
  std::optional<RunSnapshot> RunByCustomId(absl::string_view project, absl::string_view custom_id) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<std::string> run = store_.FindRunByCustomId(project, custom_id);
    if (!run.has_value()) return std::nullopt;
    return store_.Snapshot(*run);
  }
  std::vector<RunSnapshot> Runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RunSnapshot> out;
    for (const std::string& id : store_.RunIds()) out.push_back(store_.Snapshot(id));
    return out;
  }
  std::vector<RequestRecord> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<RequestRecord>(log_.begin(), log_.end());
  }
  std::map<std::string, int> RequestCounts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
  }
  int ConnectionCount() const { return connection_count_.load(); }
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    store_.ClearRuns();
    faults_.clear();
    outage_ = Outage::kNone;
    log_.clear();
    counts_.clear();
    connection_count_ = 0;
    for (auto& [id, socket] : signal_sockets_) RequestClose(*socket, kWsCloseGoingAway);
    signal_counts_.clear();
  }

  absl::StatusOr<int> SendSignal(absl::string_view run, absl::string_view text) {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<std::string> id = FindRun(run);
    if (!id.has_value()) return absl::NotFoundError(absl::StrCat("no run ", run));
    int sockets = 0;
    for (auto& [connection, socket] : signal_sockets_) {
      if (socket->run_id != *id) continue;
      socket->outbox.push_back(ServerFrame(kWsText, text));
      Wake(*socket);
      ++sockets;
    }
    return sockets;
  }
  absl::StatusOr<int> CloseSignalSockets(absl::string_view run, int code) {
    if (!IsSendableCloseCode(code))
      return absl::InvalidArgumentError(absl::StrCat("close code ", code, " may not be sent"));
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<std::string> id = FindRun(run);
    if (!id.has_value()) return absl::NotFoundError(absl::StrCat("no run ", run));
    int sockets = 0;
    for (auto& [connection, socket] : signal_sockets_) {
      if (socket->run_id != *id) continue;
      RequestClose(*socket, code);
      ++sockets;
    }
    return sockets;
  }
  absl::StatusOr<SignalSocketCounts> SignalSockets(absl::string_view run) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<std::string> id = FindRun(run);
    if (!id.has_value()) return absl::NotFoundError(absl::StrCat("no run ", run));
    auto it = signal_counts_.find(*id);
    if (it != signal_counts_.end()) return it->second;
    SignalSocketCounts none;
    none.run_id = *id;
    return none;
  }
  std::vector<SignalSocketCounts> AllSignalSockets() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<SignalSocketCounts> out;
    for (const auto& [id, counts] : signal_counts_) out.push_back(counts);
    return out;
  }

  // Called by the server's task queue for every accepted connection; returns its id.
  int64_t OnAccept() {
    ++connection_count_;
    return ++next_connection_id_;
  }
  void OnListening() {
    std::lock_guard<std::mutex> lock(mu_);
    listening_ = true;
    cv_.notify_all();
  }

  // Registers the socket of the connection this thread serves, once per connection, so that a drop fault and
  // Stop() can shut it down: the socket is found by its ports (/proc/net/tcp, then the fd link) and
  // duplicated; the duplicate is ours, used and closed only under mu_, so no other thread's descriptor is
  // ever touched (and a closed descriptor number reused elsewhere can never be hit).
  void RegisterConnection(const httplib::Request& req) {
    if (t_connection_id == 0 || t_connection_registered) return;
    t_connection_registered = true;
    int own = -1;
    for (uint64_t inode : TcpSocketInodes(req.local_port, req.remote_port, "")) {
      own = FdOfSocketInode(inode);
      if (own >= 0) break;
    }
    if (own < 0) return;
    const int dup_fd = fcntl(own, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    connection_fds_[t_connection_id] = dup_fd;
    if (stopping_) shutdown(dup_fd, SHUT_RDWR);
  }
  void UnregisterConnection(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connection_fds_.find(id);
    if (it == connection_fds_.end()) return;
    close(it->second);
    connection_fds_.erase(it);
  }

 private:
  // A server task queue that numbers the accepted connections (one task per connection) and tells the serving
  // thread which connection it is on. A pool of `threads` workers runs the tasks; a worker that serves a
  // signal socket (for as long as the socket is open) is replaced meanwhile (Park/Unpark), so open sockets
  // never take threads from the other connections. shutdown() runs the queued tasks and joins every worker.
  class ConnectionTaskQueue : public httplib::TaskQueue {
   public:
    ConnectionTaskQueue(Impl* impl, size_t threads) : impl_(impl), target_(threads) {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < target_; ++i) StartWorker();
    }
    void enqueue(std::function<void()> fn) override {
      const int64_t id = impl_->OnAccept();
      {
        std::lock_guard<std::mutex> lock(mu_);
        tasks_.push_back([impl = impl_, fn = std::move(fn), id] {
          t_connection_id = id;
          t_connection_registered = false;
          fn();  // serves the connection until it closes
          impl->UnregisterConnection(id);
          t_connection_id = 0;
        });
      }
      cv_.notify_one();
    }
    void shutdown() override {
      std::map<std::thread::id, std::thread> threads;
      {
        std::lock_guard<std::mutex> lock(mu_);
        shutdown_ = true;
        threads.swap(threads_);
      }
      cv_.notify_all();
      for (auto& [id, thread] : threads) thread.join();
    }
    // The calling worker will be busy for long: another one starts, unless the queue is shutting down.
    void Park() {
      std::lock_guard<std::mutex> lock(mu_);
      ++parked_;
      if (!shutdown_ && workers_ - parked_ < target_) StartWorker();
    }
    // The calling worker is back; one worker too many ends after its current task.
    void Unpark() {
      std::lock_guard<std::mutex> lock(mu_);
      --parked_;
    }

   private:
    // Requires mu_. Joins the workers that have ended.
    void StartWorker() {
      for (const std::thread::id& id : ended_) {
        auto it = threads_.find(id);
        it->second.join();  // returning: it holds no lock
        threads_.erase(it);
      }
      ended_.clear();
      ++workers_;
      std::thread thread([this] { Work(); });
      const std::thread::id id = thread.get_id();
      threads_.emplace(id, std::move(thread));
    }
    void Work() {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        cv_.wait(lock, [this] { return shutdown_ || !tasks_.empty(); });
        if (tasks_.empty()) break;  // shutting down, nothing left to run
        std::function<void()> task = std::move(tasks_.front());
        tasks_.pop_front();
        lock.unlock();
        task();
        lock.lock();
        if (workers_ - parked_ > target_) break;
      }
      --workers_;
      if (!shutdown_) ended_.push_back(std::this_thread::get_id());
    }

    Impl* const impl_;
    const size_t target_;
    std::mutex mu_;
    std::condition_variable cv_;  // tasks_ and shutdown_ changes
    std::deque<std::function<void()>> tasks_;
    std::map<std::thread::id, std::thread> threads_;  // every worker not yet joined
    std::vector<std::thread::id> ended_;              // workers that have ended, to join
    size_t workers_ = 0;                              // running Work()
    size_t parked_ = 0;
    bool shutdown_ = false;
  };

  // An open signal socket. Owned by the thread that serves it; registered in signal_sockets_ while open.
  struct SignalSocket {
    std::string run_id;
    int wake_fd = -1;                // eventfd, written (under mu_) when the fields below change
    std::deque<std::string> outbox;  // frames to send
    int close_code = 0;              // not 0: close with this code
  };
  struct FaultEntry {
    int64_t id;
    Fault fault;
  };
  struct TokenInfo {
    bool refresh = false;
    absl::Time expires;
    bool revoked = false;  // ExpireAccessTokens
  };
  struct Decision {
    std::optional<Fault> fault;
    Outage outage = Outage::kNone;
  };

  void Handle(const httplib::Request& req, httplib::Response& res);
  void HandleControl(const httplib::Request& req, httplib::Response& res);
  Decision TakeFault(const std::string& method, const std::string& path);
  void WaitFor(absl::Duration delay);
  void Drop(const httplib::Request& req, httplib::Response& res);
  void Log(RequestRecord record);
  Reply Process(const httplib::Request& req, RequestRecord& record);

  std::optional<Reply> CheckApiToken(absl::string_view token, RequestRecord& record) const;
  std::optional<Reply> CheckBearer(const httplib::Request& req, RequestRecord& record);
  struct TokenPair {
    std::string access;
    std::string refresh;
    std::string session;
  };
  TokenPair MintTokens(absl::string_view session);
  std::string Issuer() const { return base_url_ + kRealmPath; }

  Reply ClientConfig(const httplib::Request& req, RequestRecord& record);
  Reply ExchangeApiToken(const httplib::Request& req, RequestRecord& record);
  Reply RefreshToken(const httplib::Request& req, RequestRecord& record);
  Reply Discovery() const;
  Reply GetProject(const RequestView& view);
  Reply ListProjects(const RequestView& view);
  Reply ListOrganizations();
  Reply CreateExperiment(const json& body);
  Reply GetExperiment(const RequestView& view);
  Reply GetAttributes(const RequestView& view);
  Reply ExecuteOperations(const RequestView& view, const json& body);
  Reply Ping(const RequestView& view);
  Reply SignalUpgrade(const httplib::Request& req, RequestRecord& record);
  void ServeSignalSocket(const httplib::Request& req, httplib::Response& res, const Reply& reply,
                         RequestRecord record);
  std::string SignalLoop(SocketIo& io, SignalSocket& socket);

  // Require mu_.
  std::optional<std::string> FindRun(absl::string_view id_or_short_id) const {
    std::optional<std::string> run = store_.ResolveRun(id_or_short_id, /*allow_qualified=*/true);
    return run.has_value() ? run : store_.FindRunByShortId(id_or_short_id);
  }
  static void Wake(const SignalSocket& socket) {
    const uint64_t one = 1;
    const ssize_t written = write(socket.wake_fd, &one, sizeof(one));
    (void)written;  // cannot fail: the counter is read long before it could overflow
  }
  static void RequestClose(SignalSocket& socket, int code) {
    if (socket.close_code == 0) socket.close_code = code;
    Wake(socket);
  }

  const Options options_;
  const Clock* const clock_;
  const std::unique_ptr<SwaggerSpec> backend_;
  const std::unique_ptr<SwaggerSpec> leaderboard_;
  const std::string jwt_secret_;
  const std::string user_id_;
  std::string backend_served_;
  std::string leaderboard_served_;

  std::unique_ptr<httplib::Server> server_;
  // Created by the server thread before it accepts a connection; owned by the server.
  ConnectionTaskQueue* queue_ = nullptr;
  std::thread thread_;
  int port_ = 0;
  std::string base_url_;
  bool stopped_ = false;  // touched only by Stop(), which the owner calls once

  std::atomic<int64_t> next_connection_id_{0};
  std::atomic<int> connection_count_{0};

  // Guards everything below. A std::mutex rather than absl::Mutex: Debian's Abseil is not built with
  // ThreadSanitizer, so TSan cannot see absl::Mutex's synchronization, while it does see pthread mutexes.
  mutable std::mutex mu_;
  std::condition_variable cv_;  // stopping_ and listening_ changes
  bool stopping_ = false;
  bool listening_ = false;
  RunStore store_;
  std::map<std::string, TokenInfo> tokens_;  // by jti
  std::deque<FaultEntry> faults_;
  int64_t next_fault_id_ = 0;
  Outage outage_ = Outage::kNone;
  std::deque<RequestRecord> log_;
  int64_t next_sequence_ = 0;
  std::map<std::string, int> counts_;
  std::map<int64_t, int> connection_fds_;                    // connection id → our duplicate of its socket
  std::map<int64_t, SignalSocket*> signal_sockets_;          // by connection id: the open ones
  std::map<std::string, SignalSocketCounts> signal_counts_;  // by run UUID
};

absl::Status NeptuneEmulator::Impl::Init() {
  if (tls()) {
    server_ =
        std::make_unique<httplib::SSLServer>(options_.tls_cert_path.c_str(), options_.tls_key_path.c_str());
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (!server_->is_valid())
    return absl::InvalidArgumentError(absl::StrCat("cannot load the TLS certificate ", options_.tls_cert_path,
                                                   " or key ", options_.tls_key_path));
  const size_t threads = static_cast<size_t>(std::max(2, options_.worker_threads));
  server_->new_task_queue = [this, threads]() -> httplib::TaskQueue* {
    queue_ = new ConnectionTaskQueue(this, threads);
    OnListening();
    return queue_;
  };
  server_->set_tcp_nodelay(true);  // inherited by accepted sockets: no Nagle/delayed-ACK stalls per response
  server_->set_keep_alive_max_count(static_cast<size_t>(std::max(1, options_.keep_alive_max_requests)));
  server_->set_keep_alive_timeout(std::max<time_t>(1, absl::ToInt64Seconds(options_.keep_alive_timeout)));
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Put(".*", handler);
  server_->Patch(".*", handler);
  server_->Delete(".*", handler);
  server_->Options(".*", handler);

  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ < 0) return absl::UnavailableError(absl::StrCat("cannot bind ", options_.host));
  } else {
    if (!server_->bind_to_port(options_.host, options_.port))
      return absl::UnavailableError(absl::StrCat("cannot bind ", options_.host, ":", options_.port));
    port_ = options_.port;
  }
  RaiseListenBacklog(port_);
  std::string host = options_.host;
  if (host == "0.0.0.0" || host == "::" || host.empty()) host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  base_url_ = absl::StrCat(tls() ? "https" : "http", "://", host, ":", port_);

  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, key] : options_.projects) {
      auto added = store_.AddProject(name, key);
      if (!added.ok()) return added.status();
    }
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // new_task_queue runs inside listen_after_bind once the server is running; stop() works from then on.
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [this] { return listening_; }))
      return absl::DeadlineExceededError("the HTTP server did not start");
  }
  while (!server_->is_running()) std::this_thread::yield();
  return absl::OkStatus();
}

void NeptuneEmulator::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_ != nullptr) server_->stop();
  {
    // Kept-alive connections would otherwise hold their threads until the keep-alive timeout. Signal sockets
    // close themselves, with 1001 (going away).
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const auto& [id, fd] : connection_fds_) {
      if (signal_sockets_.count(id) == 0) shutdown(fd, SHUT_RDWR);
    }
    for (auto& [id, socket] : signal_sockets_) RequestClose(*socket, kWsCloseGoingAway);
  }
  cv_.notify_all();  // delayed requests
  if (thread_.joinable()) thread_.join();
}

NeptuneEmulator::Impl::Decision NeptuneEmulator::Impl::TakeFault(const std::string& method,
                                                                 const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[absl::StrCat(method, " ", path)];
  Decision decision;
  decision.outage = outage_;
  if (outage_ != Outage::kNone) return decision;
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    Fault& f = it->fault;
    if (!f.method.empty() && !absl::EqualsIgnoreCase(f.method, method)) continue;
    if (!absl::StartsWith(path, f.path_prefix)) continue;
    decision.fault = f;
    if (f.count > 0 && --f.count == 0) faults_.erase(it);
    break;
  }
  return decision;
}

void NeptuneEmulator::Impl::WaitFor(absl::Duration delay) {
  if (delay <= absl::ZeroDuration()) return;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(delay), [this] { return stopping_; });
}

void NeptuneEmulator::Impl::Drop(const httplib::Request& req, httplib::Response& res) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connection_fds_.find(t_connection_id);
    if (it != connection_fds_.end()) shutdown(it->second, SHUT_RDWR);
  }
  // httplib's write of this response then fails and it closes the connection.
  res.status = 500;
  res.set_header("Connection", "close");
}

void NeptuneEmulator::Impl::Log(RequestRecord record) {
  std::lock_guard<std::mutex> lock(mu_);
  record.sequence = ++next_sequence_;
  log_.push_back(std::move(record));
  while (log_.size() > std::max<size_t>(1, options_.max_request_log)) log_.pop_front();
}

void NeptuneEmulator::Impl::Handle(const httplib::Request& req, httplib::Response& res) {
  RegisterConnection(req);
  if (absl::StartsWith(req.path, kControlPrefix)) {
    HandleControl(req, res);
    return;
  }
  const bool token_endpoint = req.path == absl::StrCat(kRealmPath, kTokenSuffix);
  RequestRecord record;
  record.method = req.method;
  record.path = req.path;
  record.query = RawQuery(req);
  record.connection = t_connection_id;
  record.time = clock_->Now();
  record.auth = "none";
  for (const auto& [name, value] : req.headers) {
    if (IsInternalHeader(name)) continue;
    record.headers.emplace_back(name, IsSecretHeader(name) ? kRedacted : value);
  }
  record.body = token_endpoint && !req.body.empty() ? kRedacted : req.body;

  const Decision decision = TakeFault(req.method, req.path);
  if (decision.outage != Outage::kNone) {
    record.fault = "outage";
    if (decision.outage == Outage::kDrop) {
      Log(std::move(record));  // before the client can see the drop and retry
      Drop(req, res);
      return;
    }
    const Reply reply = ErrorReply(503, "Service unavailable");
    WriteReply(reply, res);
    record.status = reply.status;
    record.response_body = reply.body;
    Log(std::move(record));
    return;
  }
  const std::optional<Fault>& fault = decision.fault;
  if (fault.has_value()) record.fault = ActionName(fault->action);
  if (fault.has_value() && !fault->after_processing) {
    WaitFor(fault->delay);
    if (fault->action == Fault::Action::kDrop) {
      Log(std::move(record));  // before the client can see the drop and retry
      Drop(req, res);
      return;
    }
    if (fault->action == Fault::Action::kRespond) {
      const Reply reply = FaultReply(*fault);
      WriteReply(reply, res);
      record.status = reply.status;
      record.response_body = reply.body;
      Log(std::move(record));
      return;
    }
  }
  Reply reply = Process(req, record);
  if (fault.has_value() && fault->after_processing) {
    WaitFor(fault->delay);
    if (fault->action == Fault::Action::kDrop) {
      Log(std::move(record));  // before the client can see the drop and retry
      Drop(req, res);
      return;
    }
    if (fault->action == Fault::Action::kRespond) reply = FaultReply(*fault);
  }
  if (!reply.upgrade_run.empty()) {
    ServeSignalSocket(req, res, reply, std::move(record));
    return;
  }
  WriteReply(reply, res);
  record.status = reply.status;
  // Token responses carry credentials: never keep them.
  const bool secret_response = token_endpoint || req.path == "/api/backend/v1/authorization/oauth-token";
  record.response_body = secret_response && reply.status == 200 ? kRedacted : reply.body;
  Log(std::move(record));
}

Reply NeptuneEmulator::Impl::Process(const httplib::Request& req, RequestRecord& record) {
  const std::string& path = req.path;
  const std::string realm_path = kRealmPath;
  if (path == kBackendSwaggerPath || path == kLeaderboardSwaggerPath) {
    if (req.method != "GET") return ErrorReply(405, absl::StrCat("Method ", req.method, " is not allowed"));
    Reply r;
    r.body = path == kBackendSwaggerPath ? backend_served_ : leaderboard_served_;
    return r;
  }
  if (path == realm_path + std::string(kTokenSuffix)) {
    if (req.method != "POST") return ErrorReply(405, absl::StrCat("Method ", req.method, " is not allowed"));
    return RefreshToken(req, record);
  }
  if (path == realm_path + std::string(kDiscoverySuffix)) {
    if (req.method != "GET") return ErrorReply(405, absl::StrCat("Method ", req.method, " is not allowed"));
    return Discovery();
  }

  if (absl::StartsWith(path, kSignalPrefix)) return SignalUpgrade(req, record);

  const SwaggerSpec* spec = backend_.get();
  const SwaggerSpec::Operation* op = spec->FindOperation(req.method, path);
  if (op == nullptr) {
    spec = leaderboard_.get();
    op = spec->FindOperation(req.method, path);
  }
  if (op == nullptr) {
    if (backend_->HasPath(path) || leaderboard_->HasPath(path))
      return ErrorReply(405, absl::StrCat("Method ", req.method, " is not allowed for ", path));
    return ErrorReply(404, absl::StrCat("No endpoint ", req.method, " ", path));
  }

  RequestView view;
  view.method = req.method;
  view.path = path;
  view.query = ParseForm(RawQuery(req));
  for (const auto& [name, value] : req.headers) {
    if (!IsInternalHeader(name)) view.headers.emplace_back(name, value);
  }
  view.body = req.body;

  const std::string& id = op->operation_id;
  const bool api_token_auth = id == "getClientConfig" || id == "exchangeApiToken";
  if (!api_token_auth) {
    if (std::optional<Reply> denied = CheckBearer(req, record)) return *denied;
  }
  if (SwaggerSpec::HasBodyParameter(*op) && !absl::StripAsciiWhitespace(req.body).empty()) {
    const std::string media = MediaType(req.get_header_value("Content-Type"));
    std::vector<std::string> consumes = {"application/json"};
    if (op->json->contains("consumes")) consumes = (*op->json)["consumes"].get<std::vector<std::string>>();
    bool accepted = false;
    for (const std::string& c : consumes) accepted = accepted || MediaType(c) == media;
    if (!accepted)
      return ErrorReply(415, absl::StrCat("Content-Type '", media.empty() ? "(none)" : media,
                                          "' is not supported; expected ", absl::StrJoin(consumes, ", ")));
  }
  absl::StatusOr<json> body = spec->ValidateRequest(*op, view);
  if (!body.ok()) return ErrorReply(400, body.status().message());

  if (id == "getClientConfig") return ClientConfig(req, record);
  if (id == "exchangeApiToken") return ExchangeApiToken(req, record);
  if (id == "getProject") return GetProject(view);
  if (id == "listProjects") return ListProjects(view);
  if (id == "listOrganizations") return ListOrganizations();
  if (id == "createExperiment") return CreateExperiment(*body);
  if (id == "getExperiment") return GetExperiment(view);
  if (id == "getExperimentAttributes") return GetAttributes(view);
  if (id == "executeOperations") return ExecuteOperations(view, *body);
  if (id == "ping") return Ping(view);
  return ErrorReply(501, absl::StrCat("Operation ", id, " (", op->method, " ", op->path_template,
                                      ") is not implemented by the emulator"));
}

std::optional<Reply> NeptuneEmulator::Impl::CheckApiToken(absl::string_view token,
                                                          RequestRecord& record) const {
  record.auth = absl::StrCat("api-token:", Fingerprint(token));
  absl::StatusOr<DecodedApiToken> decoded = DecodeApiToken(token);
  if (!decoded.ok()) return ErrorReply(401, absl::StrCat("Invalid API token: ", decoded.status().message()));
  for (const std::string& key : options_.api_keys) {
    if (decoded->api_key == key) return std::nullopt;
  }
  return ErrorReply(401, "Invalid API token: unknown api_key");
}

std::optional<Reply> NeptuneEmulator::Impl::CheckBearer(const httplib::Request& req, RequestRecord& record) {
  const std::string header = req.get_header_value("Authorization");
  if (header.empty()) return BearerError("Missing Authorization header");
  record.auth = "bearer:invalid";
  constexpr absl::string_view kScheme = "Bearer ";
  if (!absl::StartsWithIgnoreCase(header, kScheme)) return BearerError("Authorization is not a Bearer token");
  const absl::string_view token =
      absl::StripAsciiWhitespace(absl::string_view(header).substr(kScheme.size()));
  absl::StatusOr<json> claims = VerifyJwt(token, jwt_secret_);
  if (!claims.ok()) return BearerError(absl::StrCat("Invalid access token: ", claims.status().message()));
  const std::string jti = claims->value("jti", "");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(jti);
  if (it == tokens_.end() || it->second.refresh || claims->value("typ", "") != "Bearer")
    return BearerError("Invalid access token: not an access token issued by this server");
  record.auth = absl::StrCat("bearer:", jti);
  if (it->second.revoked || clock_->Now() >= it->second.expires)
    return ErrorReply(401, "Authorization token expired", "AUTHORIZATION_TOKEN_EXPIRED");
  return std::nullopt;
}

NeptuneEmulator::Impl::TokenPair NeptuneEmulator::Impl::MintTokens(absl::string_view session) {
  const absl::Time now = clock_->Now();
  const absl::Time access_exp = now + options_.access_token_lifetime;
  const absl::Time refresh_exp = now + options_.refresh_token_lifetime;
  TokenPair pair;
  pair.session = session.empty() ? NewUuid() : std::string(session);
  const std::string access_jti = NewUuid();
  const std::string refresh_jti = NewUuid();
  const json access = {{"exp", absl::ToUnixSeconds(access_exp)},
                       {"iat", absl::ToUnixSeconds(now)},
                       {"jti", access_jti},
                       {"iss", Issuer()},
                       {"aud", "account"},
                       {"sub", user_id_},
                       {"typ", "Bearer"},
                       {"azp", options_.client_id},
                       {"session_state", pair.session},
                       {"preferred_username", options_.username},
                       {"scope", "profile email"}};
  const json refresh = {{"exp", absl::ToUnixSeconds(refresh_exp)},
                        {"iat", absl::ToUnixSeconds(now)},
                        {"jti", refresh_jti},
                        {"iss", Issuer()},
                        {"aud", Issuer()},
                        {"sub", user_id_},
                        {"typ", "Refresh"},
                        {"azp", options_.client_id},
                        {"session_state", pair.session},
                        {"scope", "profile email"}};
  pair.access = MintJwt(access, jwt_secret_);
  pair.refresh = MintJwt(refresh, jwt_secret_);
  std::lock_guard<std::mutex> lock(mu_);
  // `exp` has whole seconds: expire when the claim says so.
  tokens_[access_jti] = {false, absl::FromUnixSeconds(absl::ToUnixSeconds(access_exp)), false};
  tokens_[refresh_jti] = {true, absl::FromUnixSeconds(absl::ToUnixSeconds(refresh_exp)), false};
  return pair;
}

Reply NeptuneEmulator::Impl::ClientConfig(const httplib::Request& req, RequestRecord& record) {
  const std::string token = req.get_header_value("X-Neptune-Api-Token");
  if (!token.empty()) {
    if (std::optional<Reply> denied = CheckApiToken(token, record)) return *denied;
  } else if (options_.config_requires_api_token) {
    return ErrorReply(401, "Missing X-Neptune-Api-Token header");
  }
  const std::string api_url = options_.api_url.empty() ? base_url_ : options_.api_url;
  const std::string app_url = options_.application_url.empty() ? base_url_ : options_.application_url;
  return JsonReply(
      200,
      {{"apiUrl", api_url},
       {"applicationUrl", app_url},
       {"pyLibVersions", json::object()},
       {"security",
        {{"clientId", options_.client_id}, {"openIdDiscovery", Issuer() + std::string(kDiscoverySuffix)}}},
       {"multiPartUpload",
        {{"enabled", false},
         {"minChunkSize", 5 << 20},
         {"maxChunkSize", 1 << 30},
         {"maxChunkCount", 1000},
         {"maxSinglePartSize", 5 << 20}}},
       {"artifacts", {{"enabled", false}, {"apiVersion", 2}}},
       {"sysNameSetByBackend", false}});
}

Reply NeptuneEmulator::Impl::ExchangeApiToken(const httplib::Request& req, RequestRecord& record) {
  if (std::optional<Reply> denied = CheckApiToken(req.get_header_value("X-Neptune-Api-Token"), record))
    return *denied;
  const TokenPair pair = MintTokens("");
  return JsonReply(
      200, {{"accessToken", pair.access}, {"refreshToken", pair.refresh}, {"username", options_.username}});
}

Reply NeptuneEmulator::Impl::RefreshToken(const httplib::Request& req, RequestRecord& record) {
  record.auth = "refresh-token";
  const std::string media = MediaType(req.get_header_value("Content-Type"));
  if (media != "application/x-www-form-urlencoded")
    return OAuthError(
        415, "invalid_request",
        absl::StrCat("Content-Type must be application/x-www-form-urlencoded, got '", media, "'"));
  const auto form = ParseForm(req.body);
  const std::string grant_type = FormValue(form, "grant_type");
  if (grant_type.empty()) return OAuthError(400, "invalid_request", "Missing form parameter: grant_type");
  if (grant_type != "refresh_token")
    return OAuthError(400, "unsupported_grant_type", absl::StrCat("Unsupported grant_type ", grant_type));
  const std::string client_id = FormValue(form, "client_id");
  if (client_id.empty()) return OAuthError(401, "invalid_client", "Missing form parameter: client_id");
  if (client_id != options_.client_id)
    return OAuthError(401, "invalid_client", "Invalid client or Invalid client credentials");
  const std::string refresh = FormValue(form, "refresh_token");
  if (refresh.empty()) return OAuthError(400, "invalid_request", "Missing parameter: refresh_token");
  absl::StatusOr<json> claims = VerifyJwt(refresh, jwt_secret_);
  if (!claims.ok() || claims->value("typ", "") != "Refresh")
    return OAuthError(400, "invalid_grant", "Invalid refresh token");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(claims->value("jti", ""));
    if (it == tokens_.end() || !it->second.refresh)
      return OAuthError(400, "invalid_grant", "Invalid refresh token");
    if (it->second.revoked || clock_->Now() >= it->second.expires)
      return OAuthError(400, "invalid_grant", "Token is not active");
  }
  if (claims->value("azp", "") != client_id)
    return OAuthError(400, "invalid_grant",
                      "Invalid refresh token. Token client and authorized client don't match");
  const TokenPair pair = MintTokens(claims->value("session_state", ""));
  Reply r = JsonReply(200, {{"access_token", pair.access},
                            {"expires_in", absl::ToInt64Seconds(options_.access_token_lifetime)},
                            {"refresh_expires_in", absl::ToInt64Seconds(options_.refresh_token_lifetime)},
                            {"refresh_token", pair.refresh},
                            {"token_type", "Bearer"},
                            {"not-before-policy", 0},
                            {"session_state", pair.session},
                            {"scope", "profile email"}});
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

Reply NeptuneEmulator::Impl::Discovery() const {
  const std::string iss = Issuer();
  return JsonReply(200, {{"issuer", iss},
                         {"authorization_endpoint", iss + "/protocol/openid-connect/auth"},
                         {"token_endpoint", iss + std::string(kTokenSuffix)},
                         {"jwks_uri", iss + "/protocol/openid-connect/certs"},
                         {"grant_types_supported", {"refresh_token"}},
                         {"response_types_supported", {"code"}},
                         {"subject_types_supported", {"public"}},
                         {"id_token_signing_alg_values_supported", {"HS256"}}});
}

namespace {

std::string QueryValue(const RequestView& view, absl::string_view name) {
  for (const auto& [key, value] : view.query) {
    if (key == name) return value;
  }
  return "";
}

Reply ExperimentNotFound(absl::string_view id) {
  return ErrorReply(404, absl::StrCat("Experiment ", id, " not found"), "EXPERIMENT_NOT_FOUND");
}

}  // namespace

Reply NeptuneEmulator::Impl::GetProject(const RequestView& view) {
  const std::string identifier = QueryValue(view, "projectIdentifier");
  std::lock_guard<std::mutex> lock(mu_);
  const Project* project = store_.FindProject(identifier);
  if (project == nullptr) return ErrorReply(404, absl::StrCat("Project ", identifier, " not found"));
  return JsonReply(200, RunStore::ProjectJson(*project));
}

Reply NeptuneEmulator::Impl::ListProjects(const RequestView& view) {
  const std::string organization = QueryValue(view, "organizationIdentifier");
  const std::string search = absl::AsciiStrToLower(QueryValue(view, "searchTerm"));
  int64_t offset = 0, limit = 100;
  if (std::string v = QueryValue(view, "offset"); !v.empty()) (void)absl::SimpleAtoi(v, &offset);
  if (std::string v = QueryValue(view, "limit"); !v.empty()) (void)absl::SimpleAtoi(v, &limit);
  std::lock_guard<std::mutex> lock(mu_);
  const std::vector<const Project*> all = store_.Projects();
  std::vector<const Project*> matching;
  for (const Project* p : all) {
    if (!organization.empty() && p->workspace != organization && p->organization_id != organization) continue;
    if (!search.empty() && !absl::StrContains(absl::AsciiStrToLower(p->name), search)) continue;
    matching.push_back(p);
  }
  json entries = json::array();
  for (int64_t i = std::max<int64_t>(0, offset);
       i < static_cast<int64_t>(matching.size()) &&
       static_cast<int64_t>(entries.size()) < std::max<int64_t>(0, limit);
       ++i) {
    entries.push_back(store_.ProjectWithRoleJson(*matching[i]));
  }
  return JsonReply(200, {{"entries", std::move(entries)},
                         {"matchingItemCount", matching.size()},
                         {"totalItemCount", all.size()}});
}

Reply NeptuneEmulator::Impl::ListOrganizations() {
  std::lock_guard<std::mutex> lock(mu_);
  return JsonReply(200, store_.OrganizationsJson());
}

Reply NeptuneEmulator::Impl::CreateExperiment(const json& body) {
  auto present = [&body](const char* key) { return body.contains(key) && !body[key].is_null(); };
  if (!present("projectIdentifier")) return ErrorReply(400, "body.projectIdentifier: required");
  if (!present("type")) return ErrorReply(400, "body.type: required");
  if (body["type"] != "run")
    return ErrorReply(400,
                      absl::StrCat("body.type: the emulator creates runs only, got ", body["type"].dump()));
  std::optional<std::string> custom_id;
  if (present("customId")) {
    custom_id = body["customId"].get<std::string>();
    if (custom_id->empty()) return ErrorReply(400, "body.customId: must not be empty");
    if (custom_id->size() > options_.max_custom_id_length)
      return ErrorReply(400, absl::StrCat("body.customId: longer than ", options_.max_custom_id_length,
                                          " characters (", custom_id->size(), ")"));
  }
  const std::string identifier = body["projectIdentifier"].get<std::string>();
  std::lock_guard<std::mutex> lock(mu_);
  const Project* project = store_.FindProject(identifier);
  if (project == nullptr) return ErrorReply(404, absl::StrCat("Project ", identifier, " not found"));
  for (const char* key : {"parentId", "projectId"}) {
    if (present(key) && body[key] != project->id)
      return ErrorReply(400, absl::StrCat("body.", key, ": must be the project's id ", project->id,
                                          " for a run, got ", body[key].dump()));
  }
  const RunStore::CreateResult created = store_.CreateRun(*project, custom_id);
  return JsonReply(200, store_.ExperimentJson(created.run_id));
}

Reply NeptuneEmulator::Impl::GetExperiment(const RequestView& view) {
  const std::string id = QueryValue(view, "experimentId");
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> run = store_.ResolveRun(id, /*allow_qualified=*/true);
  if (!run.has_value()) return ExperimentNotFound(id);
  return JsonReply(200, store_.ExperimentJson(*run));
}

Reply NeptuneEmulator::Impl::GetAttributes(const RequestView& view) {
  const std::string id = QueryValue(view, "experimentId");
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> run = store_.ResolveRun(id, /*allow_qualified=*/false);
  if (!run.has_value()) return ExperimentNotFound(id);
  return JsonReply(200, store_.ExperimentAttributesJson(*run));
}

Reply NeptuneEmulator::Impl::ExecuteOperations(const RequestView& view, const json& body) {
  std::string id = QueryValue(view, "experimentId");
  if (id.empty()) {
    id = QueryValue(view, "holderIdentifier");
    if (id.empty())
      return ErrorReply(400, "query.experimentId: required (or holderIdentifier with holderType=experiment)");
    const std::string holder_type = QueryValue(view, "holderType");
    if (holder_type != "experiment")
      return ErrorReply(
          400, absl::StrCat("query.holderType: expected \"experiment\", got ", json(holder_type).dump()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status shape = store_.CheckOperations(body); !shape.ok()) return ErrorReply(400, shape.message());
  std::optional<std::string> run = store_.ResolveRun(id, /*allow_qualified=*/false);
  if (!run.has_value()) return ExperimentNotFound(id);
  json errors = json::array();
  for (const OperationError& e : store_.Execute(*run, body))
    errors.push_back({{"errorType", e.type}, {"errorDescription", e.description}});
  return JsonReply(200, errors);
}

Reply NeptuneEmulator::Impl::Ping(const RequestView& view) {
  const std::string id = QueryValue(view, "experimentId");
  if (id.empty()) return ErrorReply(400, "query.experimentId: required");
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> run = store_.ResolveRun(id, /*allow_qualified=*/false);
  if (!run.has_value()) return ExperimentNotFound(id);
  store_.Ping(*run);
  Reply r;
  r.content_type.clear();
  return r;
}

Reply NeptuneEmulator::Impl::SignalUpgrade(const httplib::Request& req, RequestRecord& record) {
  const std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(req.path).substr(kSignalPrefix.size()), '/');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2] != "signal")
    return ErrorReply(404, absl::StrCat("No endpoint ", req.method, " ", req.path));
  if (req.method != "GET") return ErrorReply(405, absl::StrCat("Method ", req.method, " is not allowed"));
  if (std::optional<Reply> denied = CheckBearer(req, record)) return *denied;
  if (std::optional<Reply> bad = CheckOpeningHandshake(req)) return *bad;
  std::lock_guard<std::mutex> lock(mu_);
  const Project* project = store_.FindProject(parts[0]);
  if (project == nullptr) return ErrorReply(404, absl::StrCat("Project ", parts[0], " not found"));
  std::optional<std::string> run = store_.ResolveRun(parts[1], /*allow_qualified=*/false);
  if (!run.has_value() || store_.Snapshot(*run).project_id != project->id)
    return ExperimentNotFound(parts[1]);
  Reply r;
  r.status = 101;
  r.content_type.clear();
  r.headers = {{"Upgrade", "websocket"},
               {"Connection", "Upgrade"},
               {"Sec-WebSocket-Accept", WebSocketAccept(req.get_header_value("Sec-WebSocket-Key"))}};
  r.upgrade_run = *run;
  return r;
}

// httplib cannot switch protocols, so the handler takes the connection over: it writes the 101 and the
// frames itself (on our duplicate of the socket, or through the connection's TLS session) and returns only
// when the socket closes. The client sends nothing after its handshake before the 101 (RFC 6455 §4.1), so
// httplib has buffered nothing of the websocket. The socket is then shut down, so that the response httplib
// writes after the handler fails and it closes the connection, as with Drop().
void NeptuneEmulator::Impl::ServeSignalSocket(const httplib::Request& req, httplib::Response& res,
                                              const Reply& reply, RequestRecord record) {
  res.status = 500;
  res.set_header("Connection", "close");
  SignalSocket socket;
  socket.run_id = reply.upgrade_run;
  socket.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connection_fds_.find(t_connection_id);
    if (it != connection_fds_.end() && socket.wake_fd >= 0 && !stopping_) {
      fd = it->second;
      signal_sockets_[t_connection_id] = &socket;
      SignalSocketCounts& counts = signal_counts_[socket.run_id];
      counts.run_id = socket.run_id;
      ++counts.opened;
      ++counts.open;
    }
  }
  if (fd < 0) {
    if (socket.wake_fd >= 0) close(socket.wake_fd);
    const Reply error = ErrorReply(503, "The signal socket cannot be served");
    WriteReply(error, res);
    record.status = error.status;
    record.response_body = error.body;
    Log(std::move(record));
    return;
  }
  record.status = reply.status;
  Log(std::move(record));

  queue_->Park();
  std::string goodbye;  // the Close frame to end with, if any
  {
    SocketIo io(fd, tls() ? const_cast<SSL*>(req.ssl) : nullptr);
    std::string head = "HTTP/1.1 101 Switching Protocols\r\n";
    for (const auto& [name, value] : reply.headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
    head += "\r\n";
    if (io.WriteAll(head)) goodbye = SignalLoop(io, socket);
    {
      std::lock_guard<std::mutex> lock(mu_);
      signal_sockets_.erase(t_connection_id);
      auto it = signal_counts_.find(socket.run_id);  // gone after a Reset
      if (it != signal_counts_.end()) --it->second.open;
    }
    if (!goodbye.empty()) io.WriteAll(goodbye);
    shutdown(fd, SHUT_RDWR);
  }
  close(socket.wake_fd);
  queue_->Unpark();
}

// Serves an open signal socket: sends what SendSignal queues, answers pings, and returns the Close frame to
// end with: the echo of the client's Close, the code of a requested close (1001 when the emulator stops),
// 1002 or 1009 for a bad client frame, or "" when the connection is lost. Data frames from the client are
// ignored.
std::string NeptuneEmulator::Impl::SignalLoop(SocketIo& io, SignalSocket& socket) {
  std::string input;
  char buffer[4096];
  for (;;) {
    std::deque<std::string> frames;
    int close_code = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      frames.swap(socket.outbox);
      close_code = socket.close_code;
    }
    for (const std::string& frame : frames) {
      if (!io.WriteAll(frame)) return "";
    }
    if (close_code != 0) return CloseFrame(close_code);
    if (!io.Pending()) {
      pollfd fds[2] = {{io.fd(), POLLIN, 0}, {socket.wake_fd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return "";
      }
      if (fds[1].revents != 0) {
        uint64_t count;
        const ssize_t drained = read(socket.wake_fd, &count, sizeof(count));
        (void)drained;  // EAGAIN when already drained: nothing to do
      }
      if (fds[0].revents == 0) continue;
    }
    const ssize_t n = io.Read(buffer, sizeof(buffer));
    if (n == kWouldBlock) continue;
    if (n <= 0) return "";  // the client is gone
    input.append(buffer, static_cast<size_t>(n));
    for (;;) {
      ClientFrame frame;
      size_t used = 0;
      const FrameParse parsed = ParseClientFrame(input, kMaxClientPayload, &frame, &used);
      if (parsed == FrameParse::kIncomplete) break;
      if (parsed == FrameParse::kProtocolError) return CloseFrame(kWsCloseProtocolError);
      if (parsed == FrameParse::kTooBig) return CloseFrame(kWsCloseTooBig);
      input.erase(0, used);
      if (frame.opcode == kWsClose) {
        if (frame.payload.size() == 1) return CloseFrame(kWsCloseProtocolError);
        return ServerFrame(kWsClose, frame.payload.substr(0, 2));  // echo the code (§5.5.1)
      }
      if (frame.opcode == kWsPing && !io.WriteAll(ServerFrame(kWsPong, frame.payload))) return "";
    }
  }
}

void NeptuneEmulator::Impl::HandleControl(const httplib::Request& req, httplib::Response& res) {
  const absl::string_view what = absl::string_view(req.path).substr(kControlPrefix.size());
  const std::string& m = req.method;
  auto reply = [&res](int status, const json& body) { WriteReply(JsonReply(status, body), res); };
  auto bad = [&res](int status, absl::string_view message) { WriteReply(ErrorReply(status, message), res); };
  json body = json::object();
  if (!absl::StripAsciiWhitespace(req.body).empty()) {
    body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) return bad(400, "body: expected a JSON object");
  }

  if (what == "health" && m == "GET") return reply(200, {{"ok", true}});
  if (what == "projects" && m == "GET") {
    json out = json::array();
    for (const Project& p : Projects()) out.push_back(RunStore::ProjectJson(p));
    return reply(200, out);
  }
  if (what == "projects" && m == "POST") {
    if (!body.contains("project") || !body["project"].is_string())
      return bad(400, "body.project: required string");
    const std::string key =
        body.contains("key") && body["key"].is_string() ? body["key"].get<std::string>() : "";
    absl::StatusOr<Project> project = AddProject(body["project"].get<std::string>(), key);
    if (!project.ok())
      return bad(project.status().code() == absl::StatusCode::kAlreadyExists ? 409 : 400,
                 project.status().message());
    return reply(200, RunStore::ProjectJson(*project));
  }
  if (what == "faults" && m == "POST") {
    absl::StatusOr<Fault> fault = FaultFromJson(body);
    if (!fault.ok()) return bad(400, fault.status().message());
    return reply(200, {{"id", AddFault(*std::move(fault))}});
  }
  if (what == "faults" && m == "GET") {
    json out = json::array();
    for (const Fault& f : PendingFaults()) out.push_back(FaultToJson(f));
    return reply(200, out);
  }
  if (what == "faults" && m == "DELETE") {
    ClearFaults();
    return reply(200, json::object());
  }
  if (what == "outage" && (m == "PUT" || m == "POST")) {
    const std::string mode = body.value("mode", "");
    if (mode == "none") {
      SetOutage(Outage::kNone);
    } else if (mode == "unavailable") {
      SetOutage(Outage::kUnavailable);
    } else if (mode == "drop") {
      SetOutage(Outage::kDrop);
    } else {
      return bad(400, "body.mode: expected one of \"none\", \"unavailable\", \"drop\"");
    }
    return reply(200, json::object());
  }
  if (what == "tokens/expire" && m == "POST") {
    const json& refresh = body.contains("refreshTokens") ? body["refreshTokens"] : json(false);
    if (!refresh.is_boolean()) return bad(400, "body.refreshTokens: expected boolean");
    ExpireAccessTokens(refresh.get<bool>());
    return reply(200, json::object());
  }
  if (what == "runs" && m == "GET") {
    json out = json::array();
    for (const RunSnapshot& run : Runs()) {
      out.push_back(
          {{"id", run.id}, {"shortId", run.short_id}, {"customId", run.custom_id}, {"project", run.project}});
    }
    return reply(200, out);
  }
  if (what == "run" && m == "GET") {
    std::optional<RunSnapshot> run;
    if (req.has_param("id")) {
      run = RunById(req.get_param_value("id"));
    } else if (req.has_param("project") && req.has_param("customId")) {
      run = RunByCustomId(req.get_param_value("project"), req.get_param_value("customId"));
    } else {
      return bad(400, "query: id, or project and customId, required");
    }
    if (!run.has_value()) return bad(404, "no such run");
    return reply(200, RunSnapshotToJson(*run));
  }
  if (what == "requests" && m == "GET") {
    json records = json::array();
    for (const RequestRecord& r : Requests()) records.push_back(RequestRecordToJson(r));
    json counts = json::object();
    for (const auto& [key, n] : RequestCounts()) counts[key] = n;
    return reply(200, {{"requests", std::move(records)},
                       {"counts", std::move(counts)},
                       {"connections", ConnectionCount()}});
  }
  auto counts_json = [](const SignalSocketCounts& c) {
    return json({{"run", c.run_id}, {"opened", c.opened}, {"open", c.open}});
  };
  if (what == "signals" && m == "GET") {
    if (!req.has_param("run")) {
      json out = json::array();
      for (const SignalSocketCounts& c : AllSignalSockets()) out.push_back(counts_json(c));
      return reply(200, out);
    }
    absl::StatusOr<SignalSocketCounts> counts = SignalSockets(req.get_param_value("run"));
    if (!counts.ok()) return bad(404, counts.status().message());
    return reply(200, counts_json(*counts));
  }
  if ((what == "signals" || what == "signals/close") && m == "POST") {
    const bool close = what == "signals/close";
    for (const auto& item : body.items()) {
      const bool known = item.key() == "run" ||
                         (close ? item.key() == "code"
                                : item.key() == "type" || item.key() == "seconds" || item.key() == "text");
      if (!known) return bad(400, absl::StrCat("body.", item.key(), ": unknown field"));
    }
    if (!body.contains("run") || !body["run"].is_string()) return bad(400, "body.run: required string");
    const std::string run = body["run"];
    absl::StatusOr<int> sockets;
    if (close) {
      const json code = body.value("code", json(kWsCloseNormal));
      if (!code.is_number_integer() || code.get<int64_t>() < 0 || code.get<int64_t>() > 0xFFFF)
        return bad(400, absl::StrCat("body.code: expected a close code, got ", code.dump()));
      sockets = CloseSignalSockets(run, code.get<int>());
    } else if (body.contains("text") == body.contains("type")) {
      return bad(400, "body: exactly one of type and text required");
    } else if (body.contains("text")) {
      if (!body["text"].is_string()) return bad(400, "body.text: expected string");
      if (body.contains("seconds")) return bad(400, "body.seconds: only with type");
      sockets = SendSignal(run, body["text"].get<std::string>());
    } else {
      const json& type = body["type"];
      if (type != kStopSignal && type != kAbortSignal)
        return bad(400, absl::StrCat("body.type: expected \"", kStopSignal, "\" or \"", kAbortSignal,
                                     "\", got ", type.dump()));
      const json seconds = body.value("seconds", json());
      if (!seconds.is_null() && !(seconds.is_number() && seconds.get<double>() >= 0))
        return bad(400, "body.seconds: expected a non-negative number");
      sockets = SendSignal(run, SignalMessage(type.get<std::string>(), seconds));
    }
    if (!sockets.ok())
      return bad(sockets.status().code() == absl::StatusCode::kNotFound ? 404 : 400,
                 sockets.status().message());
    return reply(200, {{"sockets", *sockets}});
  }
  if (what == "reset" && m == "POST") {
    Reset();
    return reply(200, json::object());
  }
  return bad(404, absl::StrCat("No control endpoint ", m, " ", req.path));
}

// NeptuneEmulator: forwards to Impl.

NeptuneEmulator::NeptuneEmulator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NeptuneEmulator::~NeptuneEmulator() = default;

absl::StatusOr<std::unique_ptr<NeptuneEmulator>> NeptuneEmulator::Start(Options options) {
  if (options.specs_dir.empty()) options.specs_dir = DefaultSpecsDir();
  if (options.tls_cert_path.empty() != options.tls_key_path.empty())
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  if (options.api_keys.empty()) return absl::InvalidArgumentError("at least one api_key must be accepted");
  auto backend = SwaggerSpec::Load(options.specs_dir + "/backend.json");
  if (!backend.ok()) return backend.status();
  auto leaderboard = SwaggerSpec::Load(options.specs_dir + "/leaderboard.json");
  if (!leaderboard.ok()) return leaderboard.status();
  RunStore::Settings settings;
  settings.clock = options.clock;
  settings.idle_after = options.idle_after;
  settings.owner = options.username;
  const json* operation = (*leaderboard)->Definition("Operation");
  if (operation == nullptr || !operation->contains("properties"))
    return absl::InvalidArgumentError("leaderboard.json has no Operation definition");
  for (const auto& [key, unused] : (*operation)["properties"].items()) {
    if (key != "path") settings.operation_keys.push_back(key);
  }
  auto impl = std::make_unique<Impl>(std::move(options), *std::move(backend), *std::move(leaderboard),
                                     std::move(settings));
  if (absl::Status status = impl->Init(); !status.ok()) return status;
  return std::unique_ptr<NeptuneEmulator>(new NeptuneEmulator(std::move(impl)));
}

int NeptuneEmulator::port() const { return impl_->port(); }
std::string NeptuneEmulator::base_url() const { return impl_->base_url(); }
std::string NeptuneEmulator::api_token() const { return impl_->api_token(); }
bool NeptuneEmulator::tls() const { return impl_->tls(); }
absl::StatusOr<Project> NeptuneEmulator::AddProject(absl::string_view qualified_name, absl::string_view key) {
  return impl_->AddProject(qualified_name, key);
}
std::vector<Project> NeptuneEmulator::Projects() const { return impl_->Projects(); }
int64_t NeptuneEmulator::AddFault(Fault fault) { return impl_->AddFault(std::move(fault)); }
int64_t NeptuneEmulator::FailNext(absl::string_view path_prefix, int count, int status,
                                  absl::string_view retry_after) {
  Fault fault;
  fault.path_prefix = std::string(path_prefix);
  fault.count = count;
  fault.status = status;
  fault.retry_after = std::string(retry_after);
  return impl_->AddFault(std::move(fault));
}
void NeptuneEmulator::ClearFaults() { impl_->ClearFaults(); }
std::vector<Fault> NeptuneEmulator::PendingFaults() const { return impl_->PendingFaults(); }
void NeptuneEmulator::SetOutage(Outage outage) { impl_->SetOutage(outage); }
void NeptuneEmulator::ExpireAccessTokens(bool refresh_tokens_too) {
  impl_->ExpireAccessTokens(refresh_tokens_too);
}
std::optional<RunSnapshot> NeptuneEmulator::RunById(absl::string_view id_or_short_id) const {
  return impl_->RunById(id_or_short_id);
}
std::optional<RunSnapshot> NeptuneEmulator::RunByCustomId(absl::string_view project,
                                                          absl::string_view custom_id) const {
  return impl_->RunByCustomId(project, custom_id);
}
std::vector<RunSnapshot> NeptuneEmulator::Runs() const { return impl_->Runs(); }
std::vector<RequestRecord> NeptuneEmulator::Requests() const { return impl_->Requests(); }
std::map<std::string, int> NeptuneEmulator::RequestCounts() const { return impl_->RequestCounts(); }
int NeptuneEmulator::RequestCount(absl::string_view method, absl::string_view path) const {
  const std::map<std::string, int> counts = impl_->RequestCounts();
  auto it = counts.find(absl::StrCat(method, " ", path));
  return it == counts.end() ? 0 : it->second;
}
int NeptuneEmulator::ConnectionCount() const { return impl_->ConnectionCount(); }
void NeptuneEmulator::Reset() { impl_->Reset(); }
absl::StatusOr<int> NeptuneEmulator::SendSignal(absl::string_view run, absl::string_view text) {
  return impl_->SendSignal(run, text);
}
absl::StatusOr<int> NeptuneEmulator::CloseSignalSockets(absl::string_view run, int code) {
  return impl_->CloseSignalSockets(run, code);
}
absl::StatusOr<SignalSocketCounts> NeptuneEmulator::SignalSockets(absl::string_view run) const {
  return impl_->SignalSockets(run);
}
std::vector<SignalSocketCounts> NeptuneEmulator::AllSignalSockets() const {
  return impl_->AllSignalSockets();
}

std::string SignalMessage(absl::string_view type, const nlohmann::json& seconds) {
  nlohmann::ordered_json message = {{"type", std::string(type)}, {"body", nlohmann::ordered_json::object()}};
  if (!seconds.is_null()) message["body"]["seconds"] = seconds;
  return message.dump();
}

// JSON forms.

nlohmann::json FaultToJson(const Fault& fault) {
  return {{"pathPrefix", fault.path_prefix},
          {"method", fault.method},
          {"count", fault.count},
          {"action", ActionName(fault.action)},
          {"status", fault.status},
          {"body", fault.body},
          {"contentType", fault.content_type},
          {"retryAfter", fault.retry_after},
          {"delayMs", absl::ToInt64Milliseconds(fault.delay)},
          {"afterProcessing", fault.after_processing}};
}

absl::StatusOr<Fault> FaultFromJson(const nlohmann::json& in) {
  if (!in.is_object()) return absl::InvalidArgumentError("fault: expected a JSON object");
  Fault f;
  for (const auto& item : in.items()) {
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    auto want = [&](bool ok, const char* type) -> absl::Status {
      if (ok) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("body.", key, ": expected ", type, ", got ", value.dump()));
    };
    absl::Status s;
    if (key == "pathPrefix") {
      if ((s = want(value.is_string(), "string")).ok()) f.path_prefix = value.get<std::string>();
    } else if (key == "method") {
      if ((s = want(value.is_string(), "string")).ok())
        f.method = absl::AsciiStrToUpper(value.get<std::string>());
    } else if (key == "count") {
      if ((s = want(value.is_number_integer(), "integer")).ok()) f.count = value.get<int>();
    } else if (key == "action") {
      const std::string a = value.is_string() ? value.get<std::string>() : "";
      if (a == "respond") {
        f.action = Fault::Action::kRespond;
      } else if (a == "drop") {
        f.action = Fault::Action::kDrop;
      } else if (a == "delay") {
        f.action = Fault::Action::kDelay;
      } else {
        s = want(false, "one of \"respond\", \"drop\", \"delay\"");
      }
    } else if (key == "status") {
      s = want(value.is_number_integer() && value.get<int64_t>() >= 100 && value.get<int64_t>() <= 599,
               "an HTTP status (100-599)");
      if (s.ok()) f.status = value.get<int>();
    } else if (key == "body") {
      if ((s = want(value.is_string(), "string")).ok()) f.body = value.get<std::string>();
    } else if (key == "contentType") {
      if ((s = want(value.is_string(), "string")).ok()) f.content_type = value.get<std::string>();
    } else if (key == "retryAfter") {
      if ((s = want(value.is_string() || value.is_number_integer(), "string")).ok())
        f.retry_after = value.is_string() ? value.get<std::string>() : value.dump();
    } else if (key == "delayMs") {
      s = want(value.is_number_integer() && value.get<int64_t>() >= 0, "a non-negative integer");
      if (s.ok()) f.delay = absl::Milliseconds(value.get<int64_t>());
    } else if (key == "afterProcessing") {
      if ((s = want(value.is_boolean(), "boolean")).ok()) f.after_processing = value.get<bool>();
    } else {
      s = absl::InvalidArgumentError(absl::StrCat("body.", key, ": unknown fault field"));
    }
    if (!s.ok()) return s;
  }
  return f;
}

nlohmann::json RunSnapshotToJson(const RunSnapshot& run) {
  json attributes = json::object();
  for (const auto& [path, attr] : run.attributes) {
    json a = {{"type", attr.type}, {"value", attr.value}};
    if (!attr.config.is_null()) a["config"] = attr.config;
    attributes[path] = std::move(a);
  }
  return {{"id", run.id},
          {"shortId", run.short_id},
          {"customId", run.custom_id},
          {"project", run.project},
          {"projectId", run.project_id},
          {"creationTime", FormatDateTime(run.creation_time)},
          {"pingTime", FormatDateTime(run.ping_time)},
          {"attributes", std::move(attributes)}};
}

nlohmann::json RequestRecordToJson(const RequestRecord& r) {
  json headers = json::array();
  for (const auto& [name, value] : r.headers) headers.push_back({name, value});
  return {{"sequence", r.sequence},
          {"method", r.method},
          {"path", r.path},
          {"query", r.query},
          {"status", r.status},
          {"fault", r.fault},
          {"connection", r.connection},
          {"auth", r.auth},
          {"headers", std::move(headers)},
          {"body", r.body},
          {"responseBody", r.response_body},
          {"time", FormatDateTime(r.time)}};
}

}  // namespace fna::neptune_emulator
