#include "agent/executor/kubernetes/pod_cache.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace fna::executor::kubernetes {
namespace {

using Json = nlohmann::json;

constexpr char kComponent[] = "kubernetes";
// Pauses are slept in slices this long, so that Stop is prompt.
constexpr absl::Duration kPauseSlice = absl::Milliseconds(100);
// A watch healthy this long resets the backoff (client-go: 2 minutes).
constexpr absl::Duration kHealthyWatch = absl::Minutes(2);

std::string Metadata(const Json& pod, const char* key) {
  if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].is_object()) return "";
  const Json& metadata = pod["metadata"];
  return metadata.contains(key) && metadata[key].is_string() ? metadata[key].get<std::string>() : "";
}

std::string KeyOf(const std::string& ns, const std::string& name) { return absl::StrCat(ns, "/", name); }

// What the status mapping and the executor read of a Pod; the rest (managedFields, volumes, env) is dropped.
Json Slim(const Json& pod) {
  Json slim = Json::object();
  if (pod.contains("metadata") && pod["metadata"].is_object()) {
    const Json& metadata = pod["metadata"];
    Json& kept = slim["metadata"];
    for (const char* key : {"name", "namespace", "uid", "resourceVersion", "labels", "annotations",
                            "creationTimestamp", "deletionTimestamp"}) {
      if (metadata.contains(key)) kept[key] = metadata[key];
    }
  }
  if (pod.contains("spec") && pod["spec"].is_object() && pod["spec"].contains("containers") &&
      pod["spec"]["containers"].is_array()) {
    Json containers = Json::array();
    for (const Json& container : pod["spec"]["containers"]) {
      Json kept = Json::object();
      if (container.is_object()) {
        for (const char* key : {"name", "workingDir"}) {
          if (container.contains(key)) kept[key] = container[key];
        }
      }
      containers.push_back(std::move(kept));
    }
    slim["spec"]["containers"] = std::move(containers);
  }
  if (pod.contains("status")) slim["status"] = pod["status"];
  return slim;
}

// Whether `candidate`'s resourceVersion is older than `current`'s. Versions are opaque, but the API server's
// are etcd revisions (integers); anything else is taken as newer.
bool Older(const Json& candidate, const Json& current) {
  int64_t a = 0;
  int64_t b = 0;
  return absl::SimpleAtoi(Metadata(candidate, "resourceVersion"), &a) &&
         absl::SimpleAtoi(Metadata(current, "resourceVersion"), &b) && a < b;
}

}  // namespace

PodCache::PodCache(kube::KubeClient* client, PodCacheOptions options, const Clock* clock)
    : client_(client), options_(std::move(options)), clock_(clock) {}

PodCache::~PodCache() { Stop(); }

void PodCache::Start() {
  std::vector<std::string> scopes = options_.namespaces;
  if (scopes.empty()) scopes.push_back("");
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& scope : scopes) synced_[scope] = false;
  }
  for (size_t i = 0; i < scopes.size(); ++i) cancellers_.push_back(std::make_unique<http::StreamCanceller>());
  for (size_t i = 0; i < scopes.size(); ++i) {
    threads_.emplace_back(
        [this, scope = scopes[i], canceller = cancellers_[i].get()] { Run(scope, canceller); });
  }
}

void PodCache::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  for (const auto& canceller : cancellers_) canceller->Cancel();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

bool PodCache::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

bool PodCache::Pause(absl::Duration d) {
  while (d > absl::ZeroDuration()) {
    if (stopping()) return false;
    const absl::Duration slice = std::min(d, kPauseSlice);
    clock_->SleepFor(slice);
    d -= slice;
  }
  return !stopping();
}

bool PodCache::synced() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (synced_.empty()) return false;
  return std::all_of(synced_.begin(), synced_.end(), [](const auto& scope) { return scope.second; });
}

CacheLookup PodCache::Get(const std::string& ns, const std::string& name, Json* pod) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = pods_.find(KeyOf(ns, name));
  if (it == pods_.end()) return CacheLookup::kMiss;
  if (it->second.pod.is_null()) {
    return clock_->Now() - it->second.deleted_at < options_.tombstone_ttl ? CacheLookup::kDeleted
                                                                          : CacheLookup::kMiss;
  }
  *pod = it->second.pod;
  return CacheLookup::kHit;
}

void PodCache::Upsert(const std::string& scope, Json pod) {
  const std::string key = KeyOf(Metadata(pod, "namespace"), Metadata(pod, "name"));
  auto it = pods_.find(key);
  if (it != pods_.end() && !it->second.pod.is_null() && Older(pod, it->second.pod)) return;
  pods_[key] = Entry{Slim(pod), scope, absl::InfinitePast()};
}

void PodCache::Tombstone(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  it->second.pod = nullptr;
  it->second.deleted_at = clock_->Now();
}

void PodCache::Observe(const Json& pod) {
  const std::string ns = Metadata(pod, "namespace");
  std::lock_guard<std::mutex> lock(mu_);
  // The scope that watches the Pod's namespace: its own, or the cluster-wide one.
  const std::string scope = synced_.count(ns) > 0 ? ns : "";
  Upsert(scope, pod);
}

void PodCache::ObserveDeleted(const std::string& ns, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = KeyOf(ns, name);
  if (pods_.count(key) == 0) pods_[key] = Entry{nullptr, synced_.count(ns) > 0 ? ns : "", clock_->Now()};
  Tombstone(key);
}

std::optional<std::vector<Json>> PodCache::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (synced_.empty() ||
      !std::all_of(synced_.begin(), synced_.end(), [](const auto& scope) { return scope.second; })) {
    return std::nullopt;
  }
  std::vector<Json> pods;
  for (const auto& [key, entry] : pods_) {
    if (!entry.pod.is_null()) pods.push_back(entry.pod);
  }
  return pods;
}

PodCache::Stats PodCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::StatusOr<std::string> PodCache::List(const std::string& scope) {
  std::vector<Json> items;
  std::string continue_token;
  std::string resource_version;
  do {
    auto page = client_->ListPods(scope, options_.label_selector, options_.list_page_size, continue_token,
                                  clock_->Now() + absl::Minutes(1));
    if (!page.ok()) return page.status();
    for (Json& item : page->items) items.push_back(std::move(item));
    continue_token = page->continue_token;
    resource_version = page->resource_version;
  } while (!continue_token.empty());

  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.lists;
  // The list replaces the scope: a Pod it no longer has was deleted while nobody watched.
  std::set<std::string> listed;
  for (Json& item : items) {
    listed.insert(KeyOf(Metadata(item, "namespace"), Metadata(item, "name")));
    Upsert(scope, std::move(item));
  }
  for (auto& [key, entry] : pods_) {
    if (entry.scope == scope && !entry.pod.is_null() && listed.count(key) == 0) Tombstone(key);
  }
  // Old tombstones go.
  for (auto it = pods_.begin(); it != pods_.end();) {
    const bool expired =
        it->second.pod.is_null() && clock_->Now() - it->second.deleted_at >= options_.tombstone_ttl;
    it = expired ? pods_.erase(it) : std::next(it);
  }
  synced_[scope] = true;
  return resource_version;
}

void PodCache::Apply(const std::string& scope, const kube::WatchEvent& event, std::string* resource_version) {
  const std::string version = Metadata(event.object, "resourceVersion");
  std::lock_guard<std::mutex> lock(mu_);
  if (event.type == "ADDED" || event.type == "MODIFIED") {
    Upsert(scope, event.object);
  } else if (event.type == "DELETED") {
    Tombstone(KeyOf(Metadata(event.object, "namespace"), Metadata(event.object, "name")));
  }
  if (!version.empty()) *resource_version = version;  // BOOKMARKs only advance it
}

void PodCache::Run(const std::string& scope, http::StreamCanceller* canceller) {
  std::mt19937_64 random(std::hash<std::string>()(scope) ^
                         static_cast<uint64_t>(absl::ToUnixNanos(clock_->Now())));
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const std::string where = scope.empty() ? "cluster-wide" : scope;

  std::string resource_version;
  int failures = 0;
  while (!stopping()) {
    if (resource_version.empty()) {
      auto listed = List(scope);
      if (!listed.ok()) {
        Log(LogLevel::kWarning, kComponent, "pod cache: list failed; retrying",
            {{"scope", where}, {"error", std::string(listed.status().message())}});
        if (!Pause(Backoff(options_.backoff, failures++, uniform(random)))) return;
        continue;
      }
      resource_version = *listed;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.watches;
    }
    const absl::Time started = clock_->Now();
    const absl::Duration timeout = options_.watch_timeout * (1.0 + uniform(random));
    const absl::Status watched = client_->WatchPods(
        scope, options_.label_selector, resource_version, timeout,
        [&](const kube::WatchEvent& event) {
          Apply(scope, event, &resource_version);
          return true;
        },
        canceller);
    if (stopping()) return;
    if (kube::IsGone(watched)) {
      // The version is too old: everything since must come from a new list.
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.relists_after_gone;
      resource_version.clear();
      continue;
    }
    if (watched.ok() || clock_->Now() - started >= kHealthyWatch) failures = 0;
    if (!watched.ok()) {
      Log(LogLevel::kWarning, kComponent, "pod cache: watch ended; watching again",
          {{"scope", where}, {"error", std::string(watched.message())}});
      if (!Pause(Backoff(options_.backoff, failures++, uniform(random)))) return;
    }
  }
}

}  // namespace fna::executor::kubernetes
