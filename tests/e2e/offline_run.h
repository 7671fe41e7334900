#ifndef FNA_TESTS_E2E_OFFLINE_RUN_H_
#define FNA_TESTS_E2E_OFFLINE_RUN_H_

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace fna::e2e {

// One attribute of an offline run as its records leave it: the operation type that last wrote it and the
// value (string sets accumulate).
struct OfflineField {
  std::string type;  // AssignString, AssignInt, AssignFloat, AssignBool, AssignDatetime, AddStrings
  nlohmann::json value;
};

// An offline run directory, parsed record by record as `neptune sync` would replay it.
struct OfflineRun {
  std::string directory;
  std::string custom_run_id;
  std::string project;
  nlohmann::json metadata;  // metadata.json
  std::string metadata_text;
  long last_put_version = 0;
  std::vector<nlohmann::json> records;  // every {"obj", "version", "at"}, in order
  std::map<std::string, OfflineField> fields;
};

// Every run under <neptune_directory>/offline, by custom run id. Records that break the format (version gaps,
// unparseable lines, unknown types) are reported through `errors`.
std::map<std::string, OfflineRun> ReadOfflineRuns(const std::string& neptune_directory,
                                                  std::vector<std::string>* errors);

}  // namespace fna::e2e

#endif  // FNA_TESTS_E2E_OFFLINE_RUN_H_
