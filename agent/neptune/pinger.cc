#include "agent/neptune/pinger.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace fna::neptune {
namespace {

constexpr absl::string_view kComponent = "neptune";

double Burst(const PingerOptions& options) { return std::max(1.0, options.max_pings_per_second); }

metrics::Family<metrics::Counter>* Pings(metrics::Registry* registry) {
  return registry->AddCounter("flyte_neptune_agent_neptune_pings_total",
                              "Pings sent to Neptune to keep the runs of live tasks active, by result.",
                              {"result"});
}

}  // namespace

Pinger::Pinger(PingerOptions options, const Clock* clock, PingFunction ping)
    : options_(std::move(options)),
      clock_(clock),
      ping_(std::move(ping)),
      tokens_(Burst(options_)),
      last_refill_(clock->Now()),
      registry_(options_.metrics),
      pings_ok_(Pings(registry_.get())->Get({"ok"})),
      pings_failed_metric_(Pings(registry_.get())->Get({"failed"})),
      skipped_(registry_
                   ->AddCounter("flyte_neptune_agent_neptune_pings_skipped_total",
                                "Due pings left for a later round by the ping budget "
                                "(tracker.neptune.max_pings_per_second).")
                   ->Get()),
      postponed_(registry_
                     ->AddCounter("flyte_neptune_agent_neptune_pings_postponed_total",
                                  "Due pings left for the next round because Neptune was unreachable.")
                     ->Get()),
      pinged_runs_(registry_->AddGaugeCallback("flyte_neptune_agent_neptune_pinged_runs",
                                               "Runs being pinged (their tasks polled recently).",
                                               [this] { return static_cast<double>(active_runs()); })) {}

std::string Pinger::Key(const RunRef& ref) {
  return absl::StrCat(ref.routing_rule, "\n", ref.project, "\n", ref.custom_run_id);
}

void Pinger::Touch(const RunRef& ref, const std::string& experiment_id) {
  const absl::Time now = clock_->Now();
  const std::string key = Key(ref);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto final = finalized_.find(key); final != finalized_.end()) {
    if (now - final->second < options_.idle_expiry) return;
    finalized_.erase(final);
  }
  auto [it, added] = runs_.try_emplace(key);
  Entry& entry = it->second;
  if (added) {
    entry.next_due = now;
  }
  entry.target = PingTarget{ref, experiment_id};
  entry.last_touched = now;
}

void Pinger::MarkFinal(const RunRef& ref) {
  const std::string key = Key(ref);
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  runs_.erase(key);
  finalized_[key] = now;
}

void Pinger::Refill(absl::Time now) {
  if (now > last_refill_) {
    const double earned =
        absl::ToDoubleSeconds(now - last_refill_) * std::max(0.0, options_.max_pings_per_second);
    tokens_ = std::min(Burst(options_), tokens_ + earned);
    last_refill_ = now;
  }
}

int Pinger::RunDue() {
  struct Due {
    std::string key;
    PingTarget target;
    absl::Time was_due;
  };
  std::vector<Due> due;
  absl::Time now = clock_->Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_) return 0;
    for (auto it = runs_.begin(); it != runs_.end();) {
      it = now - it->second.last_touched >= options_.idle_expiry ? runs_.erase(it) : std::next(it);
    }
    for (auto it = finalized_.begin(); it != finalized_.end();) {
      it = now - it->second >= options_.idle_expiry ? finalized_.erase(it) : std::next(it);
    }
    Refill(now);
    std::vector<std::pair<absl::Time, const std::string*>> order;
    for (const auto& [key, entry] : runs_) {
      if (entry.next_due <= now) order.emplace_back(entry.next_due, &key);
    }
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : *a.second < *b.second;
    });
    const size_t allowed = static_cast<size_t>(std::floor(tokens_));
    if (order.size() > allowed) {
      skipped_->Increment(static_cast<double>(order.size() - allowed));
      order.resize(allowed);
    }
    tokens_ -= static_cast<double>(order.size());
    due.reserve(order.size());
    for (const auto& [was_due, key] : order) {
      Entry& entry = runs_[*key];
      due.push_back(Due{*key, entry.target, was_due});
      entry.next_due = now + options_.interval;  // claimed: no other round pings it within the interval
    }
    running_ = !due.empty();
  }
  if (due.empty()) return 0;

  int sent = 0;
  int failed = 0;
  absl::Status unreachable;
  size_t next = 0;
  for (; next < due.size(); ++next) {
    const Due& run = due[next];
    const absl::Status status = ping_(run.target, clock_->Now() + options_.ping_timeout);
    ++sent;
    if (status.ok()) continue;
    ++failed;
    if (absl::IsNotFound(status)) {
      Log(LogLevel::kWarning, kComponent, "run no longer exists in Neptune; pings stopped",
          {{"project", run.target.ref.project},
           {"custom_run_id", run.target.ref.custom_run_id},
           {"error", std::string(status.message())}});
      std::lock_guard<std::mutex> lock(mu_);
      runs_.erase(run.key);
    } else if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
      unreachable = status;
      ++next;
      break;
    } else {
      Log(LogLevel::kWarning, kComponent, "ping failed",
          {{"project", run.target.ref.project},
           {"custom_run_id", run.target.ref.custom_run_id},
           {"error", std::string(status.message())}});
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Runs left out after Neptune turned out unreachable are due again next round (their tokens refunded).
  for (size_t i = next; i < due.size(); ++i) {
    if (auto it = runs_.find(due[i].key); it != runs_.end()) it->second.next_due = due[i].was_due;
  }
  tokens_ = std::min(Burst(options_), tokens_ + static_cast<double>(due.size() - next));
  pings_sent_ += sent;
  pings_failed_ += failed;
  pings_ok_->Increment(sent - failed);
  pings_failed_metric_->Increment(failed);
  postponed_->Increment(static_cast<double>(due.size() - next));
  running_ = false;
  if (!unreachable.ok()) {
    Log(LogLevel::kWarning, kComponent,
        absl::StrCat("Neptune unreachable: ", due.size() - next, " due pings postponed to the next round"),
        {{"error", std::string(unreachable.message())}});
  }
  return sent;
}

size_t Pinger::active_runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return runs_.size();
}

int64_t Pinger::pings_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pings_sent_;
}

int64_t Pinger::pings_failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pings_failed_;
}

}  // namespace fna::neptune
