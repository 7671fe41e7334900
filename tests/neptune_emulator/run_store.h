#ifndef FNA_TESTS_NEPTUNE_EMULATOR_RUN_STORE_H_
#define FNA_TESTS_NEPTUNE_EMULATOR_RUN_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/clock.h"
#include "nlohmann/json.hpp"

namespace fna::neptune_emulator {

// A Neptune project (workspace = organization).
struct Project {
  std::string id;               // UUID
  std::string organization_id;  // UUID, shared by the projects of one workspace
  std::string workspace;
  std::string name;
  std::string key;  // prefix of short ids, e.g. "SAN" → "SAN-1"
  absl::Time created;

  std::string QualifiedName() const { return workspace + "/" + name; }
};

// One attribute of a run, as the inspection API shows it.
//   type: the AttributeTypeDTO value: "string", "int", "float", "bool", "datetime", "stringSet",
//     "floatSeries", "stringSeries", "imageSeries", "complex", "fileSet" or "experimentState".
//   value: string/int/float/bool → that JSON value; datetime → epoch milliseconds (integer);
//     stringSet → sorted array of strings;
//     floatSeries/stringSeries → array of {"step", "value", "timestampMilliseconds"};
//     imageSeries → array of {"step", "timestampMilliseconds", "name", "description", "dataLength"};
//     complex → {"type", "content"}; fileSet → []; experimentState → "running" or "idle".
//   config: floatSeries → {"min", "max", "unit"} as configured (only the keys given); null otherwise.
struct Attribute {
  std::string type;
  nlohmann::json value;
  nlohmann::json config;

  friend bool operator==(const Attribute& a, const Attribute& b) {
    return a.type == b.type && a.value == b.value && a.config == b.config;
  }
};

// A copy of a run's state.
struct RunSnapshot {
  std::string id;         // UUID (experimentId)
  std::string short_id;   // "<KEY>-<n>" (sys/id)
  std::string custom_id;  // empty when created without one
  std::string project;    // "workspace/project"
  std::string project_id;
  absl::Time creation_time;
  absl::Time ping_time;                         // creation time until the first ping
  std::map<std::string, Attribute> attributes;  // by path, sys/* included (sys/state computed now)
};

// An entry of executeOperations' 200 response (OperationError).
struct OperationError {
  std::string type;  // "metadata_inconsistency"
  std::string description;
};

// The emulator's data: projects, runs and their typed attributes, and the rules of executeOperations. Knows
// nothing of HTTP or auth. Not thread-safe: the emulator serializes every call under its own mutex. The clock
// is not owned and must outlive the store.
class RunStore {
 public:
  struct Settings {
    const Clock* clock = nullptr;
    absl::Duration idle_after = absl::Seconds(30);
    std::string owner = "emulator-user";
    // The operation keys the Swagger `Operation` definition declares (every property except `path`).
    std::vector<std::string> operation_keys;
  };

  explicit RunStore(Settings settings);

  // Adds `workspace/project` with `key` (derived from the name when empty). Returns the existing project when
  // it is already there with the same or no key. InvalidArgument for a malformed name or key, AlreadyExists
  // when the project exists with another key or the key is taken in the workspace.
  absl::StatusOr<const Project*> AddProject(absl::string_view qualified_name, absl::string_view key);
  // By UUID or "workspace/project"; nullptr when unknown.
  const Project* FindProject(absl::string_view identifier) const;
  std::vector<const Project*> Projects() const;

  struct CreateResult {
    std::string run_id;
    bool created = false;  // false: an existing run with the same custom id was returned
  };
  // createExperiment for a run: a new run, or the existing one with the same (project, custom_id).
  CreateResult CreateRun(const Project& project, const std::optional<std::string>& custom_id);

  // Resolves a run by UUID (and, when `allow_qualified`, by "workspace/project/SHORT-ID"); empty when
  // unknown.
  std::optional<std::string> ResolveRun(absl::string_view identifier, bool allow_qualified) const;
  std::optional<std::string> FindRunByCustomId(absl::string_view project, absl::string_view custom_id) const;
  std::optional<std::string> FindRunByShortId(absl::string_view short_id) const;

  // What the schema cannot say about an executeOperations body (already valid against the schema): every
  // element names exactly one operation and a well-formed path (non-empty, no empty segment, at most 1024
  // characters). InvalidArgument naming `body[i]...` otherwise.
  absl::Status CheckOperations(const nlohmann::json& operations) const;
  // Applies the operations in order; each either applies whole or yields one metadata_inconsistency error.
  std::vector<OperationError> Execute(const std::string& run_id, const nlohmann::json& operations);
  void Ping(const std::string& run_id);

  // Response bodies.
  nlohmann::json ExperimentJson(const std::string& run_id) const;            // Experiment
  nlohmann::json ExperimentAttributesJson(const std::string& run_id) const;  // ExperimentAttributesDTO
  static nlohmann::json ProjectJson(const Project& project);                 // ProjectDTO
  nlohmann::json ProjectWithRoleJson(const Project& project) const;          // ProjectWithRoleDTO
  nlohmann::json OrganizationsJson() const;                                  // [OrganizationWithRoleDTO]

  RunSnapshot Snapshot(const std::string& run_id) const;
  std::vector<std::string> RunIds() const;  // in creation order
  // Forgets every run (projects stay).
  void ClearRuns();

 private:
  struct SeriesPoint {
    double step = 0;
    nlohmann::json value;
    int64_t timestamp_ms = 0;
  };
  struct AttrState {
    std::string type;
    nlohmann::json value;
    std::set<std::string> strings;
    std::vector<SeriesPoint> points;
    nlohmann::json config;
    std::string channel_id;
  };
  struct Run {
    std::string id;
    std::string short_id;
    std::string custom_id;
    const Project* project = nullptr;
    int64_t sequence = 0;
    absl::Time created;
    absl::Time modified;
    absl::Time pinged;
    std::map<std::string, AttrState> attributes;
  };

  std::optional<std::string> Apply(Run& run, const std::string& path, const std::string& op,
                                   const nlohmann::json& payload);
  std::string StateNow(const Run& run) const;
  nlohmann::json AttributeJson(const Run& run, const std::string& path, const AttrState& attr) const;
  Attribute ToAttribute(const Run& run, const std::string& path, const AttrState& attr) const;
  std::map<std::string, AttrState> WithComputed(const Run& run) const;
  const Run& GetRun(const std::string& run_id) const;

  Settings settings_;
  std::vector<std::unique_ptr<Project>> projects_;
  std::map<std::string, std::string> organization_ids_;  // workspace → UUID
  std::map<std::string, std::unique_ptr<Run>> runs_;     // by UUID
  std::map<std::string, int64_t> next_number_;           // project id → next short-id number
  int64_t next_sequence_ = 0;
};

}  // namespace fna::neptune_emulator

#endif  // FNA_TESTS_NEPTUNE_EMULATOR_RUN_STORE_H_
