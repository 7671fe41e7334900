#ifndef FNA_AGENT_EXECUTOR_KUBERNETES_POD_CACHE_H_
#define FNA_AGENT_EXECUTOR_KUBERNETES_POD_CACHE_H_

// A shared list+watch cache of the agent's Pods (kubernetes-executor.md §3.7), so that GetTask reads memory
// instead of the API: one list, then one watch stream per scope, whatever the number of tasks and however
// often propeller polls.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "agent/common/retry.h"
#include "agent/http/http_transport.h"
#include "agent/kube/kube_client.h"
#include "nlohmann/json.hpp"

namespace fna::executor::kubernetes {

struct PodCacheOptions {
  // The scopes watched: one list+watch per namespace, or one cluster-wide when empty (the RBAC mode).
  std::vector<std::string> namespaces;
  std::string label_selector;  // the agent's own Pods
  // Each watch asks the server to end it after a random duration in [min, 2 * min) (client-go: 5-10 min).
  absl::Duration watch_timeout = absl::Minutes(5);
  // Between failed lists or watches (client-go's reflector: 800 ms doubling to 30 s).
  RetryOptions backoff = {absl::Milliseconds(800), 2.0, absl::Seconds(30), 0.2};
  int64_t list_page_size = 500;
  // A deleted Pod is remembered this long, so that a read right after a deletion is not a miss.
  absl::Duration tombstone_ttl = absl::Minutes(5);
};

// What the cache knows of one Pod.
enum class CacheLookup {
  kHit,      // the Pod as last seen
  kDeleted,  // seen deleted recently (a tombstone): the API's 404 is still the authority
  kMiss,     // never seen, or the scope is not synced yet: read it from the API
};

// The cache. Pods are kept slimmed to what the status mapping and the executor read (metadata without
// managedFields and ownerReferences, the containers' names and working directories, the whole status).
//
// Each scope runs on its own thread: list (paged) → synced → watch from the list's resourceVersion, with
// bookmarks; a stream that ends or is cut is watched again from the last version seen; 410 Gone (as the
// HTTP status or an ERROR event) lists again and replaces the scope's Pods, turning the missing ones into
// tombstones; errors back off on the clock. The executor also feeds the objects its own writes returned
// (Observe), so that a read after a write never goes back in time.
//
// Thread safety: all methods are safe for concurrent use. `client` and `clock` are not owned and must
// outlive the cache; Stop (or destruction) joins the threads.
class PodCache {
 public:
  PodCache(kube::KubeClient* client, PodCacheOptions options, const Clock* clock);
  ~PodCache();
  PodCache(const PodCache&) = delete;
  PodCache& operator=(const PodCache&) = delete;

  // Starts the scope threads. Call once.
  void Start();
  // Ends the watches and joins the threads. Idempotent.
  void Stop();

  // Every scope has completed a list (readiness: the executor serves from the cache).
  bool synced() const;

  // The Pod `ns`/`name`, when the cache can tell.
  CacheLookup Get(const std::string& ns, const std::string& name, nlohmann::json* pod) const;

  // Records `pod` as returned by the API (create, get, patch) unless the cache already holds a newer version.
  void Observe(const nlohmann::json& pod);
  // Records that the API answered 404 for the Pod.
  void ObserveDeleted(const std::string& ns, const std::string& name);

  // Every cached Pod (synced scopes only), for the sweeper and pending final writes. nullopt until synced.
  std::optional<std::vector<nlohmann::json>> Snapshot() const;

  // Lists and watches so far, for tests and metrics.
  struct Stats {
    int64_t lists = 0;
    int64_t watches = 0;
    int64_t relists_after_gone = 0;
  };
  Stats stats() const;

 private:
  struct Entry {
    nlohmann::json pod;     // slimmed; null for a tombstone
    std::string scope;      // the scope that holds it
    absl::Time deleted_at;  // tombstones only
  };

  // The loop of one scope; `canceller` ends its watches on Stop.
  void Run(const std::string& scope, http::StreamCanceller* canceller);
  // Lists `scope` (paged) into the cache; its resourceVersion, or an error.
  absl::StatusOr<std::string> List(const std::string& scope);
  void Apply(const std::string& scope, const kube::WatchEvent& event, std::string* resource_version);
  void Upsert(const std::string& scope, nlohmann::json pod) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Tombstone(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sleeps `d` on the clock in short slices, returning early (false) when stopping.
  bool Pause(absl::Duration d);
  bool stopping() const;

  kube::KubeClient* const client_;
  const PodCacheOptions options_;
  const Clock* const clock_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> pods_ ABSL_GUARDED_BY(mu_);   // "ns/name"
  std::map<std::string, bool> synced_ ABSL_GUARDED_BY(mu_);  // by scope ("" = cluster-wide)
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<http::StreamCanceller>> cancellers_;  // one per scope, fixed after Start
  std::vector<std::thread> threads_;
};

}  // namespace fna::executor::kubernetes

#endif  // FNA_AGENT_EXECUTOR_KUBERNETES_POD_CACHE_H_
