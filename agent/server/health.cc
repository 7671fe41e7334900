#include "agent/server/health.h"

#include "absl/strings/str_cat.h"

namespace fna::server {

Health::Health(const Clock* clock, absl::Duration liveness_timeout)
    : clock_(clock), liveness_timeout_(liveness_timeout) {}

void Health::AddReadinessCheck(std::string name, std::function<bool()> ready) {
  std::lock_guard<std::mutex> lock(mu_);
  checks_.emplace_back(std::move(name), std::move(ready));
}

void Health::SetServing() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kStarting) return;
  phase_ = Phase::kServing;
  last_heartbeat_ = clock_->Now();
}

void Health::SetDraining() {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = Phase::kDraining;
}

Health::Phase Health::phase() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_;
}

Health::Report Health::Readiness() const {
  std::vector<std::pair<std::string, std::function<bool()>>> checks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ == Phase::kStarting) return {false, "starting"};
    if (phase_ == Phase::kDraining) return {false, "draining"};
    checks = checks_;
  }
  for (const auto& [name, ready] : checks) {
    if (!ready()) return {false, absl::StrCat(name, " not ready")};
  }
  return {true, ""};
}

void Health::Heartbeat() {
  std::lock_guard<std::mutex> lock(mu_);
  last_heartbeat_ = clock_->Now();
}

Health::Report Health::Liveness() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kServing) return {true, ""};
  const absl::Duration silent = clock_->Now() - last_heartbeat_;
  if (silent <= liveness_timeout_) return {true, ""};
  return {false, absl::StrCat("the gRPC server has not answered a probe for ", absl::FormatDuration(silent))};
}

}  // namespace fna::server
