#include "tests/neptune_emulator/run_store.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/neptune_emulator/tokens.h"

namespace fna::neptune_emulator {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxPathLength = 1024;

// The attribute type each operation writes.
const std::map<std::string, std::string>& TypeOfOperation() {
  static const auto* const kTypes = new std::map<std::string, std::string>{
      {"assignString", "string"},
      {"assignInt", "int"},
      {"assignFloat", "float"},
      {"assignBool", "bool"},
      {"assignDatetime", "datetime"},
      {"assignComplex", "complex"},
      {"logFloats", "floatSeries"},
      {"clearFloatSeries", "floatSeries"},
      {"configFloatSeries", "floatSeries"},
      {"logStrings", "stringSeries"},
      {"clearStringSeries", "stringSeries"},
      {"logImages", "imageSeries"},
      {"clearImageSeries", "imageSeries"},
      {"insertStrings", "stringSet"},
      {"removeStrings", "stringSet"},
      {"clearStringSet", "stringSet"},
      {"deleteFiles", "fileSet"},
  };
  return *kTypes;
}

// The sys/* attributes a client may write, with their types. Everything else under sys/ is read-only.
const std::map<std::string, std::string>& WritableSys() {
  static const auto* const kWritable = new std::map<std::string, std::string>{
      {"sys/name", "string"},          {"sys/description", "string"}, {"sys/tags", "stringSet"},
      {"sys/group_tags", "stringSet"}, {"sys/failed", "bool"},        {"sys/hostname", "string"},
  };
  return *kWritable;
}

bool ValidNamePart(absl::string_view part) {
  if (part.empty() || part.size() > 64) return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool ValidKey(absl::string_view key) {
  if (key.empty() || key.size() > 10 || !absl::ascii_isupper(static_cast<unsigned char>(key[0])))
    return false;
  for (char c : key) {
    if (!absl::ascii_isupper(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

bool LooksLikeUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

std::string FormatStep(double step) { return absl::StrCat(step); }

}  // namespace

RunStore::RunStore(Settings settings) : settings_(std::move(settings)) {
  if (settings_.clock == nullptr) settings_.clock = Clock::Real();
}

absl::StatusOr<const Project*> RunStore::AddProject(absl::string_view qualified_name, absl::string_view key) {
  std::vector<absl::string_view> parts = absl::StrSplit(qualified_name, '/');
  if (parts.size() != 2 || !ValidNamePart(parts[0]) || !ValidNamePart(parts[1]))
    return absl::InvalidArgumentError(absl::StrCat("project name \"", qualified_name,
                                                   "\" is not workspace/project (letters, digits, - _ .)"));
  if (!key.empty() && !ValidKey(key))
    return absl::InvalidArgumentError(absl::StrCat(
        "project key \"", key, "\" is not 1-10 upper-case letters and digits, starting with a letter"));
  const std::string workspace(parts[0]);
  const std::string name(parts[1]);
  for (const auto& p : projects_) {
    if (p->workspace == workspace && p->name == name) {
      if (key.empty() || p->key == key) return p.get();
      return absl::AlreadyExistsError(absl::StrCat("project ", qualified_name, " exists with key ", p->key));
    }
  }
  auto key_taken = [&](absl::string_view k) {
    for (const auto& p : projects_) {
      if (p->workspace == workspace && p->key == k) return true;
    }
    return false;
  };
  std::string chosen(key);
  if (chosen.empty()) {
    std::string base;
    for (char c : name) {
      if (absl::ascii_isalpha(static_cast<unsigned char>(c)) && base.size() < 3)
        base.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
    if (base.empty()) base = "PRJ";
    chosen = base;
    for (int n = 2; key_taken(chosen); ++n) chosen = absl::StrCat(base, n);
  } else if (key_taken(chosen)) {
    return absl::AlreadyExistsError(
        absl::StrCat("project key ", chosen, " is taken in workspace ", workspace));
  }
  auto project = std::make_unique<Project>();
  project->id = NewUuid();
  auto org = organization_ids_.find(workspace);
  if (org == organization_ids_.end()) org = organization_ids_.emplace(workspace, NewUuid()).first;
  project->organization_id = org->second;
  project->workspace = workspace;
  project->name = name;
  project->key = chosen;
  project->created = settings_.clock->Now();
  projects_.push_back(std::move(project));
  return projects_.back().get();
}

const Project* RunStore::FindProject(absl::string_view identifier) const {
  for (const auto& p : projects_) {
    if (p->id == identifier || p->QualifiedName() == identifier) return p.get();
  }
  return nullptr;
}

std::vector<const Project*> RunStore::Projects() const {
  std::vector<const Project*> out;
  for (const auto& p : projects_) out.push_back(p.get());
  return out;
}

RunStore::CreateResult RunStore::CreateRun(const Project& project,
                                           const std::optional<std::string>& custom_id) {
  if (custom_id.has_value()) {
    if (auto existing = FindRunByCustomId(project.QualifiedName(), *custom_id)) return {*existing, false};
  }
  auto run = std::make_unique<Run>();
  run->id = NewUuid();
  run->short_id = absl::StrCat(project.key, "-", ++next_number_[project.id]);
  run->custom_id = custom_id.value_or("");
  run->project = &project;
  run->sequence = ++next_sequence_;
  run->created = run->modified = run->pinged = settings_.clock->Now();
  auto& a = run->attributes;
  auto set = [&a](const std::string& path, const std::string& type, json value) {
    AttrState s;
    s.type = type;
    s.value = std::move(value);
    a[path] = std::move(s);
  };
  set("sys/id", "string", run->short_id);
  if (!run->custom_id.empty()) set("sys/custom_run_id", "string", run->custom_id);
  set("sys/creation_time", "datetime", Millis(run->created));
  set("sys/owner", "string", settings_.owner);
  set("sys/name", "string", "");
  set("sys/description", "string", "");
  set("sys/failed", "bool", false);
  set("sys/trashed", "bool", false);
  set("sys/size", "float", 0.0);
  set("sys/monitoring_time", "int", 0);
  set("sys/family", "string", run->id);
  set("sys/tags", "stringSet", nullptr);
  set("sys/group_tags", "stringSet", nullptr);
  std::string id = run->id;
  runs_[id] = std::move(run);
  return {id, true};
}

std::optional<std::string> RunStore::ResolveRun(absl::string_view identifier, bool allow_qualified) const {
  if (runs_.count(std::string(identifier)) > 0) return std::string(identifier);
  if (!allow_qualified) return std::nullopt;
  const size_t slash = identifier.rfind('/');
  if (slash == absl::string_view::npos) return std::nullopt;
  const Project* project = FindProject(identifier.substr(0, slash));
  if (project == nullptr || LooksLikeUuid(identifier.substr(0, slash))) return std::nullopt;
  const absl::string_view short_id = identifier.substr(slash + 1);
  for (const auto& [id, run] : runs_) {
    if (run->project == project && run->short_id == short_id) return id;
  }
  return std::nullopt;
}

std::optional<std::string> RunStore::FindRunByCustomId(absl::string_view project,
                                                       absl::string_view custom_id) const {
  const Project* p = FindProject(project);
  if (p == nullptr || custom_id.empty()) return std::nullopt;
  for (const auto& [id, run] : runs_) {
    if (run->project == p && run->custom_id == custom_id) return id;
  }
  return std::nullopt;
}

std::optional<std::string> RunStore::FindRunByShortId(absl::string_view short_id) const {
  for (const auto& [id, run] : runs_) {
    if (run->short_id == short_id) return id;
  }
  return std::nullopt;
}

absl::Status RunStore::CheckOperations(const nlohmann::json& operations) const {
  if (!operations.is_array()) return absl::InvalidArgumentError("body: expected array");
  for (size_t i = 0; i < operations.size(); ++i) {
    const json& op = operations[i];
    const std::string where = absl::StrCat("body[", i, "]");
    if (!op.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected object"));
    std::vector<std::string> present;
    for (const std::string& key : settings_.operation_keys) {
      auto it = op.find(key);
      if (it != op.end() && !it->is_null()) present.push_back(key);
    }
    if (present.empty())
      return absl::InvalidArgumentError(absl::StrCat(where, ": no operation (expected exactly one of ",
                                                     absl::StrJoin(settings_.operation_keys, ", "), ")"));
    if (present.size() > 1)
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": more than one operation (", absl::StrJoin(present, ", "), "); expected exactly one"));
    auto path = op.find("path");
    if (path == op.end() || path->is_null())
      return absl::InvalidArgumentError(absl::StrCat(where, ".path: required"));
    const std::string text = path->get<std::string>();  // a string: the schema says so
    if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".path: must not be empty"));
    if (text.size() > kMaxPathLength)
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".path: longer than ", kMaxPathLength, " characters"));
    for (absl::string_view segment : absl::StrSplit(text, '/')) {
      if (segment.empty())
        return absl::InvalidArgumentError(absl::StrCat(where, ".path: empty segment in ", json(text).dump(),
                                                       " (segments are joined with '/')"));
    }
  }
  return absl::OkStatus();
}

std::vector<OperationError> RunStore::Execute(const std::string& run_id, const nlohmann::json& operations) {
  Run& run = *runs_.at(run_id);
  std::vector<OperationError> errors;
  bool changed = false;
  for (const json& op : operations) {
    const std::string path = op["path"].get<std::string>();
    std::string name;
    for (const std::string& key : settings_.operation_keys) {
      auto it = op.find(key);
      if (it != op.end() && !it->is_null()) name = key;
    }
    if (std::optional<std::string> error = Apply(run, path, name, op[name])) {
      errors.push_back({"metadata_inconsistency", *error});
    } else {
      changed = true;
    }
  }
  if (changed) run.modified = settings_.clock->Now();
  return errors;
}

std::optional<std::string> RunStore::Apply(Run& run, const std::string& path, const std::string& op,
                                           const nlohmann::json& payload) {
  const bool is_sys = path == "sys" || absl::StartsWith(path, "sys/");
  auto writable = WritableSys().find(path);
  if (is_sys && writable == WritableSys().end())
    return absl::StrCat("Cannot perform ", op, " on ", path, ": the attribute is read-only");
  if (op == "deleteAttribute") {
    if (is_sys) return absl::StrCat("Cannot delete system attribute ", path);
    run.attributes.erase(path);
    return std::nullopt;
  }
  auto type_it = TypeOfOperation().find(op);
  if (type_it == TypeOfOperation().end())
    return absl::StrCat("Operation ", op, " on ", path, " is not supported by the emulator");
  const std::string& type = type_it->second;
  auto existing = run.attributes.find(path);
  if (existing != run.attributes.end() && existing->second.type != type)
    return absl::StrCat("Cannot perform ", op, " on ", path, ": the attribute is of type ",
                        existing->second.type, ", the operation needs ", type);
  if (existing == run.attributes.end()) {
    if (is_sys && writable->second != type)
      return absl::StrCat("Cannot perform ", op, " on ", path, ": the attribute must be of type ",
                          writable->second);
    // An attribute cannot sit where a namespace is, nor inside another attribute.
    for (const auto& [other, unused] : run.attributes) {
      if (absl::StartsWith(other, path + "/"))
        return absl::StrCat("Cannot create ", path, ": it is a namespace (holds ", other, ")");
      if (absl::StartsWith(path, other + "/"))
        return absl::StrCat("Cannot create ", path, ": ", other, " is an attribute, not a namespace");
    }
  }
  // The emulator stores no files: deleting files of an absent file set changes nothing.
  if (op == "deleteFiles" && existing == run.attributes.end()) return std::nullopt;
  AttrState next;
  if (existing != run.attributes.end()) {
    next = existing->second;
  } else {
    next.type = type;
    if (type == "imageSeries") next.channel_id = NewUuid();
  }

  if (op == "assignString") {
    auto cond = payload.find("currentValueCond");
    if (cond != payload.end() && !cond->is_null() &&
        (existing == run.attributes.end() || next.value != *cond))
      return absl::StrCat("Cannot assign ", path, ": current value is not ", cond->dump());
    next.value = payload["value"];
  } else if (op == "assignInt" || op == "assignBool") {
    next.value = payload["value"];
  } else if (op == "assignFloat") {
    next.value = payload["value"].get<double>();
  } else if (op == "assignDatetime") {
    next.value = payload["valueMilliseconds"];
  } else if (op == "assignComplex") {
    next.value = {{"type", payload["__type"].value("name", "")}, {"content", payload["__content"]}};
  } else if (op == "logFloats" || op == "logStrings" || op == "logImages") {
    std::optional<double> last;
    if (!next.points.empty()) last = next.points.back().step;
    std::vector<SeriesPoint> added;
    for (const json& entry : payload["entries"]) {
      SeriesPoint point;
      auto step = entry.find("step");
      if (step != entry.end() && !step->is_null()) {
        point.step = step->get<double>();
        if (last.has_value() && point.step <= *last)
          return absl::StrCat("Cannot log to ", path, ": step ", FormatStep(point.step),
                              " is not greater than the previous step ", FormatStep(*last));
      } else {
        point.step = last.has_value() ? *last + 1 : 0;
      }
      last = point.step;
      point.timestamp_ms = entry["timestampMilliseconds"].get<int64_t>();
      if (op == "logFloats") {
        point.value = entry["value"].get<double>();
      } else if (op == "logStrings") {
        point.value = entry["value"];
      } else {
        json image = json::object();
        auto value = entry.find("value");
        if (value != entry.end() && value->is_object()) {
          image["name"] = value->value("name", "");
          image["description"] = value->value("description", "");
          image["dataLength"] = value->value("data", "").size();
        }
        point.value = std::move(image);
      }
      added.push_back(std::move(point));
    }
    next.points.insert(next.points.end(), added.begin(), added.end());
  } else if (op == "clearFloatSeries" || op == "clearStringSeries" || op == "clearImageSeries") {
    next.points.clear();
  } else if (op == "configFloatSeries") {
    next.config = json::object();
    for (const char* key : {"min", "max", "unit"}) {
      auto it = payload.find(key);
      if (it != payload.end() && !it->is_null()) next.config[key] = *it;
    }
  } else if (op == "insertStrings") {
    for (const json& v : payload["values"]) next.strings.insert(v.get<std::string>());
  } else if (op == "removeStrings") {
    for (const json& v : payload["values"]) next.strings.erase(v.get<std::string>());
  } else if (op == "clearStringSet") {
    next.strings.clear();
  }
  // deleteFiles: the emulator stores no files, so there is nothing to delete.
  run.attributes[path] = std::move(next);
  return std::nullopt;
}

void RunStore::Ping(const std::string& run_id) { runs_.at(run_id)->pinged = settings_.clock->Now(); }

std::string RunStore::StateNow(const Run& run) const {
  return settings_.clock->Now() - run.pinged < settings_.idle_after ? "running" : "idle";
}

std::map<std::string, RunStore::AttrState> RunStore::WithComputed(const Run& run) const {
  std::map<std::string, AttrState> all = run.attributes;
  auto set = [&all](const std::string& path, const std::string& type, json value) {
    AttrState s;
    s.type = type;
    s.value = std::move(value);
    all[path] = std::move(s);
  };
  set("sys/modification_time", "datetime", Millis(run.modified));
  set("sys/ping_time", "datetime", Millis(run.pinged));
  set("sys/state", "experimentState", StateNow(run));
  set("sys/running_time", "float", std::max(0.0, absl::ToDoubleSeconds(run.pinged - run.created)));
  return all;
}

Attribute RunStore::ToAttribute(const Run& run, const std::string& path, const AttrState& attr) const {
  Attribute out;
  out.type = attr.type;
  const std::string& t = attr.type;
  if (t == "stringSet") {
    out.value = json::array();
    for (const auto& s : attr.strings) out.value.push_back(s);
  } else if (t == "floatSeries" || t == "stringSeries" || t == "imageSeries") {
    out.value = json::array();
    for (const auto& p : attr.points) {
      json point = {{"step", p.step}, {"timestampMilliseconds", p.timestamp_ms}};
      if (t == "imageSeries") {
        point.update(p.value);
      } else {
        point["value"] = p.value;
      }
      out.value.push_back(std::move(point));
    }
    if (t == "floatSeries") out.config = attr.config.is_null() ? json(nullptr) : attr.config;
  } else if (t == "fileSet") {
    out.value = json::array();
  } else {
    out.value = attr.value;
  }
  return out;
}

nlohmann::json RunStore::AttributeJson(const Run& run, const std::string& path, const AttrState& attr) const {
  const std::string& t = attr.type;
  json props = {{"attributeName", path}, {"attributeType", t}};
  if (t == "string" || t == "int" || t == "bool" || t == "float" || t == "experimentState") {
    props["value"] = attr.value;
  } else if (t == "datetime") {
    props["value"] = FormatDateTime(absl::FromUnixMillis(attr.value.get<int64_t>()));
  } else if (t == "stringSet") {
    props["values"] = json::array();
    for (const auto& s : attr.strings) props["values"].push_back(s);
  } else if (t == "complex") {
    props["content"] = attr.value.value("content", "");
    props["typeDefinition"] = {{"name", attr.value.value("type", "")}};
  } else if (t == "floatSeries") {
    props["config"] = attr.config.is_object() ? attr.config : json::object();
    props["hasPreview"] = false;
    if (!attr.points.empty()) {
      double min = attr.points[0].value.get<double>(), max = min, sum = 0, sum_sq = 0;
      for (const auto& p : attr.points) {
        const double v = p.value.get<double>();
        min = std::min(min, v);
        max = std::max(max, v);
        sum += v;
        sum_sq += v * v;
      }
      const double n = static_cast<double>(attr.points.size());
      const double average = sum / n;
      props["last"] = attr.points.back().value;
      props["lastStep"] = attr.points.back().step;
      props["min"] = min;
      props["max"] = max;
      props["average"] = average;
      props["variance"] = std::max(0.0, sum_sq / n - average * average);
    }
  } else if (t == "stringSeries") {
    if (!attr.points.empty()) {
      props["last"] = attr.points.back().value;
      props["lastStep"] = attr.points.back().step;
    }
  } else if (t == "imageSeries") {
    props["channelId"] = attr.channel_id;
    if (!attr.points.empty()) props["lastStep"] = attr.points.back().step;
  } else if (t == "fileSet") {
    props["size"] = 0;
  }
  return {{"name", path}, {"type", t}, {t + "Properties", std::move(props)}};
}

const RunStore::Run& RunStore::GetRun(const std::string& run_id) const { return *runs_.at(run_id); }

nlohmann::json RunStore::ExperimentJson(const std::string& run_id) const {
  const Run& run = GetRun(run_id);
  json out = {{"id", run.id},
              {"shortId", run.short_id},
              {"organizationId", run.project->organization_id},
              {"organizationName", run.project->workspace},
              {"projectId", run.project->id},
              {"projectName", run.project->name},
              {"parentId", run.project->id},
              {"type", "run"},
              {"trashed", false}};
  if (!run.custom_id.empty()) out["customId"] = run.custom_id;
  return out;
}

nlohmann::json RunStore::ExperimentAttributesJson(const std::string& run_id) const {
  const Run& run = GetRun(run_id);
  const std::map<std::string, AttrState> all = WithComputed(run);
  json attributes = json::array();
  for (const auto& [path, attr] : all) attributes.push_back(AttributeJson(run, path, attr));
  auto props = [&](const std::string& path, const std::string& type, json fallback) {
    auto it = all.find(path);
    if (it != all.end()) return AttributeJson(run, path, it->second)[type + "Properties"];
    AttrState s;
    s.type = type;
    s.value = std::move(fallback);
    return AttributeJson(run, path, s)[type + "Properties"];
  };
  json system = {
      {"creationTime", props("sys/creation_time", "datetime", Millis(run.created))},
      {"customId", props("sys/custom_run_id", "string", "")},
      {"description", props("sys/description", "string", "")},
      {"failed", props("sys/failed", "bool", false)},
      {"family", props("sys/family", "string", run.id)},
      {"modificationTime", props("sys/modification_time", "datetime", Millis(run.modified))},
      {"monitoringTime", props("sys/monitoring_time", "int", 0)},
      {"name", props("sys/name", "string", "")},
      {"owner", props("sys/owner", "string", settings_.owner)},
      {"pingTime", props("sys/ping_time", "datetime", Millis(run.pinged))},
      {"runningTime", props("sys/running_time", "float", 0.0)},
      {"shortId", props("sys/id", "string", run.short_id)},
      {"size", props("sys/size", "float", 0.0)},
      {"state", props("sys/state", "experimentState", StateNow(run))},
      {"tags", props("sys/tags", "stringSet", nullptr)},
      {"trashed", props("sys/trashed", "bool", false)},
  };
  if (all.count("sys/hostname") > 0) system["hostname"] = props("sys/hostname", "string", "");
  return {{"id", run.id},
          {"organizationId", run.project->organization_id},
          {"organizationName", run.project->workspace},
          {"projectId", run.project->id},
          {"projectName", run.project->name},
          {"trashed", false},
          {"attributes", std::move(attributes)},
          {"systemAttributes", std::move(system)}};
}

nlohmann::json RunStore::ProjectJson(const Project& project) {
  return {{"id", project.id},
          {"name", project.name},
          {"organizationName", project.workspace},
          {"organizationId", project.organization_id},
          {"projectKey", project.key},
          {"version", 2}};
}

nlohmann::json RunStore::ProjectWithRoleJson(const Project& project) const {
  json out = ProjectJson(project);
  const std::string created = FormatDateTime(project.created);
  out.update({{"codeAccess", "default"},
              {"avatarUrl", ""},
              {"avatarSource", "default"},
              {"organizationType", "team"},
              {"featured", false},
              {"userCount", 1},
              {"visibility", "priv"},
              {"timeOfCreation", created},
              {"lastActivity", created},
              {"archived", false},
              {"description", ""},
              {"userRoleInOrganization", "owner"},
              {"userRoleInProject", "manager"}});
  return out;
}

nlohmann::json RunStore::OrganizationsJson() const {
  json out = json::array();
  for (const auto& [workspace, id] : organization_ids_) {
    absl::Time created = absl::InfiniteFuture();
    for (const auto& p : projects_) {
      if (p->workspace == workspace) created = std::min(created, p->created);
    }
    const json common = {{"id", id},
                         {"name", workspace},
                         {"created", FormatDateTime(created)},
                         {"paymentStatus", "active"},
                         {"avatarUrl", ""},
                         {"avatarSource", "default"},
                         {"organizationType", "team"},
                         {"limitsEnforced", false},
                         {"pricingPlan", "enterprise"}};
    json organization = common;
    organization.update({{"pricingPlanDefinition", {{"plan", "enterprise"}, {"displayName", "Enterprise"}}},
                         {"supportsMonitoringHoursLimits", false},
                         {"traits", json::object()},
                         {"userflowIdentityHash", ""}});
    json entry = common;
    entry.update({{"userRole", "owner"}, {"organization", std::move(organization)}});
    out.push_back(std::move(entry));
  }
  return out;
}

RunSnapshot RunStore::Snapshot(const std::string& run_id) const {
  const Run& run = GetRun(run_id);
  RunSnapshot out;
  out.id = run.id;
  out.short_id = run.short_id;
  out.custom_id = run.custom_id;
  out.project = run.project->QualifiedName();
  out.project_id = run.project->id;
  out.creation_time = run.created;
  out.ping_time = run.pinged;
  for (const auto& [path, attr] : WithComputed(run)) out.attributes[path] = ToAttribute(run, path, attr);
  return out;
}

std::vector<std::string> RunStore::RunIds() const {
  std::vector<const Run*> runs;
  for (const auto& [id, run] : runs_) runs.push_back(run.get());
  std::sort(runs.begin(), runs.end(), [](const Run* a, const Run* b) { return a->sequence < b->sequence; });
  std::vector<std::string> out;
  for (const Run* run : runs) out.push_back(run->id);
  return out;
}

void RunStore::ClearRuns() {
  runs_.clear();
  next_number_.clear();
}

}  // namespace fna::neptune_emulator
