#ifndef FNA_TESTS_FAKE_KUBE_APISERVER_OBJECT_STORE_H_
#define FNA_TESTS_FAKE_KUBE_APISERVER_OBJECT_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"

namespace fna::fake_kube {

// Where an object lives: its API group/version ("v1" for the core group, "flyte.lyft.com/v1alpha1"), resource
// (plural, "pods"), namespace ("" for cluster-scoped objects) and name.
struct ObjectKey {
  std::string group_version;
  std::string resource;
  std::string ns;
  std::string name;

  friend bool operator<(const ObjectKey& a, const ObjectKey& b) {
    return std::tie(a.group_version, a.resource, a.ns, a.name) <
           std::tie(b.group_version, b.resource, b.ns, b.name);
  }
  friend bool operator==(const ObjectKey& a, const ObjectKey& b) {
    return std::tie(a.group_version, a.resource, a.ns, a.name) ==
           std::tie(b.group_version, b.resource, b.ns, b.name);
  }
};

// A change, as a watch reports it. `object` is the object after the change (for DELETED, its last state, with
// the deletion's resourceVersion); `previous` the object before it (null for ADDED).
struct StoredEvent {
  int64_t resource_version = 0;
  std::string type;  // "ADDED", "MODIFIED", "DELETED"
  ObjectKey key;
  nlohmann::json object;
  nlohmann::json previous;
};

// The fake's etcd: objects by key, one global resourceVersion counter (each change takes the next value,
// which becomes the object's metadata.resourceVersion), and the history of changes since the last
// compaction, from which a watch is replayed. Not thread-safe: the server guards it with its lock.
class ObjectStore {
 public:
  // The resourceVersion of the latest change (0 before any).
  int64_t resource_version() const { return resource_version_; }
  // Versions below this are no longer served: a watch from one misses changes, a continue token from one
  // cannot be read consistently (410 Expired).
  int64_t compacted() const { return compacted_; }

  const nlohmann::json* Get(const ObjectKey& key) const;

  // Stores `object` under `key` with the next resourceVersion (ADDED or MODIFIED); returns the stored object.
  const nlohmann::json& Put(const ObjectKey& key, nlohmann::json object);
  // Removes the object (DELETED, with the next resourceVersion) and returns its last state; nullopt if
  // absent.
  std::optional<nlohmann::json> Remove(const ObjectKey& key);

  // The objects of `group_version`/`resource` in namespace `ns` ("" = all namespaces), ordered by namespace
  // then name (the API server's etcd key order).
  std::vector<std::pair<ObjectKey, const nlohmann::json*>> List(const std::string& group_version,
                                                                const std::string& resource,
                                                                const std::string& ns) const;

  // The changes with a resourceVersion above `after`, oldest first.
  std::vector<StoredEvent> EventsAfter(int64_t after) const;
  // Forgets the history: every version issued so far becomes too old (the counter moves on by one, so that a
  // list made after the compaction can be watched from).
  void Compact();

 private:
  void Record(StoredEvent event);

  std::map<ObjectKey, nlohmann::json> objects_;
  std::deque<StoredEvent> history_;
  int64_t resource_version_ = 0;
  int64_t compacted_ = 0;
};

}  // namespace fna::fake_kube

#endif  // FNA_TESTS_FAKE_KUBE_APISERVER_OBJECT_STORE_H_
