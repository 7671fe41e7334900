#ifndef FNA_AGENT_SERVER_HEALTH_H_
#define FNA_AGENT_SERVER_HEALTH_H_

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"

namespace fna::server {

// What the agent tells Kubernetes and load balancers (grpc.health.v1, HTTP /readyz and /healthz).
//
// Ready: the configuration is loaded, the agent serves and is not draining, and every readiness check passes
// (the executor's: e.g. the Kubernetes executor's Pod cache has synced). Neptune and the token files are
// deliberately not checks: every replica shares them, so their trouble would take the whole agent out of
// propeller's reach; they only degrade tracking (metrics, logs, Resource.message).
//
// Alive: not wedged. While serving, the gRPC serving loop must have answered a probe (Heartbeat) within the
// liveness timeout. While starting or draining the agent counts as alive: a draining agent must not be
// killed.
//
// Thread-safe. Time comes from the injected clock.
class Health {
 public:
  enum class Phase { kStarting, kServing, kDraining };
  struct Report {
    bool ok = false;
    std::string reason;  // why not, e.g. "draining"; empty when ok
  };

  // `clock` is not owned and must outlive this.
  explicit Health(const Clock* clock, absl::Duration liveness_timeout = absl::Seconds(30));

  // Adds a condition of readiness, called on every readiness query (so it must be cheap and thread-safe).
  void AddReadinessCheck(std::string name, std::function<bool()> ready);

  // Starting -> serving; the liveness clock starts now. Ignored once draining.
  void SetServing();
  // -> draining, for good.
  void SetDraining();
  Phase phase() const;

  Report Readiness() const;

  // Records that the serving loop answered a probe now.
  void Heartbeat();
  Report Liveness() const;

 private:
  const Clock* const clock_;
  const absl::Duration liveness_timeout_;
  mutable std::mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  absl::Time last_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::function<bool()>>> checks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fna::server

#endif  // FNA_AGENT_SERVER_HEALTH_H_
