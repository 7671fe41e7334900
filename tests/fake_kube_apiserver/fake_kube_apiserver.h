#ifndef FNA_TESTS_FAKE_KUBE_APISERVER_FAKE_KUBE_APISERVER_H_
#define FNA_TESTS_FAKE_KUBE_APISERVER_FAKE_KUBE_APISERVER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "nlohmann/json.hpp"
#include "tests/fake_kube_apiserver/object_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace fna::fake_kube {

// The user a bearer token authenticates as unless AcceptToken says otherwise.
inline constexpr char kDefaultUser[] = "system:serviceaccount:flyte:flyte-neptune-agent";

enum class DeletionMode {
  kImmediate,        // DELETE removes the object at once (after marking it deleted), unless it has finalizers
  kKeepTerminating,  // DELETE leaves it terminating (deletionTimestamp set) until FinalizeDeletion
};

// One injected failure. Faults are kept in the order they were added; a request takes the first pending one
// whose method and path prefix match, and consumes one of its `count`. Faults come before authentication,
// as the API server's overload protection (APF) does.
struct Fault {
  enum class Action {
    kRespond,  // answer `status` with a Status body (or `body`)
    kDrop,     // break the connection before the response's body
  };
  std::string method;       // "GET", "POST", ...; "" matches any
  std::string path_prefix;  // matched against the path (no query); "" matches any
  int count = 1;            // how many matching requests it affects
  Action action = Action::kRespond;
  int status = 503;
  std::string retry_after;                  // Retry-After header value; "" = none
  std::optional<int> retry_after_seconds;   // details.retryAfterSeconds of the Status body
  std::string body;                         // "" → the API server's Status for `status`; else sent as is
  std::string content_type = "text/plain";  // of `body`
};

// A request the server saw (API paths only), newest last.
struct RequestRecord {
  std::string method;
  std::string path;
  std::string query;  // raw, "" when none
  // The Kubernetes request attributes: verb (get, list, watch, create, update, patch, delete,
  // deletecollection), resource ("pods", "pods/log"), namespace ("" cluster-wide), name.
  std::string verb;
  std::string resource;
  std::string ns;
  std::string name;
  std::string user;  // the authenticated user; "" when authentication failed or did not happen
  int status = 0;    // 0 when the connection was dropped
  std::map<std::string, std::string> headers;  // Authorization reads "Bearer [REDACTED]"
  std::string body;
};

// A fake Kubernetes API server for tests, on 127.0.0.1 (an httplib::Server, HTTPS when given a certificate),
// that behaves like the real one for what the agent uses (kubernetes-executor.md §3):
//
//   POST   /api/v1/namespaces/{ns}/pods                  create → 201 with the stored Pod
//   GET    /api/v1/namespaces/{ns}/pods/{name}           get
//   DELETE /api/v1/namespaces/{ns}/pods/{name}           delete → 200 with the Pod (DeleteOptions in the body
//                                                        or gracePeriodSeconds in the query)
//   PATCH  /api/v1/namespaces/{ns}/pods/{name}           application/merge-patch+json (RFC 7386)
//   GET    /api/v1/namespaces/{ns}/pods, /api/v1/pods    list: labelSelector (label_selector.h),
//                                                        fieldSelector (metadata.name, metadata.namespace,
//                                                        status.phase, spec.nodeName with = / == / !=), limit
//                                                        and continue; ?watch=1 watches (below)
// and the same verbs on any other resource (/api/v1/... or /apis/{group}/{version}/...), e.g. podtemplates
// and flyteworkflows put by PutObject. Unknown paths answer "404 page not found" as text/plain, like the
// real server; PUT and deletecollection answer 405.
//
// Create fills metadata.uid, metadata.resourceVersion, metadata.creationTimestamp (the fake's clock),
// metadata.managedFields and, for Pods, a few spec defaults and status {phase: Pending}. It refuses: a body
// that is not JSON (400), a metadata.namespace other than the URL's (400 BadRequest), a name that is not a
// DNS-1123 subdomain, a Pod without containers or a container without name or image (422 Invalid with
// details.causes), an existing name (409 AlreadyExists). Patch keeps status, refuses Pod spec changes (422)
// and a stale metadata.resourceVersion (409 Conflict). Delete honours preconditions.uid and
// preconditions.resourceVersion (409 Conflict); see DeletionMode and finalizers.
//
// resourceVersion is one global counter (object_store.h); list metadata carries it, continue tokens hold it
// and expire (410 Expired) once CompactHistory() passed it.
//
// Watch (?watch=1|true, optional resourceVersion, allowWatchBookmarks, timeoutSeconds, labelSelector):
// 200 with chunked JSON lines {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}. Without a
// resourceVersion (or "0") it starts with ADDED for every matching object; from a resourceVersion it replays
// the changes after it, or sends ERROR 410 Expired and ends when that version was compacted. An object that
// stops (starts) matching the selector is reported DELETED (ADDED). Bookmarks are sent when a test calls
// SendBookmarks(); CloseWatches() cuts every stream.
//
// Errors are metav1.Status bodies with the real messages, reasons and details, e.g.
//   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found",
//    "reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}
//
// Order of checks: faults → route → authentication (401) → authorization (403) → the request.
// Authentication: a bearer token from AcceptToken (as its user), else a client certificate signed by
// Options::client_ca_file (as its common name), else anonymous when Options::allow_anonymous, else 401.
// Authorization: everything is allowed except what Forbid() denies, which answers 403 with the real message:
//   pods is forbidden: User "system:serviceaccount:flyte:flyte-neptune-agent" cannot create resource "pods"
//   in API group "" in the namespace "flytesnacks-development"
//
// Thread safety: every public method is thread-safe; the server runs on its own threads. `Options::clock` is
// not owned and must outlive the server.
class FakeKubeApiServer {
 public:
  struct Options {
    // Both set: HTTPS with this PEM certificate and key.
    std::string tls_cert_file;
    std::string tls_key_file;
    // With TLS: client certificates are asked for (not required) and, when signed by this CA, authenticate
    // as their subject's common name.
    std::string client_ca_file;
    // Requests without credentials are served as "system:anonymous" (like `kubectl proxy`'s upstream).
    bool allow_anonymous = false;
    // creationTimestamp and deletionTimestamp; nullptr → the real clock. Not owned.
    const Clock* clock = nullptr;
    DeletionMode deletion_mode = DeletionMode::kImmediate;
    int worker_threads = 16;  // each kept-alive connection and each watch holds one while open
  };

  static absl::StatusOr<std::unique_ptr<FakeKubeApiServer>> Start(Options options);
  // Stops serving: ends watches, closes the listening socket, joins. Clients should be gone first (an idle
  // kept-alive connection holds its thread until it closes).
  ~FakeKubeApiServer();
  FakeKubeApiServer(const FakeKubeApiServer&) = delete;
  FakeKubeApiServer& operator=(const FakeKubeApiServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" or "https://...".
  std::string url() const;

  // --- authentication and authorization ---
  void AcceptToken(const std::string& token, const std::string& user = kDefaultUser);
  void RevokeToken(const std::string& token);
  // Denies `verb` on `resource` ("pods", "pods/log", "flyteworkflows"): in namespace `*ns`, at the cluster
  // scope only when `*ns` is "" (e.g. a cluster-wide list), everywhere when `ns` is nullopt.
  void Forbid(const std::string& verb, const std::string& resource,
              std::optional<std::string> ns = std::nullopt);
  void Allow(const std::string& verb, const std::string& resource,
             std::optional<std::string> ns = std::nullopt);

  // --- faults ---
  void AddFault(Fault fault);
  // The next `count` requests with `method` ("" any) whose path starts with `path_prefix` get `status`.
  void FailNext(const std::string& method, const std::string& path_prefix, int count, int status,
                const std::string& retry_after = "");
  void ClearFaults();

  // --- objects (test control; no request is recorded) ---
  // The stored Pod (managedFields included), or nullopt.
  std::optional<nlohmann::json> GetPod(const std::string& ns, const std::string& name) const;
  // The object at an API path, e.g. "/apis/flyte.lyft.com/v1alpha1/namespaces/ns/flyteworkflows/wf".
  std::optional<nlohmann::json> GetObject(const std::string& path) const;
  // Stores `object` at the object path `path` (created or replaced, ADDED/MODIFIED), with name, namespace,
  // uid, resourceVersion and creationTimestamp filled in when missing. InvalidArgument for a path that does
  // not name an object.
  absl::StatusOr<nlohmann::json> PutObject(const std::string& path, nlohmann::json object);
  // Replaces a Pod's status (a MODIFIED event): walks Pods through the kubelet's status sequences.
  absl::StatusOr<nlohmann::json> SetPodStatus(const std::string& ns, const std::string& name,
                                              nlohmann::json status);
  // Appends lines to a container's log (`GET .../pods/{name}/log`: container, timestamps, tailLines,
  // limitBytes, sinceTime; 400 while the container is waiting, as the kubelet answers). Logs die with the
  // Pod.
  void AppendPodLog(const std::string& ns, const std::string& name, const std::string& container,
                    const std::vector<std::pair<absl::Time, std::string>>& lines);
  // Deletes a Pod as someone else would (a user, an eviction): removed at once, finalizers ignored.
  absl::Status DeletePodFromOutside(const std::string& ns, const std::string& name);
  // Removes a terminating Pod kept by DeletionMode::kKeepTerminating (its finalizers must be gone first,
  // else FailedPrecondition): the kubelet has finished.
  absl::Status FinalizeDeletion(const std::string& ns, const std::string& name);
  void SetDeletionMode(DeletionMode mode);
  // Every resourceVersion and continue token issued so far becomes too old (410 Expired).
  void CompactHistory();

  // --- watches ---
  // Sends a BOOKMARK with the current resourceVersion on every watch that allows them.
  void SendBookmarks();
  // Ends every open watch stream (the client sees the chunked response end).
  void CloseWatches();
  // Breaks every open watch stream in the middle of an event line (the connection drops without the
  // chunked terminator); the events not fully sent are replayed to a client re-watching from its version.
  void CutWatchesMidEvent();
  int open_watches() const;

  // --- inspection ---
  std::vector<RequestRecord> Requests() const;
  // Requests by Kubernetes verb and resource, in namespace `ns` ("" = cluster-wide requests; nullopt = any).
  int RequestCount(const std::string& verb, const std::string& resource,
                   std::optional<std::string> ns = std::nullopt) const;
  void ClearRequests();

  struct Route;  // a parsed API path (fake_kube_apiserver.cc)

 private:
  struct Reply;
  struct Watch;
  struct ForbidRule {
    std::string verb;
    std::string resource;
    std::optional<std::string> ns;
    friend bool operator<(const ForbidRule& a, const ForbidRule& b) {
      return std::tie(a.verb, a.resource, a.ns) < std::tie(b.verb, b.resource, b.ns);
    }
  };

  explicit FakeKubeApiServer(Options options);
  absl::Status Listen();

  static Reply JsonReply(int status, const nlohmann::json& body);
  void Handle(const httplib::Request& req, httplib::Response& res);
  std::optional<Fault> TakeFault(const std::string& method, const std::string& path);
  std::string Authenticate(const httplib::Request& req) const;
  Reply Serve(const Route& route, const httplib::Request& req);
  Reply Create(const Route& route, const httplib::Request& req);
  Reply Get(const Route& route);
  Reply List(const Route& route, const httplib::Request& req);
  Reply Delete(const Route& route, const httplib::Request& req);
  Reply Patch(const Route& route, const httplib::Request& req);
  Reply Log(const Route& route, const httplib::Request& req);
  // Sets `res` to the watch stream (or a 400 for bad parameters).
  void ServeWatch(const Route& route, const httplib::Request& req, httplib::Response& res);
  // Removes `key` when it is terminating, has no finalizers and may go (DeletionMode, FinalizeDeletion).
  void MaybeRemove(const ObjectKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Now() const;

  const Options options_;
  const Clock* const clock_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // the store changed, or watches must send bookmarks or end
  ObjectStore store_ ABSL_GUARDED_BY(mu_);
  std::set<ObjectKey> finalized_ ABSL_GUARDED_BY(mu_);  // terminating objects the kubelet is done with
  DeletionMode deletion_mode_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> tokens_ ABSL_GUARDED_BY(mu_);  // token → user
  std::set<ForbidRule> forbidden_ ABSL_GUARDED_BY(mu_);
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::vector<RequestRecord> requests_ ABSL_GUARDED_BY(mu_);
  // "ns/name/container" → (time, line) in order.
  std::map<std::string, std::vector<std::pair<absl::Time, std::string>>> logs_ ABSL_GUARDED_BY(mu_);
  int64_t uid_counter_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bookmark_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t close_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cut_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fna::fake_kube

#endif  // FNA_TESTS_FAKE_KUBE_APISERVER_FAKE_KUBE_APISERVER_H_
