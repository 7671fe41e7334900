#include "agent/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fna::metrics {
namespace {

[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "metrics: %s\n", std::string(message).c_str());
  std::abort();
}

void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; label names allow no ':' and must not start with "__".
bool ValidName(absl::string_view name, bool label) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  if (label && name.substr(0, 2) == "__") return false;
  return std::all_of(name.begin(), name.end(),
                     [label](char c) { return absl::ascii_isalnum(c) || c == '_' || (!label && c == ':'); });
}

// HELP text escapes '\\' and newlines; label values also '"'.
std::string Escape(absl::string_view text, bool quotes) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} plus `extra` (e.g. le="0.5") when not empty; "" for no labels at all.
std::string LabelText(const std::vector<std::string>& names, const LabelValues& values,
                      const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"", Escape(values[i], true), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "{" : ",", extra);
  if (!out.empty()) out += "}";
  return out;
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {  // 2^53: exact as an integer
    return absl::StrCat(static_cast<int64_t>(value));
  }
  for (int precision = 1; precision < 17; ++precision) {
    const std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

void Counter::Increment(double amount) {
  if (amount > 0) AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(*bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  const size_t bucket =
      std::isnan(value)
          ? bounds_.size()
          : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  if (!std::isnan(value)) AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.cumulative.reserve(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(total);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

template <typename Metric>
Metric* Family<Metric>::Get(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    Die(absl::StrCat(values.size(), " label values for ", label_names_.size(), " label names"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(values);
  if (it != series_.end()) return it->second.get();
  if (series_.size() >= kMaxSeriesPerFamily) {
    std::unique_ptr<Metric>& overflow = series_[LabelValues(values.size(), kOverflowLabelValue)];
    if (overflow == nullptr) overflow = make_();
    return overflow.get();
  }
  return series_.emplace(values, make_()).first->second.get();
}

template <typename Metric>
std::vector<std::pair<LabelValues, const Metric*>> Family<Metric>::Series() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<LabelValues, const Metric*>> series;
  series.reserve(series_.size());
  for (const auto& [values, metric] : series_) series.emplace_back(values, metric.get());
  return series;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

GaugeCallback::GaugeCallback(GaugeCallback&& other) noexcept
    : registry_(other.registry_), name_(std::move(other.name_)) {
  other.registry_ = nullptr;
}

GaugeCallback& GaugeCallback::operator=(GaugeCallback&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = other.registry_;
    name_ = std::move(other.name_);
    other.registry_ = nullptr;
  }
  return *this;
}

GaugeCallback::~GaugeCallback() { Reset(); }

void GaugeCallback::Reset() {
  if (registry_ != nullptr) registry_->RemoveCallback(name_);
  registry_ = nullptr;
}

Registry::Entry& Registry::Register(absl::string_view name, absl::string_view help, Kind kind,
                                    std::vector<std::string> label_names, std::vector<double> bounds) {
  if (!ValidName(name, false)) Die(absl::StrCat("invalid metric name \"", name, "\""));
  for (const std::string& label : label_names) {
    if (!ValidName(label, true) || (kind == Kind::kHistogram && label == "le")) {
      Die(absl::StrCat("invalid label name \"", label, "\" of ", name));
    }
  }
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    Die(absl::StrCat("the buckets of ", name, " are not strictly ascending"));
  }
  for (const std::unique_ptr<Entry>& entry : entries_) {
    if (entry->name != name) continue;
    if (entry->kind != kind || entry->label_names != label_names || entry->bounds != bounds ||
        kind == Kind::kCallback) {
      Die(absl::StrCat("metric ", name, " registered twice, differently"));
    }
    return *entry;
  }
  auto entry = std::make_unique<Entry>();
  entry->name = std::string(name);
  entry->help = std::string(help);
  entry->kind = kind;
  entry->label_names = std::move(label_names);
  entry->bounds = std::move(bounds);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Family<Counter>* Registry::AddCounter(absl::string_view name, absl::string_view help,
                                      std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = Register(name, help, Kind::kCounter, std::move(label_names), {});
  if (entry.counters == nullptr) {
    entry.counters =
        std::make_unique<Family<Counter>>(entry.label_names, [] { return std::make_unique<Counter>(); });
    if (entry.label_names.empty()) entry.counters->Get();  // exported as 0 from the start
  }
  return entry.counters.get();
}

Family<Gauge>* Registry::AddGauge(absl::string_view name, absl::string_view help,
                                  std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = Register(name, help, Kind::kGauge, std::move(label_names), {});
  if (entry.gauges == nullptr) {
    entry.gauges =
        std::make_unique<Family<Gauge>>(entry.label_names, [] { return std::make_unique<Gauge>(); });
    if (entry.label_names.empty()) entry.gauges->Get();
  }
  return entry.gauges.get();
}

Family<Histogram>* Registry::AddHistogram(absl::string_view name, absl::string_view help,
                                          std::vector<std::string> label_names, std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = Register(name, help, Kind::kHistogram, std::move(label_names), std::move(bounds));
  if (entry.histograms == nullptr) {
    const std::vector<double>* entry_bounds = &entry.bounds;  // the entry is never moved or destroyed
    entry.histograms = std::make_unique<Family<Histogram>>(
        entry.label_names, [entry_bounds] { return std::make_unique<Histogram>(entry_bounds); });
    if (entry.label_names.empty()) entry.histograms->Get();
  }
  return entry.histograms.get();
}

GaugeCallback Registry::AddGaugeCallback(absl::string_view name, absl::string_view help,
                                         std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::unique_ptr<Entry>& entry : entries_) {
    if (entry->name == name && entry->kind == Kind::kCallback && !entry->read) {
      entry->read = std::move(read);  // registered again after its callback was removed
      return GaugeCallback(this, entry->name);
    }
  }
  Entry& entry = Register(name, help, Kind::kCallback, {}, {});
  entry.read = std::move(read);
  return GaugeCallback(this, entry.name);
}

void Registry::RemoveCallback(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::unique_ptr<Entry>& entry : entries_) {
    if (entry->name == name && entry->kind == Kind::kCallback) entry->read = nullptr;
  }
}

std::string Registry::TextExposition() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const std::unique_ptr<Entry>& entry : entries_) {
    if (entry->kind == Kind::kCallback && !entry->read) continue;
    const char* type = entry->kind == Kind::kCounter     ? "counter"
                       : entry->kind == Kind::kHistogram ? "histogram"
                                                         : "gauge";
    absl::StrAppend(&out, "# HELP ", entry->name, " ", Escape(entry->help, false), "\n# TYPE ", entry->name,
                    " ", type, "\n");
    const std::vector<std::string>& names = entry->label_names;
    switch (entry->kind) {
      case Kind::kCounter:
        for (const auto& [values, counter] : entry->counters->Series()) {
          absl::StrAppend(&out, entry->name, LabelText(names, values), " ", FormatValue(counter->value()),
                          "\n");
        }
        break;
      case Kind::kGauge:
        for (const auto& [values, gauge] : entry->gauges->Series()) {
          absl::StrAppend(&out, entry->name, LabelText(names, values), " ", FormatValue(gauge->value()),
                          "\n");
        }
        break;
      case Kind::kHistogram:
        for (const auto& [values, histogram] : entry->histograms->Series()) {
          const Histogram::Snapshot snapshot = histogram->snapshot();
          for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
            const std::string le = absl::StrCat(
                "le=\"", i < entry->bounds.size() ? FormatValue(entry->bounds[i]) : "+Inf", "\"");
            absl::StrAppend(&out, entry->name, "_bucket", LabelText(names, values, le), " ",
                            snapshot.cumulative[i], "\n");
          }
          absl::StrAppend(&out, entry->name, "_sum", LabelText(names, values), " ", FormatValue(snapshot.sum),
                          "\n", entry->name, "_count", LabelText(names, values), " ",
                          snapshot.cumulative.back(), "\n");
        }
        break;
      case Kind::kCallback:
        absl::StrAppend(&out, entry->name, " ", FormatValue(entry->read()), "\n");
        break;
    }
  }
  return out;
}

}  // namespace fna::metrics
