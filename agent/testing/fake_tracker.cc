#include "agent/testing/fake_tracker.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fna {
namespace {

int Count(const std::map<std::string, int, std::less<>>& counts, absl::string_view key) {
  const auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace

absl::Status FakeTracker::TakeFailure(Failure& failure) {
  if (failure.standing) return failure.status;
  if (failure.remaining > 0) {
    --failure.remaining;
    return failure.status;
  }
  return absl::OkStatus();
}

void FakeTracker::Apply(const std::vector<neptune::Field>& fields, Run& run) {
  for (const neptune::Field& field : fields) {
    neptune::FieldValue value = field.value;
    if (auto* added = std::get_if<neptune::StringSet>(&value)) {
      const auto it = run.fields.find(field.path);
      if (it != run.fields.end()) {
        if (const auto* existing = std::get_if<neptune::StringSet>(&it->second)) {
          added->values.insert(added->values.end(), existing->values.begin(), existing->values.end());
        }
      }
      std::sort(added->values.begin(), added->values.end());
      added->values.erase(std::unique(added->values.begin(), added->values.end()), added->values.end());
    }
    run.fields.insert_or_assign(field.path, std::move(value));
  }
}

absl::StatusOr<neptune::RunInfo> FakeTracker::CreateRun(const neptune::RunRef& ref,
                                                        const std::vector<neptune::Field>& fields,
                                                        absl::Time /*deadline*/) {
  std::lock_guard<std::mutex> lock(mu_);
  ++create_run_calls_[ref.custom_run_id];
  if (absl::Status failure = TakeFailure(create_failure_); !failure.ok()) return failure;
  auto it = runs_.find(ref.custom_run_id);
  if (it == runs_.end()) {
    Run run;
    run.project = ref.project;
    run.routing_rule = ref.routing_rule;
    const std::string run_id = absl::StrCat("RUN-", runs_.size() + 1);
    run.info = {run_id, absl::StrCat("https://neptune.test/", ref.project, "/e/", run_id)};
    Apply(fields, run);
    it = runs_.emplace(ref.custom_run_id, std::move(run)).first;
  } else if (it->second.project != ref.project) {
    return absl::FailedPreconditionError(absl::StrCat(
        "custom run id ", ref.custom_run_id, " already used in ", it->second.project, ", not ", ref.project));
  }
  ++it->second.create_runs;
  return it->second.info;
}

absl::Status FakeTracker::Write(const neptune::RunRef& ref, const std::vector<neptune::Field>& fields,
                                absl::Time /*deadline*/) {
  std::lock_guard<std::mutex> lock(mu_);
  ++write_calls_[ref.custom_run_id];
  if (absl::Status failure = TakeFailure(write_failure_); !failure.ok()) return failure;
  const auto it = runs_.find(ref.custom_run_id);
  if (it == runs_.end() || it->second.project != ref.project) {
    return absl::NotFoundError(absl::StrCat("no run ", ref.custom_run_id, " in ", ref.project));
  }
  Apply(fields, it->second);
  ++it->second.writes;
  return absl::OkStatus();
}

std::string FakeTracker::FallbackLink(const neptune::RunRef& ref) const {
  return absl::StrCat("https://neptune.test/", ref.project, "/runs?customId=", ref.custom_run_id);
}

std::optional<FakeTracker::Run> FakeTracker::GetRun(absl::string_view custom_run_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = runs_.find(custom_run_id);
  if (it == runs_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FakeTracker::CustomRunIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, run] : runs_) ids.push_back(id);
  return ids;
}

int FakeTracker::CreateRunCalls(absl::string_view custom_run_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return Count(create_run_calls_, custom_run_id);
}

int FakeTracker::WriteCalls(absl::string_view custom_run_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return Count(write_calls_, custom_run_id);
}

void FakeTracker::FailNextCreateRuns(int n, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  create_failure_.remaining = n;
  create_failure_.status = std::move(status);
}

void FakeTracker::FailNextWrites(int n, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  write_failure_.remaining = n;
  write_failure_.status = std::move(status);
}

void FakeTracker::FailAllCreateRuns(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  create_failure_.standing = true;
  create_failure_.status = std::move(status);
}

void FakeTracker::FailAllWrites(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  write_failure_.standing = true;
  write_failure_.status = std::move(status);
}

void FakeTracker::ClearFailures() {
  std::lock_guard<std::mutex> lock(mu_);
  create_failure_ = Failure();
  write_failure_ = Failure();
}

}  // namespace fna
