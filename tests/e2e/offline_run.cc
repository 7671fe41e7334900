#include "tests/e2e/offline_run.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/agent_process.h"

namespace fna::e2e {

std::map<std::string, OfflineRun> ReadOfflineRuns(const std::string& neptune_directory,
                                                  std::vector<std::string>* errors) {
  namespace fs = std::filesystem;
  std::map<std::string, OfflineRun> runs;
  const fs::path offline = fs::path(neptune_directory) / "offline";
  if (!fs::exists(offline)) return runs;
  for (const auto& entry : fs::directory_iterator(offline)) {
    OfflineRun run;
    run.directory = entry.path().string();
    auto sidecar =
        nlohmann::json::parse(ReadFile(run.directory + "/flyte-neptune-agent.json"), nullptr, false);
    if (sidecar.is_discarded()) {
      errors->push_back(run.directory + ": no sidecar");
      continue;
    }
    run.custom_run_id = sidecar.value("customRunId", "");
    run.project = sidecar.value("project", "");
    run.metadata_text = ReadFile(run.directory + "/metadata.json");
    run.metadata = nlohmann::json::parse(run.metadata_text, nullptr, false);
    if (!absl::SimpleAtoi(ReadFile(run.directory + "/last_put_version"), &run.last_put_version)) {
      errors->push_back(run.directory + ": last_put_version is not a number");
    }

    std::vector<std::pair<long, fs::path>> logs;
    for (const auto& file : fs::directory_iterator(entry.path())) {
      const std::string name = file.path().filename().string();
      long first = 0;
      if (name.rfind("data-", 0) == 0 && absl::SimpleAtoi(name.substr(5, name.size() - 9), &first)) {
        logs.emplace_back(first, file.path());
      }
    }
    std::sort(logs.begin(), logs.end());
    long expected = 1;
    for (const auto& [first, path] : logs) {
      for (absl::string_view line : absl::StrSplit(ReadFile(path.string()), '\n', absl::SkipEmpty())) {
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_discarded() || !record.contains("obj") || !record.contains("version")) {
          errors->push_back(absl::StrCat(path.string(), ": bad record ", line));
          continue;
        }
        if (record["version"].get<long>() != expected) {
          errors->push_back(
              absl::StrCat(path.string(), ": version ", record["version"].dump(), ", expected ", expected));
        }
        expected = record["version"].get<long>() + 1;
        const nlohmann::json& obj = record["obj"];
        std::vector<std::string> segments = obj["path"].get<std::vector<std::string>>();
        const std::string field_path = absl::StrJoin(segments, "/");
        const std::string type = obj["type"].get<std::string>();
        OfflineField& field = run.fields[field_path];
        if (type == "AddStrings") {
          if (field.type != "AddStrings") field.value = nlohmann::json::array();
          for (const auto& value : obj["values"]) {
            if (std::find(field.value.begin(), field.value.end(), value) == field.value.end()) {
              field.value.push_back(value);
            }
          }
        } else if (type.rfind("Assign", 0) == 0) {
          field.value = obj["value"];
        } else {
          errors->push_back(absl::StrCat(path.string(), ": unexpected operation ", type));
        }
        field.type = type;
        run.records.push_back(record);
      }
    }
    runs[run.custom_run_id] = std::move(run);
  }
  return runs;
}

}  // namespace fna::e2e
