#ifndef FNA_AGENT_METRICS_METRICS_H_
#define FNA_AGENT_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"

// Prometheus metrics: counters, gauges and histograms with fixed buckets, grouped in families by label set,
// exported in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Naming (prometheus.io/docs/practices/naming): base units (_seconds, _bytes), counters end in _total. Label
// values must come from small fixed sets (task types the agent serves, gRPC codes, endpoints): never
// execution or run ids. A family refuses to grow past kMaxSeriesPerFamily series; further label sets all land
// in one series whose label values are all "_overflow".
namespace fna::metrics {

// The values of one series' labels, in the order of its family's label names.
using LabelValues = std::vector<std::string>;

inline constexpr size_t kMaxSeriesPerFamily = 1000;
inline constexpr char kOverflowLabelValue[] = "_overflow";

// Request latencies in seconds: 1 ms to 1 min.
inline const std::vector<double>& LatencyBuckets() {
  static const auto* const buckets =
      new std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *buckets;
}

// Monotonic. Thread-safe and lock-free.
class Counter final {
 public:
  // Adds `amount`; negative amounts are ignored (a counter never goes down).
  void Increment(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Goes up and down. Thread-safe and lock-free.
class Gauge final {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations in fixed buckets (upper bounds, inclusive, ascending; +Inf is implicit) and sums them.
// Thread-safe and lock-free. A scrape concurrent with Observe may see the sum without the count or the other
// way round; the buckets and the count always agree.
class Histogram final {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (= the count)
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; the last is +Inf
  std::atomic<double> sum_{0};
};

// The series of one metric name, one per label set, created on first use. Thread-safe: Get takes a short lock
// (callers on hot paths may keep the pointer it returns).
template <typename Metric>
class Family final {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<Metric>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The series for `values` (one per label name; a wrong number of values is a programming error and aborts).
  // The pointer stays valid as long as the registry.
  Metric* Get(const LabelValues& values = {});

  const std::vector<std::string>& label_names() const { return label_names_; }
  // Every series, ordered by label values.
  std::vector<std::pair<LabelValues, const Metric*>> Series() const;

 private:
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<Metric>> series_ ABSL_GUARDED_BY(mu_);
};

class Registry;

// A gauge computed at each scrape by a callback; unregistered by destruction (which waits for a scrape that
// is calling it). Move-only.
class GaugeCallback final {
 public:
  GaugeCallback() = default;
  GaugeCallback(GaugeCallback&& other) noexcept;
  GaugeCallback& operator=(GaugeCallback&& other) noexcept;
  ~GaugeCallback();

 private:
  friend class Registry;
  GaugeCallback(Registry* registry, std::string name) : registry_(registry), name_(std::move(name)) {}
  void Reset();
  Registry* registry_ = nullptr;
  std::string name_;
};

// The set of metric families a process exports. Thread-safe. Registering a name again with the same kind,
// labels and buckets returns the existing family (so several users can share one); with anything else it is a
// programming error and aborts, as are invalid metric or label names. The registry must outlive every family
// pointer and GaugeCallback it handed out.
class Registry final {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>* AddCounter(absl::string_view name, absl::string_view help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>* AddGauge(absl::string_view name, absl::string_view help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>* AddHistogram(absl::string_view name, absl::string_view help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);
  // A label-less gauge whose value `read` returns at each scrape; `read` must be thread-safe and cheap, and
  // must not call the registry. One callback per name.
  [[nodiscard]] GaugeCallback AddGaugeCallback(absl::string_view name, absl::string_view help,
                                               std::function<double()> read);

  // Every family in registration order: "# HELP", "# TYPE" and one line per series (histograms: cumulative
  // _bucket series with le, then _sum and _count). Families without series show only HELP and TYPE.
  std::string TextExposition() const;

  // The Content-Type of TextExposition().
  static constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

 private:
  friend class GaugeCallback;
  enum class Kind { kCounter, kGauge, kHistogram, kCallback };
  struct Entry {
    std::string name;
    std::string help;
    Kind kind;
    std::vector<std::string> label_names;
    std::vector<double> bounds;  // histograms
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
    std::function<double()> read;  // callbacks; empty once unregistered
  };

  // The entry called `name`, added if new; aborts when one exists with another kind, labels or buckets.
  Entry& Register(absl::string_view name, absl::string_view help, Kind kind,
                  std::vector<std::string> label_names, std::vector<double> bounds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveCallback(const std::string& name);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// A number in the exposition format: integers exactly, others with the shortest round-tripping form, "+Inf",
// "-Inf", "NaN".
std::string FormatValue(double value);

// Metric families are owned by a registry; a component given none keeps its metrics in a private one, so that
// instrumented code never checks for null. Holds `shared` when it is set, else a private registry.
class RegistryOrPrivate {
 public:
  explicit RegistryOrPrivate(Registry* shared)
      : own_(shared == nullptr ? std::make_unique<Registry>() : nullptr),
        registry_(shared == nullptr ? own_.get() : shared) {}
  Registry* get() const { return registry_; }
  Registry* operator->() const { return registry_; }

 private:
  std::unique_ptr<Registry> own_;
  Registry* registry_;
};

}  // namespace fna::metrics

#endif  // FNA_AGENT_METRICS_METRICS_H_
