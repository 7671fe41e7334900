#ifndef FNA_TESTS_NEPTUNE_EMULATOR_EMULATOR_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_EMULATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "tests/neptune_emulator/run_store.h"
#include "tests/neptune_emulator/websocket.h"

// A strict emulator of the Neptune 2.x server (the legacy protocol of the Python `neptune` 1.x client), the
// test oracle of the agent's Neptune client. Requests are checked at run time against Neptune's own Swagger
// documents (backend.json, leaderboard.json in the specs directory): the operation is found by method and
// path, required parameters and their types are checked, and a JSON body is validated against the body
// parameter's schema. A violation is 400 with a message naming the field, e.g.
//   {"code":400,"message":"body[3].assignInt.value: expected integer (int32), got \"x\""}
//
// Served (paths exactly as the real server's; see ../shared/docs/neptune-protocol.md §3):
//   GET  /api/backend/swagger.json, /api/leaderboard/swagger.json        the documents, `host` removed
//   GET  /api/backend/v1/clients/config                                  X-Neptune-Api-Token (see
//                                                                        Options::config_requires_api_token)
//   GET  /api/backend/v1/authorization/oauth-token                       X-Neptune-Api-Token →
//                                                                        NeptuneOauthToken (JWTs)
//   POST /auth/realms/neptune/protocol/openid-connect/token              form refresh grant (Keycloak style)
//   GET  /auth/realms/neptune/.well-known/openid-configuration
//   GET  /api/backend/v1/projects/get?projectIdentifier=ws/proj|<uuid>   ProjectDTO (version 2) or 404
//   GET  /api/backend/v1/projects                                        listProjects (ProjectListDTO)
//   GET  /api/backend/v1/myOrganizations                                 [OrganizationWithRoleDTO]
//   POST /api/leaderboard/v1/experiments                                 createExperiment; customId is
//                                                                        idempotent per project
//   GET  /api/leaderboard/v1/experiments?experimentId=<uuid>|ws/proj/SHORT-ID
//   GET  /api/leaderboard/v1/attributes?experimentId=<uuid>              ExperimentAttributesDTO
//   POST /api/leaderboard/v1/attributes/operations?experimentId=<uuid>   executeOperations
//   POST /api/leaderboard/v1/attributes/ping?experimentId=<uuid>         200, empty body
//   GET  /api/notifications/v1/runs/<projectId>/<runId>/signal            the signal websocket (below)
// Any other operation of the documents is 501 (after auth and validation); an unknown path is 404, a known
// path with another method 405. Order of checks: fault injection → route → auth → Content-Type → schema →
// semantics.
//
// Error bodies follow the backend document's `Error` definition, {"code": <status>, "message": "..."}, plus
// "errorType" where the client keys on it:
//   401 {"code":401,"message":"Authorization token expired","errorType":"AUTHORIZATION_TOKEN_EXPIRED"}: an
//       access token past its `exp` (on the emulator's clock) or expired by ExpireAccessTokens();
//   401 {"code":401,"message":"..."}: a missing, malformed, foreign (bad signature) or refresh-typed bearer
//       (with `WWW-Authenticate: Bearer realm="neptune", error="invalid_token"`), an unknown or invalid API
//       token;
//   404 {"code":404,"errorType":"EXPERIMENT_NOT_FOUND","message":"..."}: an unknown run (projects: no
//       errorType);
//   415 {"code":415,...}: a body that is not application/json;
//   the token endpoint answers OAuth2 errors {"error": "invalid_grant" | "invalid_request" |
//       "unsupported_grant_type" (400) | "invalid_client" (401), "error_description": "..."}.
//
// Signal websocket. The real client opens one per run at start-up (neptune-client
// internal/websockets/websocket_signals_background_job.py): ws:// or wss:// from the config's apiUrl, path
// with the project's and the run's UUIDs, `Authorization: Bearer <access token>` (refreshed just before each
// connect), an Origin, no subprotocol, no extension. The upgrade is checked after fault injection and auth
// like any call (401 bodies as above), then as an RFC 6455 opening handshake: HTTP/1.1, Host, `Upgrade:
// websocket`, `Connection` with `Upgrade`, `Sec-WebSocket-Version` and a `Sec-WebSocket-Key` of 16 bytes,
// else 400 (426 with `Sec-WebSocket-Version: 13` for another version); then an unknown project is 404 and an
// unknown run, or one of another project, 404 EXPERIMENT_NOT_FOUND; another method is 405. Success is exactly
//   HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n
//   Sec-WebSocket-Accept: <base64(SHA-1(key + GUID))>\r\n\r\n
// and the request is logged with status 101. The server then sends unfragmented, unmasked text frames:
// signals SendSignal() queues, e.g. SignalMessage() {"type":"neptune/stop","body":{"seconds":5}} (the client
// stops the run, and an abort also sets sys/failed), or a blank message (a heartbeat; none is sent unasked).
// It answers a ping with a pong and a Close with the same code, ignores data frames, closes with 1002 on a
// protocol error (e.g. an unmasked frame) and 1009 on a frame over 1 MiB, and with 1001 on Stop() or Reset().
// After its own Close frame it closes the connection without waiting for the client's. An open socket holds a
// server thread, and another one is started in its place, so open sockets never starve other connections.
//
// Control endpoints (no auth; never faulted, logged or counted), for tests in other processes:
//   GET    /_emulator/health           → {"ok":true}
//   GET    /_emulator/projects         → [ProjectDTO]
//   POST   /_emulator/projects         {"project":"ws/proj","key":"KEY"} (key optional) → ProjectDTO;
//                                      400 for a bad name or key, 409 for a clash
//   POST   /_emulator/faults           a Fault as JSON (below) → {"id":n}
//   GET    /_emulator/faults           → [Fault JSON with the remaining "count"]
//   DELETE /_emulator/faults           → {} (removes every pending fault)
//   PUT    /_emulator/outage           {"mode":"none"|"unavailable"|"drop"} → {}
//   POST   /_emulator/tokens/expire    {"refreshTokens":false} (optional) → {}: ExpireAccessTokens()
//   GET    /_emulator/runs             → [{"id","shortId","customId","project"}] in creation order
//   GET    /_emulator/run?id=<uuid|SHORT-ID>, or ?project=ws/proj&customId=X → RunSnapshotToJson(): {"id",
//                                      "shortId","customId","project","projectId","creationTime","pingTime",
//                                      "attributes":{"<path>":{"type","value"[,"config"]}}}
//   GET    /_emulator/requests         → {"requests":[RequestRecordToJson()],"counts":{"METHOD /path":n},
//                                         "connections":n}
//   POST   /_emulator/signals          {"run":"<uuid|SHORT-ID>","type":"neptune/stop"|"neptune/abort",
//                                      "seconds":5} (seconds optional), or {"run":...,"text":"<raw message>"}
//                                      ("" is a heartbeat) → {"sockets":n}: SendSignal(); 404 unknown run
//   POST   /_emulator/signals/close    {"run":...,"code":1000} (code optional) → {"sockets":n}:
//                                      CloseSignalSockets()
//   GET    /_emulator/signals?run=<uuid|SHORT-ID> → {"run":"<uuid>","opened":n,"open":n}: SignalSockets();
//                                      without run → [that] for every run that had a socket
//   POST   /_emulator/reset            → {}: Reset()
// Fault JSON (every key optional; defaults of Fault; unknown keys are 400):
//   {"pathPrefix":"/api/leaderboard/v1/attributes/operations","method":"POST","count":2,
//    "action":"respond"|"drop"|"delay","status":503,"body":"...","contentType":"application/json",
//    "retryAfter":"1","delayMs":0,"afterProcessing":false}
//
// Behaviour the documents do not settle, and why it was chosen: README.md beside this file.
//
// Thread-safety: every public method is thread-safe; the server runs on its own threads. The clock is not
// owned and must outlive the emulator.
namespace fna::neptune_emulator {

// The api_key the emulator accepts unless Options::api_keys says otherwise.
inline constexpr char kDefaultApiKey[] = "fna-neptune-emulator-api-key";
// The OAuth client id (`azp`) of minted tokens unless Options::client_id says otherwise.
inline constexpr char kDefaultClientId[] = "neptune-cli";
// The realm path of the issuer: iss = base_url + kRealmPath.
inline constexpr char kRealmPath[] = "/auth/realms/neptune";

// $FNA_NEPTUNE_SPECS when set, else the directory CMake compiled in (../shared/specs/neptune-2x of the repo).
std::string DefaultSpecsDir();

// A valid API token for an emulator at `base_url`: standard base64 of
// {"api_address": base_url, "api_url": base_url, "api_key": api_key}.
std::string ApiTokenFor(absl::string_view base_url, absl::string_view api_key = kDefaultApiKey);

// One injected failure. Faults are kept in the order they were added; a request takes the first pending fault
// whose method and path prefix match, and consumes one of its `count`.
struct Fault {
  enum class Action {
    kRespond,  // answer `status` with `body` (and Retry-After when set)
    kDrop,     // close the connection without a response
    kDelay,    // only wait `delay`, then serve normally
  };
  std::string path_prefix;  // matched against the request path (no query); "" matches every request
  std::string method;       // "GET", "POST", ...; "" matches any
  int count = 1;            // how many matching requests it affects; < 0 = until cleared
  Action action = Action::kRespond;
  int status = 503;
  std::string body;  // "" → {"code":status,"message":"Injected fault"}
  std::string content_type = "application/json";
  std::string retry_after;                      // Retry-After header value; "" = none
  absl::Duration delay = absl::ZeroDuration();  // real time, before the action (a slow server)
  bool after_processing = false;  // serve the request first (state changes), then apply the action
                                  // to the response: "applied, but the answer was lost"
};

// Every non-control request (newest last). A request is in the log before its client can see the response (or
// the dropped connection).
struct RequestRecord {
  int64_t sequence = 0;
  std::string method;
  std::string path;        // without the query
  std::string query;       // raw query string ("" when none)
  int status = 0;          // 0 when the connection was dropped
  std::string fault;       // "" | "respond" | "drop" | "delay" | "outage"
  int64_t connection = 0;  // id of the TCP connection (1, 2, ... in accept order)
  // How the request authenticated, never the credential: "none", "api-token:sha256:<12 hex>" (a fingerprint),
  // "bearer:<jti>", "bearer:invalid", "refresh-token".
  std::string auth;
  // Request headers; Authorization, X-Neptune-Api-Token, Cookie and Proxy-Authorization read "[REDACTED]".
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the request body; "[REDACTED]" for the token endpoint (it carries a refresh token)
  std::string response_body;  // "[REDACTED]" for a 200 from oauth-token or the token endpoint (it has tokens)
  absl::Time time;            // on the emulator's clock
};

// The signal sockets of one run.
struct SignalSocketCounts {
  std::string run_id;  // UUID
  int opened = 0;      // upgrades answered 101 since the start (or the last Reset)
  int open = 0;        // open now
};

// Remote signal types (neptune-client attributes/constants.py).
inline constexpr char kStopSignal[] = "neptune/stop";
inline constexpr char kAbortSignal[] = "neptune/abort";

// A signal message as the server sends it: {"type":<type>,"body":{"seconds":<seconds>}}, keys in that order,
// or {"type":<type>,"body":{}} when `seconds` is null.
std::string SignalMessage(absl::string_view type, const nlohmann::json& seconds = nullptr);

enum class Outage {
  kNone,
  kUnavailable,  // every non-control request gets 503 {"code":503,"message":"Service unavailable"}
  kDrop,         // every non-control request has its connection closed without a response
};

class NeptuneEmulator {
 public:
  struct Options {
    // Directory holding backend.json and leaderboard.json; "" → DefaultSpecsDir().
    std::string specs_dir;
    std::string host = "127.0.0.1";
    int port = 0;  // 0: any free port
    // Both set: HTTPS with this PEM certificate and key.
    std::string tls_cert_path;
    std::string tls_key_path;
    // The api_key values accepted inside API tokens.
    std::vector<std::string> api_keys = {kDefaultApiKey};
    // Projects present from the start: {"workspace/project", "KEY" (or "" to derive one)}.
    std::vector<std::pair<std::string, std::string>> projects;
    // Time for token expiry, creation/ping times and sys/state; nullptr → the real clock. Not owned. Server
    // threads read it, so it must be thread-safe (tests use testing/fake_clock.h).
    const Clock* clock = nullptr;
    std::string username = "emulator-user";
    std::string client_id = kDefaultClientId;
    absl::Duration access_token_lifetime = absl::Minutes(5);
    absl::Duration refresh_token_lifetime = absl::Minutes(30);
    // sys/state is "running" while the last ping is younger than this, then "idle".
    absl::Duration idle_after = absl::Seconds(30);
    // The Swagger document marks X-Neptune-Api-Token optional on clients/config (neptune-scale sends none);
    // the 1.x client always sends it. true: missing → 401. A present token must always be valid.
    bool config_requires_api_token = true;
    // clients/config apiUrl and applicationUrl; "" → base_url().
    std::string api_url;
    std::string application_url;
    // createExperiment rejects (400) a customId longer than this (the 1.x client's limit).
    size_t max_custom_id_length = 36;
    // Server threads; each kept-alive connection holds one while it is open.
    int worker_threads = 32;
    absl::Duration keep_alive_timeout = absl::Seconds(60);
    int keep_alive_max_requests = 1000;
    size_t max_request_log = 10000;  // the oldest records are dropped beyond this (counts go on)
  };

  // Loads the documents, binds the port and starts serving. The port accepts connections when this returns.
  static absl::StatusOr<std::unique_ptr<NeptuneEmulator>> Start(Options options);
  // Stops serving: closes the listening socket and every open connection, wakes delayed requests, joins.
  ~NeptuneEmulator();
  NeptuneEmulator(const NeptuneEmulator&) = delete;
  NeptuneEmulator& operator=(const NeptuneEmulator&) = delete;

  int port() const;
  // "http://127.0.0.1:<port>" or "https://..." (host 0.0.0.0/:: shows as 127.0.0.1).
  std::string base_url() const;
  // ApiTokenFor(base_url(), the first accepted api_key).
  std::string api_token() const;
  bool tls() const;

  // Projects. See RunStore::AddProject for the rules.
  absl::StatusOr<Project> AddProject(absl::string_view qualified_name, absl::string_view key = "");
  std::vector<Project> Projects() const;

  // Faults and outages.
  int64_t AddFault(Fault fault);  // returns the fault's id
  // Shorthand: the next `count` requests whose path starts with `path_prefix` get `status`.
  int64_t FailNext(absl::string_view path_prefix, int count, int status, absl::string_view retry_after = "");
  void ClearFaults();
  std::vector<Fault> PendingFaults() const;  // `count` = what remains
  void SetOutage(Outage outage);
  // Every access token issued so far is expired from now on (401 AUTHORIZATION_TOKEN_EXPIRED); tokens from a
  // later exchange or refresh work. With `refresh_tokens_too`, refresh tokens issued so far stop working as
  // well (400 invalid_grant), so only a new API-token exchange recovers.
  void ExpireAccessTokens(bool refresh_tokens_too = false);

  // Inspection.
  std::optional<RunSnapshot> RunById(absl::string_view id_or_short_id) const;
  std::optional<RunSnapshot> RunByCustomId(absl::string_view project, absl::string_view custom_id) const;
  std::vector<RunSnapshot> Runs() const;  // in creation order
  std::vector<RequestRecord> Requests() const;
  // Requests (faulted ones included) by "METHOD /path", e.g. "POST /api/leaderboard/v1/attributes/ping".
  std::map<std::string, int> RequestCounts() const;
  int RequestCount(absl::string_view method, absl::string_view path) const;
  // Distinct TCP connections accepted since the start (or the last Reset).
  int ConnectionCount() const;
  // Forgets runs, faults, the outage, the request log, the counts and the connection count, and closes the
  // signal sockets (1001). Projects and issued tokens stay valid.
  void Reset();

  // Signal sockets. `run` is a run's UUID or SHORT-ID; NotFound when unknown.
  // Queues `text` as one text frame to every open signal socket of the run; returns how many (0 when none is
  // open). Each socket's thread writes it soon after.
  absl::StatusOr<int> SendSignal(absl::string_view run, absl::string_view text);
  // Closes every open signal socket of the run with a Close frame carrying `code`; returns how many.
  // InvalidArgument for a code an endpoint may not send (RFC 6455 §7.4: 1000-1003, 1007-1014, 3000-4999).
  absl::StatusOr<int> CloseSignalSockets(absl::string_view run, int code = kWsCloseNormal);
  absl::StatusOr<SignalSocketCounts> SignalSockets(absl::string_view run) const;
  // Every run that had a signal socket since the start (or the last Reset), by UUID.
  std::vector<SignalSocketCounts> AllSignalSockets() const;

  class Impl;

 private:
  explicit NeptuneEmulator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// JSON forms used by the control endpoints (also handy in tests).
nlohmann::json FaultToJson(const Fault& fault);
absl::StatusOr<Fault> FaultFromJson(const nlohmann::json& json);
nlohmann::json RunSnapshotToJson(const RunSnapshot& run);
nlohmann::json RequestRecordToJson(const RequestRecord& record);

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_EMULATOR_H_
