#ifndef FNA_AGENT_TESTING_FAKE_EXECUTOR_H_
#define FNA_AGENT_TESTING_FAKE_EXECUTOR_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "agent/executor/executor.h"

namespace fna {

// An in-memory Executor for unit tests: tasks change state only when the test says so. Thread-safe.
class FakeExecutor final : public executor::Executor {
 public:
  struct Task {
    executor::TaskSpec spec;
    executor::TaskStatus status;
    int starts = 0;  // Start calls for this name, including adoptions
    int aborts = 0;
  };

  absl::Status Start(const executor::TaskSpec& spec) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!start_error_.ok()) return start_error_;
    Task& task = tasks_[spec.name];
    if (task.starts++ == 0) {
      task.spec = spec;
      task.status.state = executor::TaskState::kPending;
      task.status.working_directory = absl::StrCat("/work/", spec.name);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<executor::TaskStatus> GetStatus(const executor::TaskRef& task) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_error_.ok()) return status_error_;
    auto it = tasks_.find(task.name);
    if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task.name));
    return it->second.status;
  }

  absl::Status Abort(const executor::TaskRef& task) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!abort_error_.ok()) return abort_error_;
    auto it = tasks_.find(task.name);
    if (it == tasks_.end()) return absl::OkStatus();
    ++it->second.aborts;
    if (!executor::IsTerminal(it->second.status.state)) {
      it->second.status.state = executor::TaskState::kAborted;
      it->second.status.message = "aborted";
    }
    return absl::OkStatus();
  }

  absl::Status MarkRunFinalized(const executor::TaskRef& task) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(task.name);
    if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task.name));
    it->second.status.run_finalized = true;
    it->second.status.pending_final_write.reset();
    return absl::OkStatus();
  }

  absl::Status RecordPendingFinalWrite(const executor::TaskRef& task, absl::string_view record) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(task.name);
    if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task.name));
    it->second.status.pending_final_write = std::string(record);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> records;
    for (const auto& [name, task] : tasks_) {
      if (task.status.pending_final_write.has_value()) records.push_back(*task.status.pending_final_write);
    }
    return records;
  }

  absl::StatusOr<executor::LogBatch> ReadLogs(const executor::TaskRef& task,
                                              const executor::LogQuery& query) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (tasks_.count(task.name) == 0) return absl::NotFoundError(absl::StrCat("no task ", task.name));
    return executor::LogBatch{};
  }

  // Test controls.
  void SetStatus(absl::string_view name, const executor::TaskStatus& status) {
    std::lock_guard<std::mutex> lock(mu_);
    executor::TaskStatus& current = tasks_[std::string(name)].status;
    const bool finalized = current.run_finalized;
    std::optional<std::string> pending = current.pending_final_write;
    current = status;
    current.run_finalized = finalized;
    current.pending_final_write = pending;
  }
  void Remove(absl::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.erase(std::string(name));
  }
  void FailStart(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    start_error_ = std::move(status);
  }
  void FailStatus(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    status_error_ = std::move(status);
  }
  void FailAbort(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    abort_error_ = std::move(status);
  }
  std::optional<Task> task(absl::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(std::string(name));
    if (it == tasks_.end()) return std::nullopt;
    return it->second;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tasks_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Task> tasks_ ABSL_GUARDED_BY(mu_);
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  absl::Status status_error_ ABSL_GUARDED_BY(mu_);
  absl::Status abort_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fna

#endif  // FNA_AGENT_TESTING_FAKE_EXECUTOR_H_
