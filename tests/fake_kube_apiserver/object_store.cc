#include "tests/fake_kube_apiserver/object_store.h"

#include <string>
#include <utility>
#include <vector>

namespace fna::fake_kube {
namespace {

// Bounds the history kept for watches; older changes are compacted away, as etcd does.
constexpr size_t kMaxHistory = 10000;

}  // namespace

const nlohmann::json* ObjectStore::Get(const ObjectKey& key) const {
  const auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : &it->second;
}

const nlohmann::json& ObjectStore::Put(const ObjectKey& key, nlohmann::json object) {
  object["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
  StoredEvent event;
  event.resource_version = resource_version_;
  event.key = key;
  event.object = object;
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    event.type = "ADDED";
    it = objects_.emplace(key, std::move(object)).first;
  } else {
    event.type = "MODIFIED";
    event.previous = std::move(it->second);
    it->second = std::move(object);
  }
  Record(std::move(event));
  return it->second;
}

std::optional<nlohmann::json> ObjectStore::Remove(const ObjectKey& key) {
  const auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  nlohmann::json last = std::move(it->second);
  objects_.erase(it);
  StoredEvent event;
  event.previous = last;
  last["metadata"]["resourceVersion"] = std::to_string(++resource_version_);
  event.resource_version = resource_version_;
  event.type = "DELETED";
  event.key = key;
  event.object = last;
  Record(std::move(event));
  return last;
}

std::vector<std::pair<ObjectKey, const nlohmann::json*>> ObjectStore::List(const std::string& group_version,
                                                                           const std::string& resource,
                                                                           const std::string& ns) const {
  std::vector<std::pair<ObjectKey, const nlohmann::json*>> found;
  for (auto it = objects_.lower_bound(ObjectKey{group_version, resource, ns, ""}); it != objects_.end();
       ++it) {
    const ObjectKey& key = it->first;
    if (key.group_version != group_version || key.resource != resource) break;
    if (!ns.empty() && key.ns != ns) break;
    found.emplace_back(key, &it->second);
  }
  return found;
}

std::vector<StoredEvent> ObjectStore::EventsAfter(int64_t after) const {
  std::vector<StoredEvent> events;
  for (const StoredEvent& event : history_) {
    if (event.resource_version > after) events.push_back(event);
  }
  return events;
}

void ObjectStore::Compact() {
  history_.clear();
  compacted_ = ++resource_version_;  // what is listed from now on is not too old
}

void ObjectStore::Record(StoredEvent event) {
  history_.push_back(std::move(event));
  while (history_.size() > kMaxHistory) {
    compacted_ = history_.front().resource_version;
    history_.pop_front();
  }
}

}  // namespace fna::fake_kube
