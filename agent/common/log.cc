#include "agent/common/log.h"

#include <unistd.h>

#include <iostream>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "nlohmann/json.hpp"

namespace fna {
namespace {

struct Sink {
  std::mutex mu;
  LogFormat format ABSL_GUARDED_BY(mu) = LogFormat::kAuto;
  LogLevel min_level ABSL_GUARDED_BY(mu) = LogLevel::kInfo;
  std::ostream* out ABSL_GUARDED_BY(mu) = nullptr;  // nullptr: std::cerr
};

Sink& GlobalSink() {
  static Sink* const sink = new Sink();
  return *sink;
}

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// Text values are quoted when they hold spaces, quotes or '=' so that lines stay parseable.
std::string TextValue(const std::string& value) {
  if (!value.empty() && value.find_first_of(" \"=\n\t") == std::string::npos) return value;
  return nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void ConfigureLogging(LogFormat format, LogLevel min_level, std::ostream* out) {
  Sink& sink = GlobalSink();
  std::lock_guard<std::mutex> lock(sink.mu);
  sink.format = format;
  sink.min_level = min_level;
  sink.out = out;
}

void Log(LogLevel level, absl::string_view component, absl::string_view msg, const LogFields& fields) {
  Sink& sink = GlobalSink();
  std::lock_guard<std::mutex> lock(sink.mu);
  if (level < sink.min_level) return;
  std::ostream& out = sink.out != nullptr ? *sink.out : std::cerr;
  LogFormat format = sink.format;
  if (format == LogFormat::kAuto) {
    format = (sink.out == nullptr && isatty(STDERR_FILENO)) ? LogFormat::kText : LogFormat::kJson;
  }
  const std::string ts = absl::FormatTime("%Y-%m-%d%ET%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json record;
    record["ts"] = ts;
    record["level"] = LevelName(level);
    record["component"] = component;
    record["msg"] = RedactSecrets(msg);
    for (const auto& [key, value] : fields) record[key] = RedactSecrets(value);
    line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = absl::StrCat(ts, " ", absl::AsciiStrToUpper(std::string(LevelName(level))), " ", component, ": ",
                        RedactSecrets(msg));
    for (const auto& [key, value] : fields)
      absl::StrAppend(&line, " ", key, "=", TextValue(RedactSecrets(value)));
  }
  out << line << '\n';
  out.flush();
}

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  const std::string t = absl::AsciiStrToLower(std::string(text));
  if (t == "debug") {
    *level = LogLevel::kDebug;
  } else if (t == "info") {
    *level = LogLevel::kInfo;
  } else if (t == "warning" || t == "warn") {
    *level = LogLevel::kWarning;
  } else if (t == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

bool ParseLogFormat(absl::string_view text, LogFormat* format) {
  const std::string t = absl::AsciiStrToLower(std::string(text));
  if (t == "auto") {
    *format = LogFormat::kAuto;
  } else if (t == "json") {
    *format = LogFormat::kJson;
  } else if (t == "text") {
    *format = LogFormat::kText;
  } else {
    return false;
  }
  return true;
}

}  // namespace fna
