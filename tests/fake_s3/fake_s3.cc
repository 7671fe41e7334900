#include "tests/fake_s3/fake_s3.h"

#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fna::fake_s3 {
namespace {

constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
constexpr char kStsNamespace[] = "https://sts.amazonaws.com/doc/2011-06-15/";

// --- SigV4 as a service checks it. Written apart from the agent's signer (agent/storage/sigv4.cc), so that a
// shared mistake cannot make both sides agree.

std::string LowerHex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xF]);
  }
  return out;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return LowerHex(digest, sizeof(digest));
}

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

// Percent-decoding of a raw path or query component; a '%' not followed by two hex digits stays as it is.
std::string Decode(absl::string_view text) {
  const auto hex = [](char c) {
    return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && absl::ascii_isxdigit(text[i + 1]) &&
        absl::ascii_isxdigit(text[i + 2])) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// AWS's UriEncode: everything but unreserved characters (and '/' in paths) as %XX with upper-case hex.
std::string Encode(absl::string_view text, bool keep_slash) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", byte);
    }
  }
  return out;
}

std::string CanonicalQuery(absl::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view part : absl::StrSplit(raw_query, '&', absl::SkipEmpty())) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    pairs.emplace_back(Encode(Decode(kv.first), false), Encode(Decode(kv.second), false));
  }
  std::sort(pairs.begin(), pairs.end());
  std::vector<std::string> joined;
  for (const auto& [name, value] : pairs) joined.push_back(absl::StrCat(name, "=", value));
  return absl::StrJoin(joined, "&");
}

std::string TrimAndCollapse(absl::string_view value) {
  std::vector<absl::string_view> words =
      absl::StrSplit(absl::StripAsciiWhitespace(value), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  return absl::StrJoin(words, " ");
}

struct Authorization {
  std::string access_key_id;
  std::string date;
  std::string region;
  std::string service;
  std::string terminator;
  std::vector<std::string> signed_headers;
  std::string signature;
};

// Parses "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=a;b,
// Signature=<64 hex>" (spaces after the commas optional). nullopt when malformed.
std::optional<Authorization> ParseAuthorization(absl::string_view header) {
  absl::string_view rest = header;
  if (!absl::ConsumePrefix(&rest, "AWS4-HMAC-SHA256 ")) return std::nullopt;
  std::map<std::string, std::string> parts;
  for (absl::string_view part : absl::StrSplit(rest, ',')) {
    const std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(part), absl::MaxSplits('=', 1));
    if (kv.second.empty() || !parts.emplace(kv.first, kv.second).second) return std::nullopt;
  }
  if (parts.size() != 3 || !parts.count("Credential") || !parts.count("SignedHeaders") ||
      !parts.count("Signature")) {
    return std::nullopt;
  }
  Authorization auth;
  const std::vector<std::string> credential = absl::StrSplit(parts["Credential"], '/');
  if (credential.size() != 5) return std::nullopt;
  auth.access_key_id = credential[0];
  auth.date = credential[1];
  auth.region = credential[2];
  auth.service = credential[3];
  auth.terminator = credential[4];
  auth.signed_headers = absl::StrSplit(parts["SignedHeaders"], ';');
  for (const std::string& name : auth.signed_headers) {
    if (name.empty() || name != absl::AsciiStrToLower(name)) return std::nullopt;
  }
  if (!std::is_sorted(auth.signed_headers.begin(), auth.signed_headers.end())) return std::nullopt;
  auth.signature = parts["Signature"];
  if (auth.signature.size() != 64 || !std::all_of(auth.signature.begin(), auth.signature.end(), [](char c) {
        return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
      })) {
    return std::nullopt;
  }
  return auth;
}

std::string XmlEscape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseForm(absl::string_view body) {
  std::map<std::string, std::string> form;
  for (absl::string_view part : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    for (std::string* text : {&kv.first, &kv.second}) {
      std::replace(text->begin(), text->end(), '+', ' ');
      *text = Decode(*text);
    }
    form.insert(std::move(kv));
  }
  return form;
}

// Shuts down (both ways) this process's connected TCP sockets whose local port is `local_port` and, when
// `remote_port` > 0, whose peer's port is `remote_port`: the server side of one connection, or of all.
// Each candidate is duplicated and checked again through the duplicate, so a descriptor number reused
// meanwhile by another thread is never touched.
void ShutdownSockets(int local_port, int remote_port) {
  const auto matches = [local_port, remote_port](int fd) {
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_size = sizeof(local);
    socklen_t peer_size = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0) return false;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0) return false;
    const auto port = [](const sockaddr_storage& address) {
      if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
      if (address.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
      return static_cast<uint16_t>(0);
    };
    return port(local) == local_port && (remote_port <= 0 || port(peer) == remote_port);
  };
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> candidates;
  while (const dirent* entry = readdir(dir)) {
    int fd = -1;
    if (absl::SimpleAtoi(entry->d_name, &fd) && matches(fd)) candidates.push_back(fd);
  }
  closedir(dir);
  for (const int fd : candidates) {
    const int own = dup(fd);
    if (own < 0) continue;
    if (matches(own)) shutdown(own, SHUT_RDWR);
    close(own);
  }
}

struct Key {
  std::string secret;
  std::string session_token;
  absl::Time expiration;
};

struct Object {
  std::string bytes;
  absl::Time modified;
};

// An answer: the status, and for errors the code, message and extra elements of the XML body.
struct Answer {
  int status = 200;
  std::string code;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<std::pair<std::string, std::string>> headers;
};

Answer Error(int status, std::string code, std::string message,
             std::vector<std::pair<std::string, std::string>> fields = {}) {
  return Answer{status, std::move(code), std::move(message), std::move(fields), {}};
}

}  // namespace

class FakeS3::Impl {
 public:
  explicit Impl(Options options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
        random_(std::random_device{}()) {}

  absl::Status Start() {
    server_.set_keep_alive_max_count(1000);
    server_.set_tcp_nodelay(true);  // inherited by accepted sockets: no Nagle/delayed-ACK stall per answer
    const auto s3 = [this](const httplib::Request& req, httplib::Response& res) { HandleS3(req, res); };
    server_.Get(R"([\s\S]*)", s3);
    server_.Post(R"([\s\S]*)", [this, s3](const httplib::Request& req, httplib::Response& res) {
      if (absl::StartsWith(req.get_header_value("Content-Type"), "application/x-www-form-urlencoded")) {
        HandleSts(req, res);
      } else {
        s3(req, res);
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return absl::UnavailableError("cannot bind 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return absl::OkStatus();
  }

  ~Impl() {
    server_.stop();
    // Kept-alive connections would otherwise hold their server threads until the keep-alive timeout.
    ShutdownSockets(port_, 0);
    if (thread_.joinable()) thread_.join();
  }

  int port() const { return port_; }

  void AddKey(const std::string& id, const std::string& secret, const std::string& token,
              absl::Time expiration) {
    std::lock_guard<std::mutex> lock(mu_);
    keys_[id] = Key{secret, token, expiration};
  }
  void AddBucket(const std::string& bucket) {
    std::lock_guard<std::mutex> lock(mu_);
    buckets_[bucket];
  }
  void PutObject(const std::string& bucket, const std::string& key, const std::string& bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    buckets_[bucket][key] = Object{bytes, clock_->Now()};
  }
  void SetWebIdentityToken(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    web_identity_token_ = token;
  }
  void AddFaults(int count, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < count; ++i) faults_.push_back(status);
  }
  std::vector<RecordedRequest> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  void ClearRequests() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.clear();
  }

 private:
  void HandleS3(const httplib::Request& req, httplib::Response& res);
  void HandleSts(const httplib::Request& req, httplib::Response& res);
  // Takes the next fault, if any: answers it (or drops the connection) and records the request.
  bool Fault(const httplib::Request& req, httplib::Response& res, RecordedRequest& record);
  std::optional<Answer> Authenticate(const httplib::Request& req, absl::string_view raw_path,
                                     absl::string_view raw_query);
  Answer GetObject(const httplib::Request& req, const RecordedRequest& record, std::string* body);
  void Finish(const httplib::Request& req, httplib::Response& res, RecordedRequest record,
              const Answer& answer, std::string body);
  std::string RandomText(size_t size);

  const Options options_;
  const Clock* const clock_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mu_;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Key> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, Object>> buckets_ ABSL_GUARDED_BY(mu_);
  std::string web_identity_token_ ABSL_GUARDED_BY(mu_);
  std::deque<int> faults_ ABSL_GUARDED_BY(mu_);  // statuses; 0 drops the connection
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
};

std::string FakeS3::Impl::RandomText(size_t size) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (size_t i = 0; i < size; ++i) out.push_back(kAlphabet[random_() % 64]);
  return out;
}

bool FakeS3::Impl::Fault(const httplib::Request& req, httplib::Response& res, RecordedRequest& record) {
  int status = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (faults_.empty()) return false;
    status = faults_.front();
    faults_.pop_front();
  }
  if (status == 0) {
    record.status = 0;
    {
      // Recorded before the client can see the connection close.
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(std::move(record));
    }
    ShutdownSockets(req.local_port, req.remote_port);
    // httplib's write of this answer now fails, and it closes the connection.
    res.status = 500;
    res.set_header("Connection", "close");
    return true;
  }
  const bool sts = record.service == "sts";
  const Answer answer =
      status == 503 ? Error(503, sts ? "ServiceUnavailable" : "SlowDown",
                            sts ? "Service is unable to handle request." : "Please reduce your request rate.")
                    : Error(status, sts ? "InternalFailure" : "InternalError",
                            "We encountered an internal error. Please try again.");
  Finish(req, res, std::move(record), answer, "");
  return true;
}

void FakeS3::Impl::Finish(const httplib::Request& req, httplib::Response& res, RecordedRequest record,
                          const Answer& answer, std::string body) {
  std::string request_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    request_id = absl::StrFormat("FAKE%012X", ++next_request_id_);
  }
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  if (record.service == "sts") {
    res.set_header("x-amzn-RequestId", request_id);
    if (!answer.code.empty()) {
      body = absl::StrCat("<ErrorResponse xmlns=\"", kStsNamespace, "\">\n  <Error>\n    <Type>",
                          answer.status >= 500 ? "Receiver" : "Sender", "</Type>\n    <Code>", answer.code,
                          "</Code>\n    <Message>", XmlEscape(answer.message),
                          "</Message>\n  </Error>\n  <RequestId>", request_id,
                          "</RequestId>\n</ErrorResponse>\n");
    }
    res.set_content(body, "text/xml");
  } else {
    res.set_header("x-amz-request-id", request_id);
    res.set_header("x-amz-id-2", absl::StrCat("fake/", request_id));
    res.set_header("Server", "AmazonS3");
    if (!answer.code.empty()) {
      // S3 answers HEAD with the status alone.
      body.clear();
      if (req.method != "HEAD") {
        body = absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", answer.code,
                            "</Code><Message>", XmlEscape(answer.message), "</Message>");
        for (const auto& [name, value] : answer.fields) {
          absl::StrAppend(&body, "<", name, ">", XmlEscape(value), "</", name, ">");
        }
        absl::StrAppend(&body, "<RequestId>", request_id, "</RequestId><HostId>fake</HostId></Error>");
      }
      res.set_content(body, "application/xml");
    } else {
      res.set_content(body, "application/octet-stream");
    }
  }
  record.status = answer.status;
  record.error_code = answer.code;
  std::lock_guard<std::mutex> lock(mu_);
  requests_.push_back(std::move(record));
}

std::optional<Answer> FakeS3::Impl::Authenticate(const httplib::Request& req, absl::string_view raw_path,
                                                 absl::string_view raw_query) {
  if (!req.has_header("Authorization")) return Error(403, "AccessDenied", "Access Denied");
  const std::optional<Authorization> auth = ParseAuthorization(req.get_header_value("Authorization"));
  if (!auth.has_value() || auth->terminator != "aws4_request" || auth->service != "s3") {
    return Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.");
  }
  if (auth->region != options_.region) {
    return Error(400, "AuthorizationHeaderMalformed",
                 absl::StrCat("The authorization header is malformed; the region '", auth->region,
                              "' is wrong; expecting '", options_.region, "'"),
                 {{"Region", options_.region}});
  }
  const std::string amz_date = req.get_header_value("x-amz-date");
  absl::Time signed_at;
  std::string parse_error;
  if (amz_date.size() != 16 ||
      !absl::ParseTime("%E4Y%m%dT%H%M%SZ", amz_date, absl::UTCTimeZone(), &signed_at, &parse_error)) {
    return Error(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
  }
  if (auth->date != amz_date.substr(0, 8)) {
    return Error(
        400, "AuthorizationHeaderMalformed",
        absl::StrCat("The authorization header is malformed; Invalid credential date \"", auth->date,
                     "\". This date is not the same as X-Amz-Date: \"", amz_date.substr(0, 8), "\"."));
  }
  const absl::Time now = clock_->Now();
  if (absl::AbsDuration(now - signed_at) > options_.max_skew) {
    return Error(403, "RequestTimeTooSkewed",
                 "The difference between the request time and the current time is too large.",
                 {{"RequestTime", amz_date},
                  {"ServerTime", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone())}});
  }
  if (!req.has_header("x-amz-content-sha256")) {
    return Error(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  }
  const std::string content_sha256 = req.get_header_value("x-amz-content-sha256");
  if (content_sha256 != kUnsignedPayload && content_sha256 != Sha256Hex(req.body)) {
    return Error(400, "XAmzContentSHA256Mismatch",
                 "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  const std::set<std::string> signed_names(auth->signed_headers.begin(), auth->signed_headers.end());
  std::vector<std::string> unsigned_names;
  for (const auto& [name, value] : req.headers) {
    const std::string lower = absl::AsciiStrToLower(name);
    if (absl::StartsWith(lower, "x-amz-") && signed_names.count(lower) == 0) unsigned_names.push_back(lower);
  }
  if (signed_names.count("host") == 0) unsigned_names.push_back("host");
  if (!unsigned_names.empty()) {
    return Error(403, "AccessDenied", "There were headers present in the request which were not signed",
                 {{"HeadersNotSigned", absl::StrJoin(unsigned_names, ", ")}});
  }

  Key key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = keys_.find(auth->access_key_id);
    if (it == keys_.end()) {
      return Error(403, "InvalidAccessKeyId",
                   "The AWS Access Key Id you provided does not exist in our records.",
                   {{"AWSAccessKeyId", auth->access_key_id}});
    }
    key = it->second;
  }
  if (!key.session_token.empty()) {
    if (req.get_header_value("x-amz-security-token") != key.session_token) {
      return Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.");
    }
    if (now >= key.expiration) return Error(400, "ExpiredToken", "The provided token has expired.");
  }

  std::string canonical_headers;
  for (const std::string& name : auth->signed_headers) {
    std::vector<std::string> values;
    for (size_t i = 0; i < req.get_header_value_count(name); ++i) {
      values.push_back(TrimAndCollapse(req.get_header_value(name, i)));
    }
    absl::StrAppend(&canonical_headers, name, ":", absl::StrJoin(values, ","), "\n");
  }
  const std::string canonical_request =
      absl::StrCat(req.method, "\n", Encode(Decode(raw_path), true), "\n", CanonicalQuery(raw_query), "\n",
                   canonical_headers, "\n", absl::StrJoin(auth->signed_headers, ";"), "\n", content_sha256);
  const std::string scope = absl::StrCat(auth->date, "/", auth->region, "/s3/aws4_request");
  const std::string string_to_sign =
      absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", Sha256Hex(canonical_request));
  std::string signing_key = Hmac(absl::StrCat("AWS4", key.secret), auth->date);
  for (absl::string_view part :
       {absl::string_view(auth->region), absl::string_view("s3"), absl::string_view("aws4_request")}) {
    signing_key = Hmac(signing_key, part);
  }
  const std::string mac = Hmac(signing_key, string_to_sign);
  if (LowerHex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size()) != auth->signature) {
    return Error(
        403, "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key "
        "and signing method.",
        {{"AWSAccessKeyId", auth->access_key_id},
         {"StringToSign", string_to_sign},
         {"SignatureProvided", auth->signature},
         {"CanonicalRequest", canonical_request}});
  }
  return std::nullopt;
}

Answer FakeS3::Impl::GetObject(const httplib::Request& req, const RecordedRequest& record,
                               std::string* body) {
  Object object;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto bucket = buckets_.find(record.bucket);
    if (bucket == buckets_.end()) {
      return Error(404, "NoSuchBucket", "The specified bucket does not exist",
                   {{"BucketName", record.bucket}});
    }
    const auto it = bucket->second.find(record.key);
    if (it == bucket->second.end()) {
      return Error(404, "NoSuchKey", "The specified key does not exist.", {{"Key", record.key}});
    }
    object = it->second;
  }
  Answer answer;
  answer.headers = {
      {"Accept-Ranges", "bytes"},
      {"ETag", absl::StrCat("\"", Sha256Hex(object.bytes).substr(0, 32), "\"")},
      {"Last-Modified", absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", object.modified, absl::UTCTimeZone())}};
  const uint64_t size = object.bytes.size();
  // One range, "bytes=first-[last]" or "bytes=-suffix"; S3 ignores other forms and answers the whole object.
  const std::string range_header = req.get_header_value("Range");
  absl::string_view range = range_header;
  if (req.method == "GET" && absl::ConsumePrefix(&range, "bytes=") && !absl::StrContains(range, ',')) {
    const std::pair<absl::string_view, absl::string_view> bounds =
        absl::StrSplit(range, absl::MaxSplits('-', 1));
    uint64_t first = 0;
    uint64_t last = UINT64_MAX;
    bool valid = false;
    if (bounds.first.empty()) {
      uint64_t suffix = 0;
      valid = absl::SimpleAtoi(bounds.second, &suffix) && suffix > 0;
      first = size > suffix ? size - suffix : 0;
    } else {
      valid = absl::SimpleAtoi(bounds.first, &first) &&
              (bounds.second.empty() || (absl::SimpleAtoi(bounds.second, &last) && first <= last));
    }
    if (valid) {
      if (size == 0 || first >= size) {
        Answer unsatisfiable = Error(
            416, "InvalidRange", "The requested range is not satisfiable",
            {{"RangeRequested", req.get_header_value("Range")}, {"ActualObjectSize", absl::StrCat(size)}});
        unsatisfiable.headers.emplace_back("Content-Range", absl::StrCat("bytes */", size));
        return unsatisfiable;
      }
      last = std::min(last, size - 1);
      answer.status = 206;
      answer.headers.emplace_back("Content-Range", absl::StrCat("bytes ", first, "-", last, "/", size));
      *body = object.bytes.substr(first, last - first + 1);
      return answer;
    }
  }
  *body = std::move(object.bytes);
  return answer;
}

void FakeS3::Impl::HandleS3(const httplib::Request& req, httplib::Response& res) {
  // httplib applies a Range header by itself to whatever body a handler returns (error bodies included) and
  // overwrites Content-Range; the fake answers ranges as S3 does, so it takes them over. (The Request object
  // httplib hands over is its own non-const local, so this is well-defined.)
  const_cast<httplib::Request&>(req).ranges.clear();

  RecordedRequest record;
  record.service = "s3";
  record.method = req.method;
  record.host = req.get_header_value("Host");
  record.target = req.target;
  for (const auto& [name, value] : req.headers) record.headers[absl::AsciiStrToLower(name)] = value;
  const std::pair<absl::string_view, absl::string_view> target =
      absl::StrSplit(req.target, absl::MaxSplits('?', 1));
  const std::string path = Decode(target.first);
  absl::string_view host = record.host;
  host = host.substr(0, host.rfind(':') == absl::string_view::npos ? host.size() : host.rfind(':'));
  const std::string suffix = absl::StrCat(".", options_.virtual_host_domain);
  if (absl::EndsWith(host, suffix) && host.size() > suffix.size()) {
    record.virtual_hosted = true;
    record.bucket = std::string(host.substr(0, host.size() - suffix.size()));
    record.key = path.empty() ? "" : path.substr(1);
  } else {
    const std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(absl::string_view(path).substr(path.empty() ? 0 : 1), absl::MaxSplits('/', 1));
    record.bucket = std::string(parts.first);
    record.key = std::string(parts.second);
  }

  if (Fault(req, res, record)) return;
  if (std::optional<Answer> refused = Authenticate(req, target.first, target.second); refused.has_value()) {
    Finish(req, res, std::move(record), *refused, "");
    return;
  }
  if (req.method == "POST") {
    Finish(req, res, std::move(record),
           Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource."), "");
    return;
  }
  if (record.bucket.empty() || record.key.empty()) {
    Finish(
        req, res, std::move(record),
        Error(501, "NotImplemented", "A header you provided implies functionality that is not implemented"),
        "");
    return;
  }
  std::string body;
  const Answer answer = GetObject(req, record, &body);
  Finish(req, res, std::move(record), answer, std::move(body));
}

void FakeS3::Impl::HandleSts(const httplib::Request& req, httplib::Response& res) {
  RecordedRequest record;
  record.service = "sts";
  record.method = req.method;
  record.host = req.get_header_value("Host");
  record.target = req.target;
  for (const auto& [name, value] : req.headers) record.headers[absl::AsciiStrToLower(name)] = value;
  record.form = ParseForm(req.body);
  if (Fault(req, res, record)) return;

  std::map<std::string, std::string>& form = record.form;
  const std::string& session = form["RoleSessionName"];
  std::string accepted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepted = web_identity_token_;
  }
  std::optional<Answer> refusal;
  if (form["Action"] != "AssumeRoleWithWebIdentity" || form["Version"] != "2011-06-15") {
    refusal =
        Error(400, "InvalidAction",
              absl::StrCat("Could not find operation ", form["Action"], " for version ", form["Version"]));
  } else if (session.size() < 2 || session.size() > 64 ||
             !std::all_of(session.begin(), session.end(), [](char c) {
               return absl::ascii_isalnum(static_cast<unsigned char>(c)) || absl::StrContains("_+=,.@-", c);
             })) {
    refusal =
        Error(400, "ValidationError",
              "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member "
              "must satisfy regular expression pattern: [\\w+=,.@-]*");
  } else if (form["RoleArn"] != options_.role_arn) {
    refusal = Error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
  } else if (form["WebIdentityToken"].empty() || form["WebIdentityToken"] != accepted) {
    refusal =
        Error(400, "InvalidIdentityToken",
              "The web identity token that was passed could not be validated by AWS. Get a new identity "
              "token from the identity provider and then retry the request.");
  }
  if (refusal.has_value()) {
    Finish(req, res, std::move(record), *refusal, "");
    return;
  }

  const std::string session_name = session;
  int64_t serial = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    serial = ++issued_;
  }
  const std::string access_key_id = absl::StrFormat("ASIAFAKE%012d", serial);
  const std::string secret = RandomText(40);
  const std::string token = absl::StrCat("IQoJb3JpZ2luX2VjEFAKE", RandomText(300), "==");
  const absl::Time expiration = clock_->Now() + options_.sts_credentials_lifetime;
  AddKey(access_key_id, secret, token, expiration);
  const absl::string_view role_name =
      absl::string_view(options_.role_arn).substr(options_.role_arn.rfind('/') + 1);
  const std::string body = absl::StrCat(
      "<AssumeRoleWithWebIdentityResponse xmlns=\"", kStsNamespace, "\">\n",
      "  <AssumeRoleWithWebIdentityResult>\n",
      "    "
      "<SubjectFromWebIdentityToken>system:serviceaccount:flyte:flyte-neptune-agent</"
      "SubjectFromWebIdentityToken>\n",
      "    <Audience>sts.amazonaws.com</Audience>\n", "    <AssumedRoleUser>\n",
      "      <Arn>arn:aws:sts::123456789012:assumed-role/", role_name, "/", session_name, "</Arn>\n",
      "      <AssumedRoleId>AROAFAKEROLEID:", session_name, "</AssumedRoleId>\n", "    </AssumedRoleUser>\n",
      "    <Credentials>\n", "      <SessionToken>", XmlEscape(token), "</SessionToken>\n",
      "      <SecretAccessKey>", XmlEscape(secret), "</SecretAccessKey>\n", "      <Expiration>",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", expiration, absl::UTCTimeZone()), "</Expiration>\n",
      "      <AccessKeyId>", access_key_id, "</AccessKeyId>\n", "    </Credentials>\n",
      "    "
      "<Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FAKE</"
      "Provider>\n",
      "  </AssumeRoleWithWebIdentityResult>\n", "  <ResponseMetadata>\n", "    <RequestId>fake-", serial,
      "</RequestId>\n", "  </ResponseMetadata>\n", "</AssumeRoleWithWebIdentityResponse>\n");
  Finish(req, res, std::move(record), Answer{}, body);
}

absl::StatusOr<std::unique_ptr<FakeS3>> FakeS3::Start(Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status started = impl->Start(); !started.ok()) return started;
  return std::unique_ptr<FakeS3>(new FakeS3(std::move(impl)));
}

FakeS3::FakeS3(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FakeS3::~FakeS3() = default;

int FakeS3::port() const { return impl_->port(); }
std::string FakeS3::endpoint() const { return absl::StrCat("http://127.0.0.1:", impl_->port()); }

void FakeS3::AddKey(const std::string& access_key_id, const std::string& secret,
                    const std::string& session_token, absl::Time expiration) {
  impl_->AddKey(access_key_id, secret, session_token, expiration);
}
void FakeS3::AddBucket(const std::string& bucket) { impl_->AddBucket(bucket); }
void FakeS3::PutObject(const std::string& bucket, const std::string& key, const std::string& bytes) {
  impl_->PutObject(bucket, key, bytes);
}
void FakeS3::SetWebIdentityToken(const std::string& token) { impl_->SetWebIdentityToken(token); }
void FakeS3::FailNext(int count, int status) { impl_->AddFaults(count, status); }
void FakeS3::DropNext(int count) { impl_->AddFaults(count, 0); }

std::vector<RecordedRequest> FakeS3::Requests() const { return impl_->Requests(); }
int FakeS3::RequestCount(absl::string_view service) const {
  int count = 0;
  for (const RecordedRequest& request : impl_->Requests()) count += request.service == service ? 1 : 0;
  return count;
}
void FakeS3::ClearRequests() { impl_->ClearRequests(); }

}  // namespace fna::fake_s3
