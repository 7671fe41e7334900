#ifndef FNA_AGENT_COMMON_LOG_H_
#define FNA_AGENT_COMMON_LOG_H_

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace fna {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat {
  kAuto,  // text when the output is a terminal, JSON lines otherwise
  kJson,  // one JSON object per line: ts, level, component, msg, then the fields
  kText,  // "ts LEVEL component: msg key=value ..."
};

// Structured context of a record, in order: Flyte ids of the task being handled (project, domain, execution,
// node, retry, task_type), the run (run_id), and anything else the caller adds ("error", ...).
using LogFields = std::vector<std::pair<std::string, std::string>>;

// Configures the process-wide logger. `out` is not owned and must outlive all logging; nullptr means stderr.
// Safe to call at any time; records in flight go to the old or the new sink, whole.
void ConfigureLogging(LogFormat format, LogLevel min_level, std::ostream* out = nullptr);

// Writes one record as a single line. Thread-safe. Every registered secret (common/secret.h) is redacted from
// the message and the field values before the line is written, so no caller can leak one.
void Log(LogLevel level, absl::string_view component, absl::string_view msg, const LogFields& fields = {});

// Parses "debug", "info", "warning" ("warn"), "error"; "auto", "json", "text". Return false on anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
bool ParseLogFormat(absl::string_view text, LogFormat* format);

}  // namespace fna

#endif  // FNA_AGENT_COMMON_LOG_H_
