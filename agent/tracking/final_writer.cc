#include "agent/tracking/final_writer.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "agent/common/status_macros.h"
#include "agent/tracking/fields.h"
#include "agent/tracking/log_fields.h"
#include "agent/tracking/resource_meta.h"

namespace fna::tracking {

FinalWriter::FinalWriter(Options options, neptune::Tracker* tracker, executor::Executor* executor,
                         const Clock* clock)
    : options_(std::move(options)),
      tracker_(tracker),
      executor_(executor),
      clock_(clock),
      registry_(options_.metrics),
      finalized_late_(registry_
                          ->AddCounter("flyte_neptune_agent_runs_finalized_late_total",
                                       "Neptune runs whose final fields the background writer wrote.")
                          ->Get()),
      abandoned_(
          registry_
              ->AddCounter(
                  "flyte_neptune_agent_final_writes_abandoned_total",
                  "Final writes given up because Neptune refuses them for good (project or run deleted).")
              ->Get()),
      pending_(registry_->AddGaugeCallback("flyte_neptune_agent_final_writes_pending",
                                           "Final writes waiting in the background writer.",
                                           [this] { return static_cast<double>(pending()); })) {}

void FinalWriter::Enqueue(FinalWrite write) {
  const std::string key = write.meta().execution_id();
  std::lock_guard<std::mutex> lock(mu_);
  Entry& entry = entries_[key];
  entry.write = std::move(write);
  entry.next_attempt = clock_->Now();
  entry.backoff = options_.initial_backoff;
}

absl::Status FinalWriter::Resume() {
  FNA_ASSIGN_OR_RETURN(std::vector<std::string> records, executor_->ListPendingFinalWrites());
  size_t resumed = 0;
  for (const std::string& record : records) {
    FinalWrite write;
    if (!write.ParseFromString(record) || write.meta().execution_id().empty()) {
      Log(LogLevel::kError, "tracking", "skipping an unreadable pending final write record",
          {{"bytes", absl::StrCat(record.size())}});
      continue;
    }
    Enqueue(std::move(write));
    ++resumed;
  }
  if (resumed > 0) {
    Log(LogLevel::kInfo, "tracking", "resuming pending final writes", {{"count", absl::StrCat(resumed)}});
  }
  return absl::OkStatus();
}

absl::Status FinalWriter::Attempt(const FinalWrite& write, absl::Time deadline) {
  const ResourceMeta& meta = write.meta();
  const neptune::RunRef ref{meta.settings().project(), meta.custom_run_id(), meta.settings().routing_rule()};
  FNA_RETURN_IF_ERROR(
      tracker_
          ->CreateRun(ref, InitialFields(meta, options_.console_url, write.outcome().working_directory()),
                      deadline)
          .status());
  FNA_RETURN_IF_ERROR(tracker_->Write(ref, FinalFields(meta, write.outcome()), deadline));
  const absl::Status marked = executor_->MarkRunFinalized(TaskRefOf(meta));
  return absl::IsNotFound(marked) ? absl::OkStatus()
                                  : marked;  // the task's object is gone: nothing to record
}

size_t FinalWriter::RunDue() {
  std::vector<FinalWrite> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_->Now();
    for (const auto& [key, entry] : entries_) {
      if (entry.next_attempt <= now) due.push_back(entry.write);
    }
  }
  for (const FinalWrite& write : due) Done(write, Attempt(write, clock_->Now() + options_.call_budget));
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void FinalWriter::Done(const FinalWrite& write, const absl::Status& status) {
  // Neptune refuses it for good (the project or run was deleted, or the write is malformed): retrying is
  // pointless, and the executor's record of it is cleared so that no restarted agent retries it either.
  const bool hopeless = absl::IsNotFound(status) || absl::IsInvalidArgument(status);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(write.meta().execution_id());
    if (it == entries_.end()) return;
    Entry& entry = it->second;
    ++entry.attempts;
    LogFields fields = ResourceLogFields(write.meta());
    if (status.ok()) {
      finalized_late_->Increment();
      Log(LogLevel::kInfo, "tracking", "finalized run late", fields);
      entries_.erase(it);
      return;
    }
    fields.emplace_back("attempts", absl::StrCat(entry.attempts));
    fields.emplace_back("error", std::string(status.message()));
    if (!hopeless) {
      fields.emplace_back("retry_in", absl::FormatDuration(entry.backoff));
      Log(LogLevel::kWarning, "tracking", "final write failed; retrying", fields);
      entry.next_attempt = clock_->Now() + entry.backoff;
      entry.backoff = std::min(entry.backoff * 2, options_.max_backoff);
      return;
    }
    abandoned_->Increment();
    Log(LogLevel::kError, "tracking", "final write abandoned: Neptune refuses it for good", fields);
    entries_.erase(it);
  }
  if (absl::Status cleared = executor_->MarkRunFinalized(TaskRefOf(write.meta())); !cleared.ok()) {
    LogFields fields = ResourceLogFields(write.meta());
    fields.emplace_back("error", std::string(cleared.message()));
    Log(LogLevel::kWarning, "tracking", "cannot clear the abandoned final write's record", fields);
  }
}

size_t FinalWriter::Drain(absl::Time deadline) {
  std::vector<FinalWrite> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, entry] : entries_) pending.push_back(entry.write);
  }
  for (const FinalWrite& write : pending) {
    const absl::Time now = clock_->Now();
    if (now >= deadline) break;
    Done(write, Attempt(write, std::min(deadline, now + options_.call_budget)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!entries_.empty()) {
    Log(LogLevel::kWarning, "tracking",
        "final writes still pending at shutdown; a restarted agent resumes them",
        {{"count", absl::StrCat(entries_.size())}});
  }
  return entries_.size();
}

size_t FinalWriter::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace fna::tracking
