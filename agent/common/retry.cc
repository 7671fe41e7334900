#include "agent/common/retry.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fna {

absl::Duration Backoff(const RetryOptions& options, int retry, double random) {
  const double factor = std::pow(std::max(options.multiplier, 1.0), std::min(retry, 62));
  absl::Duration base = options.max_backoff;
  const double base_seconds = absl::ToDoubleSeconds(options.initial_backoff) * factor;
  if (std::isfinite(base_seconds) && base_seconds < absl::ToDoubleSeconds(options.max_backoff)) {
    base = absl::Seconds(base_seconds);
  }
  const double jitter = std::clamp(options.jitter, 0.0, 1.0);
  const double scale = 1.0 + jitter * (2.0 * std::clamp(random, 0.0, 1.0) - 1.0);
  return base * scale;
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;  // overflow
    return absl::Seconds(seconds);
  }
  // IMF-fixdate, then the obsolete RFC 850 and asctime formats (RFC 9110 §5.6.7).
  static constexpr const char* kFormats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                             "%a %b %e %H:%M:%S %Y"};
  for (const char* format : kFormats) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, std::string(value), absl::UTCTimeZone(), &when, &error)) {
      return std::max(when - now, absl::ZeroDuration());
    }
  }
  return std::nullopt;
}

}  // namespace fna
