#include "agent/tracking/lifecycle.h"

#include <string>
#include <thread>
#include <vector>

#include "agent/testing/fake_clock.h"
#include "agent/testing/fake_executor.h"
#include "agent/testing/fake_output_store.h"
#include "agent/testing/fake_tracker.h"
#include "agent/testing/flyte_requests.h"
#include "agent/tracking/resource_meta.h"
#include "flyteidl/core/errors.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::tracking {
namespace {

using executor::TaskState;
using executor::TaskStatus;
using flyteidl::core::TaskExecution;
using ::testing::HasSubstr;

class LifecycleTest : public ::testing::Test {
 protected:
  LifecycleTest() {
    config_.console_url = "https://flyte.example.com/console";
    config_.finalize_grace = absl::Minutes(2);
  }

  ResourceMeta CreateOk(const flyteidl::admin::CreateTaskRequest& request) {
    auto bytes = lifecycle_.Create(request);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    meta_bytes_ = bytes.ok() ? *bytes : "";
    auto meta = DecodeResourceMeta(meta_bytes_);
    EXPECT_TRUE(meta.ok()) << meta.status();
    return meta.ok() ? *meta : ResourceMeta();
  }

  flyteidl::admin::Resource GetOk() {
    flyteidl::admin::GetTaskRequest request;
    request.mutable_task_category()->set_name("neptune");
    request.set_resource_meta(meta_bytes_);
    auto resource = lifecycle_.Get(request);
    EXPECT_TRUE(resource.ok()) << resource.status();
    return resource.ok() ? *resource : flyteidl::admin::Resource();
  }

  absl::Status Delete() {
    flyteidl::admin::DeleteTaskRequest request;
    request.mutable_task_category()->set_name("neptune");
    request.set_resource_meta(meta_bytes_);
    return lifecycle_.Delete(request);
  }

  void Finish(const ResourceMeta& meta, TaskState state, std::optional<int> exit_code,
              std::string message = "") {
    TaskStatus status;
    status.state = state;
    status.exit_code = exit_code;
    status.message = std::move(message);
    status.started_at = clock_.Now() - absl::Seconds(30);
    status.finished_at = clock_.Now();
    status.working_directory = "/work/" + meta.execution_id();
    executor_.SetStatus(meta.execution_id(), status);
  }

  template <typename T>
  T Field(const ResourceMeta& meta, const std::string& path) {
    auto run = tracker_.GetRun(meta.custom_run_id());
    EXPECT_TRUE(run.has_value());
    if (!run.has_value() || run->fields.count(path) == 0) {
      ADD_FAILURE() << "no field " << path;
      return T();
    }
    return std::get<T>(run->fields.at(path));
  }

  AgentConfig config_;
  FakeClock clock_;
  FakeTracker tracker_;
  FakeExecutor executor_;
  FakeOutputStore outputs_;
  FinalWriter final_writer_{FinalWriter::Options{}, &tracker_, &executor_, &clock_};
  TaskLifecycle lifecycle_{&config_, &tracker_, &executor_, &outputs_, &final_writer_, &clock_};
  std::string meta_bytes_;
};

TEST_F(LifecycleTest, SucceedingTaskCreatesLinksAndFinalizesItsRun) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  auto task = executor_.task(meta.execution_id());
  ASSERT_TRUE(task.has_value());
  EXPECT_THAT(task->spec.argv,
              ::testing::ElementsAre("pyflyte-execute", "--inputs", "s3://my-s3-bucket/metadata/inputs.pb",
                                     "--output-prefix", meta.output_prefix(), "--raw-output-data-prefix",
                                     "s3://my-s3-bucket/data/ab/f6c5d2a1b9e8a4c3d2b1-n0-0"));
  EXPECT_THAT(task->spec.env, ::testing::Contains(std::make_pair(std::string("NEPTUNE_PROJECT"),
                                                                 std::string("local/flyte"))));
  EXPECT_THAT(task->spec.env, ::testing::Contains(std::make_pair(std::string("NEPTUNE_CUSTOM_RUN_ID"),
                                                                 meta.custom_run_id())));
  auto run = tracker_.GetRun(meta.custom_run_id());
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->project, "local/flyte");
  EXPECT_EQ(Field<std::string>(meta, "flyte/project"), "flytesnacks");
  EXPECT_EQ(Field<std::string>(meta, "flyte/working_directory"), "/work/" + meta.execution_id());
  EXPECT_EQ(Field<bool>(meta, "sys/failed"), false);

  // Running: the link is there from the first GetTask.
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::RUNNING);
  ASSERT_EQ(resource.log_links_size(), 1);
  EXPECT_EQ(resource.log_links(0).name(), "Neptune run");
  EXPECT_EQ(resource.log_links(0).uri(), run->info.url);
  EXPECT_TRUE(resource.log_links(0).showwhilepending());
  EXPECT_FALSE(resource.log_links(0).hideoncefinished());
  const auto& neptune = resource.custom_info().fields().at("neptune").struct_value().fields();
  EXPECT_EQ(neptune.at("run_id").string_value(), run->info.run_id);
  EXPECT_EQ(neptune.at("custom_run_id").string_value(), meta.custom_run_id());
  EXPECT_EQ(neptune.at("project").string_value(), "local/flyte");

  Finish(meta, TaskState::kSucceeded, 0);
  resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(resource.log_links_size(), 1);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "SUCCEEDED");
  EXPECT_EQ(Field<int64_t>(meta, "flyte/exit_code"), 0);
  EXPECT_EQ(Field<double>(meta, "flyte/duration_seconds"), 30.0);
  EXPECT_EQ(Field<bool>(meta, "sys/failed"), false);
  EXPECT_TRUE(executor_.task(meta.execution_id())->status.run_finalized);
  EXPECT_EQ(outputs_.reads(), 1);

  // Finalized: another GetTask writes nothing.
  const int writes = tracker_.WriteCalls(meta.custom_run_id());
  EXPECT_EQ(GetOk().phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(tracker_.WriteCalls(meta.custom_run_id()), writes);
}

TEST_F(LifecycleTest, FailedProcessIsRetryableAndTheRunRecordsIt) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  Finish(meta, TaskState::kRetryableFailed, 3, "[x] terminated with exit code (3)");
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::RETRYABLE_FAILED);
  EXPECT_EQ(resource.message(), "[x] terminated with exit code (3)");
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "RETRYABLE_FAILED");
  EXPECT_EQ(Field<int64_t>(meta, "flyte/exit_code"), 3);
  EXPECT_EQ(Field<std::string>(meta, "flyte/error"), "[x] terminated with exit code (3)");
  EXPECT_EQ(Field<bool>(meta, "sys/failed"), true);
  EXPECT_EQ(outputs_.reads(), 0);  // error.pb matters only after an exit 0
}

TEST_F(LifecycleTest, RetryableFailureInStateModeForOlderPropellers) {
  config_.retryable_failure = RetryableFailureMode::kState;
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  Finish(meta, TaskState::kRetryableFailed, 1);
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::UNDEFINED);
  EXPECT_EQ(resource.state(), flyteidl::admin::RETRYABLE_FAILURE);
  Finish(meta, TaskState::kFailed, std::nullopt);
  EXPECT_EQ(GetOk().phase(), TaskExecution::FAILED);
}

TEST_F(LifecycleTest, ExitZeroWithErrorFileSucceedsButTheRunFails) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  flyteidl::core::ErrorDocument document;
  document.mutable_error()->set_code("USER:ValueError");
  document.mutable_error()->set_message("division by zero in train()");
  document.mutable_error()->set_kind(flyteidl::core::ContainerError::NON_RECOVERABLE);
  outputs_.Put(meta.output_prefix() + "/error.pb", document.SerializeAsString());
  Finish(meta, TaskState::kSucceeded, 0);
  EXPECT_EQ(GetOk().phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "FAILED");
  EXPECT_EQ(Field<std::string>(meta, "flyte/error"), "USER:ValueError: division by zero in train()");
  EXPECT_EQ(Field<bool>(meta, "sys/failed"), true);
}

TEST_F(LifecycleTest, RecoverableErrorFileMakesTheRunRetryableFailed) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  flyteidl::core::ErrorDocument document;
  document.mutable_error()->set_message("flaky");
  document.mutable_error()->set_kind(flyteidl::core::ContainerError::RECOVERABLE);
  outputs_.Put(meta.output_prefix() + "/error.pb", document.SerializeAsString());
  Finish(meta, TaskState::kSucceeded, 0);
  EXPECT_EQ(GetOk().phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "RETRYABLE_FAILED");
  EXPECT_EQ(Field<std::string>(meta, "flyte/error"), "flaky");
}

TEST_F(LifecycleTest, AbortMarksTheRunAbortedIdempotently) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  ASSERT_TRUE(Delete().ok());
  EXPECT_EQ(executor_.task(meta.execution_id())->aborts, 1);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "ABORTED");
  EXPECT_EQ(Field<std::string>(meta, "flyte/error"), "aborted by Flyte");
  EXPECT_EQ(Field<bool>(meta, "sys/failed"), true);
  const int writes = tracker_.WriteCalls(meta.custom_run_id());
  ASSERT_TRUE(Delete().ok());
  EXPECT_EQ(tracker_.WriteCalls(meta.custom_run_id()), writes);
  EXPECT_EQ(GetOk().phase(), TaskExecution::ABORTED);
}

TEST_F(LifecycleTest, AbortAfterTheTimeoutIsTimedOut) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());  // timeout 1 h
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(Delete().ok());
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "TIMED_OUT");
  EXPECT_THAT(Field<std::string>(meta, "flyte/error"), HasSubstr("timeout of 1h"));
}

TEST_F(LifecycleTest, DeleteOfUnknownTaskIsOk) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.Remove(meta.execution_id());
  EXPECT_TRUE(Delete().ok());
}

TEST_F(LifecycleTest, DeleteFailsWhenTheExecutorCannotAbort) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  executor_.FailAbort(absl::InternalError("kill: permission denied"));
  absl::Status status = Delete();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("kill: permission denied"));
}

TEST_F(LifecycleTest, CreateDeliveredThreeTimesIsOneRunAndOneTask) {
  const ResourceMeta first = CreateOk(MakeCreateRequest());
  CreateOk(MakeCreateRequest());
  const ResourceMeta third = CreateOk(MakeCreateRequest());
  EXPECT_EQ(first.execution_id(), third.execution_id());
  EXPECT_EQ(first.custom_run_id(), third.custom_run_id());
  EXPECT_EQ(executor_.size(), 1u);
  EXPECT_EQ(tracker_.CustomRunIds().size(), 1u);
}

TEST_F(LifecycleTest, CollidingNodeIdsWithDifferentOutputPrefixesAreTwoRuns) {
  const ResourceMeta a = CreateOk(MakeCreateRequest("dn0", 0, "s3://b/m/p-d-e/n1/data/0/dn0/data/0"));
  const ResourceMeta b = CreateOk(MakeCreateRequest("dn0", 0, "s3://b/m/p-d-e/n2/data/0/dn0/data/0"));
  EXPECT_NE(a.execution_id(), b.execution_id());
  EXPECT_EQ(tracker_.CustomRunIds().size(), 2u);
  EXPECT_EQ(executor_.size(), 2u);
}

TEST_F(LifecycleTest, ConcurrentCreatesGiveDistinctRuns) {
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([this, i] {
      auto bytes = lifecycle_.Create(MakeCreateRequest("n" + std::to_string(i)));
      EXPECT_TRUE(bytes.ok()) << bytes.status();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(tracker_.CustomRunIds().size(), 32u);
  EXPECT_EQ(executor_.size(), 32u);
}

TEST_F(LifecycleTest, BadRequestsGetActionableErrors) {
  auto request = MakeCreateRequest();
  request.mutable_template_()->set_type("python-task");
  absl::Status status = lifecycle_.Create(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(
      status.message(),
      "the neptune agent does not serve task type \"python-task\"; it serves: neptune (check propeller's "
      "connectorForTaskTypes / agentForTaskTypes)");

  request = MakeCreateRequest();
  request.mutable_template_()->clear_container();
  status = lifecycle_.Create(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("task template has no container"));

  request = MakeCreateRequest();
  (*request.mutable_template_()->mutable_config())["neptune.project"] = "other/project";
  EXPECT_EQ(lifecycle_.Create(request).status().code(), absl::StatusCode::kPermissionDenied);

  request = MakeCreateRequest();
  (*request.mutable_template_()->mutable_config())["neptune.name"] = std::string(300, 'n');
  EXPECT_EQ(lifecycle_.Create(request).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_.size(), 0u);  // nothing started for a refused request

  flyteidl::admin::GetTaskRequest get;
  get.set_resource_meta("{\"job_id\": 1}");
  EXPECT_EQ(lifecycle_.Get(get).status().code(), absl::StatusCode::kInvalidArgument);
  flyteidl::admin::DeleteTaskRequest del;
  del.set_resource_meta("garbage");
  EXPECT_EQ(lifecycle_.Delete(del).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LifecycleTest, ExecutorStartErrorKeepsItsCode) {
  executor_.FailStart(absl::InvalidArgumentError("argv[0] is empty"));
  absl::Status status = lifecycle_.Create(MakeCreateRequest()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("cannot start task f6c5d2a1b9e8a4c3d2b1-n0-0-"));
  EXPECT_THAT(status.message(), HasSubstr("argv[0] is empty"));
}

TEST_F(LifecycleTest, NeptuneDownAtCreateDefersTheRunToGetTask) {
  tracker_.FailAllCreateRuns(absl::UnavailableError("connection refused"));
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  EXPECT_TRUE(executor_.task(meta.execution_id()).has_value());  // the task runs anyway
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::RUNNING);
  EXPECT_EQ(resource.message(), "Neptune run not created yet, will retry: connection refused");
  ASSERT_EQ(resource.log_links_size(), 1);
  EXPECT_EQ(resource.log_links(0).uri(), tracker_.FallbackLink({"local/flyte", meta.custom_run_id(), -1}));
  EXPECT_FALSE(tracker_.GetRun(meta.custom_run_id()).has_value());

  tracker_.ClearFailures();
  resource = GetOk();
  EXPECT_EQ(resource.message(), "");
  ASSERT_TRUE(tracker_.GetRun(meta.custom_run_id()).has_value());
  EXPECT_EQ(Field<std::string>(meta, "flyte/name"), "f6c5d2a1b9e8a4c3d2b1");
}

TEST_F(LifecycleTest, NeptuneDownAtTheEndHoldsThePhaseForTheGraceThenHandsOff) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  Finish(meta, TaskState::kSucceeded, 0);
  tracker_.FailAllWrites(absl::UnavailableError("503 Service Unavailable"));

  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::RUNNING);
  EXPECT_EQ(resource.message(),
            "task finished (SUCCEEDED); waiting for Neptune to record the outcome: 503 Service Unavailable");
  clock_.Advance(absl::Minutes(2) - absl::Milliseconds(1));
  EXPECT_EQ(GetOk().phase(), TaskExecution::RUNNING);
  EXPECT_EQ(final_writer_.pending(), 0u);

  clock_.Advance(absl::Milliseconds(1));
  resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(resource.message(),
            "Neptune run not finalized yet, retrying in the background: 503 Service Unavailable");
  EXPECT_EQ(final_writer_.pending(), 1u);
  EXPECT_TRUE(executor_.task(meta.execution_id())->status.pending_final_write.has_value());

  // The background writer retries with backoff, on the injected clock.
  EXPECT_EQ(final_writer_.RunDue(), 1u);
  const int calls = tracker_.WriteCalls(meta.custom_run_id());
  EXPECT_EQ(final_writer_.RunDue(), 1u);  // not due yet
  EXPECT_EQ(tracker_.WriteCalls(meta.custom_run_id()), calls);
  tracker_.ClearFailures();
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(final_writer_.RunDue(), 0u);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "SUCCEEDED");
  EXPECT_TRUE(executor_.task(meta.execution_id())->status.run_finalized);
  EXPECT_FALSE(executor_.task(meta.execution_id())->status.pending_final_write.has_value());
}

TEST_F(LifecycleTest, ZeroGraceReportsAtOnce) {
  config_.finalize_grace = absl::ZeroDuration();
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  Finish(meta, TaskState::kRetryableFailed, 2);
  tracker_.FailAllWrites(absl::UnavailableError("down"));
  EXPECT_EQ(GetOk().phase(), TaskExecution::RETRYABLE_FAILED);
  EXPECT_EQ(final_writer_.pending(), 1u);
}

TEST_F(LifecycleTest, RestartedAgentResumesPendingFinalWrites) {
  config_.finalize_grace = absl::ZeroDuration();
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  tracker_.FailAllWrites(absl::UnavailableError("down"));
  ASSERT_TRUE(Delete().ok());  // abort while Neptune is down: the ABORTED outcome is recorded for later

  // A new agent process: fresh final writer, same executor state.
  FinalWriter restarted(FinalWriter::Options{}, &tracker_, &executor_, &clock_);
  ASSERT_TRUE(restarted.Resume().ok());
  EXPECT_EQ(restarted.pending(), 1u);
  tracker_.ClearFailures();
  EXPECT_EQ(restarted.RunDue(), 0u);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "ABORTED");
  EXPECT_TRUE(executor_.task(meta.execution_id())->status.run_finalized);
}

TEST_F(LifecycleTest, DrainTriesEveryPendingWriteOnceAndAbandonsTheRest) {
  config_.finalize_grace = absl::ZeroDuration();
  tracker_.FailAllWrites(absl::UnavailableError("down"));
  for (const char* node : {"n0", "n1", "n2"}) {
    CreateOk(MakeCreateRequest(node));
    ASSERT_TRUE(Delete().ok());  // aborted while Neptune is down
  }
  metrics::Registry registry;
  FinalWriter::Options options;
  options.metrics = &registry;
  FinalWriter writer(options, &tracker_, &executor_, &clock_);
  ASSERT_TRUE(writer.Resume().ok());
  ASSERT_EQ(writer.pending(), 3u);
  tracker_.ClearFailures();
  tracker_.FailNextWrites(1, absl::UnavailableError("still down"));
  EXPECT_EQ(writer.Drain(clock_.Now() + absl::Minutes(1)), 1u);  // tried once each, no retries
  EXPECT_EQ(writer.Drain(clock_.Now()), 1u);                     // no time left: nothing tried
  const std::string text = registry.TextExposition();
  EXPECT_THAT(text, HasSubstr("\nflyte_neptune_agent_runs_finalized_late_total 2\n"));
  EXPECT_THAT(text, HasSubstr("\nflyte_neptune_agent_final_writes_abandoned_total 0\n"));
  EXPECT_THAT(text, HasSubstr("\nflyte_neptune_agent_final_writes_pending 1\n"));
}

TEST_F(LifecycleTest, AWriteNeptuneRefusesForGoodIsAbandonedAndItsRecordCleared) {
  config_.finalize_grace = absl::ZeroDuration();
  tracker_.FailAllWrites(absl::UnavailableError("down"));
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  ASSERT_TRUE(Delete().ok());
  metrics::Registry registry;
  FinalWriter::Options options;
  options.metrics = &registry;
  FinalWriter writer(options, &tracker_, &executor_, &clock_);
  ASSERT_TRUE(writer.Resume().ok());
  tracker_.ClearFailures();
  tracker_.FailAllWrites(absl::NotFoundError("the project was deleted"));
  EXPECT_EQ(writer.RunDue(), 0u);
  EXPECT_THAT(registry.TextExposition(), HasSubstr("\nflyte_neptune_agent_final_writes_abandoned_total 1\n"));
  EXPECT_FALSE(executor_.task(meta.execution_id())->status.pending_final_write.has_value());
  FinalWriter restarted(FinalWriter::Options{}, &tracker_, &executor_, &clock_);
  ASSERT_TRUE(restarted.Resume().ok());
  EXPECT_EQ(restarted.pending(), 0u);
}

TEST_F(LifecycleTest, PendingOutcomeWinsOverTheExecutorsLaterState) {
  config_.finalize_grace = absl::ZeroDuration();
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.SetStatus(meta.execution_id(), TaskStatus{TaskState::kRunning});
  clock_.Advance(absl::Hours(2));  // past the 1 h timeout
  tracker_.FailAllWrites(absl::UnavailableError("down"));
  ASSERT_TRUE(Delete().ok());
  tracker_.ClearFailures();
  // The process ends as aborted; GetTask writes the outcome decided at abort time.
  EXPECT_EQ(GetOk().phase(), TaskExecution::ABORTED);
  EXPECT_EQ(Field<std::string>(meta, "flyte/phase"), "TIMED_OUT");
}

TEST_F(LifecycleTest, VanishedTaskIsARetryableFailure) {
  const ResourceMeta meta = CreateOk(MakeCreateRequest());
  executor_.Remove(meta.execution_id());
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::RETRYABLE_FAILED);
  EXPECT_THAT(resource.message(), HasSubstr("deleted outside Flyte"));
}

TEST_F(LifecycleTest, DisabledTrackingRunsTheTaskWithoutARun) {
  auto request = MakeCreateRequest();
  (*request.mutable_task_execution_metadata()->mutable_labels())["neptune.ai/tracking"] = "disabled";
  const ResourceMeta meta = CreateOk(request);
  EXPECT_TRUE(meta.settings().disabled());
  EXPECT_TRUE(tracker_.CustomRunIds().empty());
  const auto task = executor_.task(meta.execution_id());
  ASSERT_TRUE(task.has_value());
  for (const auto& [key, value] : task->spec.env) {
    EXPECT_NE(key, "NEPTUNE_PROJECT");
    EXPECT_NE(key, "NEPTUNE_CUSTOM_RUN_ID");
  }
  Finish(meta, TaskState::kSucceeded, 0);
  flyteidl::admin::Resource resource = GetOk();
  EXPECT_EQ(resource.phase(), TaskExecution::SUCCEEDED);
  EXPECT_EQ(resource.log_links_size(), 0);
  EXPECT_TRUE(tracker_.CustomRunIds().empty());
}

TEST_F(LifecycleTest, GetWithUnknownTaskCategoryIsNotFound) {
  CreateOk(MakeCreateRequest());
  flyteidl::admin::GetTaskRequest request;
  request.mutable_task_category()->set_name("spark");
  request.set_resource_meta(meta_bytes_);
  EXPECT_EQ(lifecycle_.Get(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LifecycleTest, MetricsCountEachRunEventOnce) {
  metrics::Registry registry;
  TaskLifecycle lifecycle(&config_, &tracker_, &executor_, &outputs_, &final_writer_, &clock_, &registry);
  config_.finalize_grace = absl::ZeroDuration();
  const auto create = [&](const flyteidl::admin::CreateTaskRequest& request) {
    auto bytes = lifecycle.Create(request);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  };
  const auto get = [&](const std::string& bytes) {
    flyteidl::admin::GetTaskRequest request;
    request.mutable_task_category()->set_name("neptune");
    request.set_resource_meta(bytes);
    EXPECT_TRUE(lifecycle.Get(request).ok());
  };
  const auto metric = [&](const std::string& series) {
    const std::string text = registry.TextExposition();
    const size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::string("absent");
    const size_t value = at + series.size() + 2;
    return text.substr(value, text.find('\n', value) - value);
  };

  // A: created at CreateTask (delivered twice), then finalized by GetTask.
  const std::string a = create(MakeCreateRequest("n0"));
  create(MakeCreateRequest("n0"));
  EXPECT_EQ(metric("flyte_neptune_agent_runs_created_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "1");
  // B: Neptune down at CreateTask; created by the first GetTask once it is back.
  tracker_.FailNextCreateRuns(2, absl::UnavailableError("Neptune is down"));
  const std::string b = create(MakeCreateRequest("n1"));
  const ResourceMeta meta_b = *DecodeResourceMeta(b);
  executor_.SetStatus(meta_b.execution_id(), TaskStatus{TaskState::kRunning});
  get(b);  // still down
  EXPECT_EQ(metric("flyte_neptune_agent_runs_created_late_total"), "0");
  get(b);
  get(b);
  EXPECT_EQ(metric("flyte_neptune_agent_runs_created_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_runs_created_late_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_tracking_errors_total{stage=\"create_run\",code=\"UNAVAILABLE\"}"),
            "2");
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "2");

  const ResourceMeta meta_a = *DecodeResourceMeta(a);
  Finish(meta_a, TaskState::kSucceeded, 0);
  get(a);
  get(a);  // already finalized
  EXPECT_EQ(metric("flyte_neptune_agent_runs_finalized_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "1");
  // B's final write fails past the (zero) grace: handed to the background writer, which finishes it later.
  tracker_.FailNextWrites(1, absl::UnavailableError("Neptune is down"));
  Finish(meta_b, TaskState::kRetryableFailed, 3);
  get(b);
  EXPECT_EQ(metric("flyte_neptune_agent_tracking_errors_total{stage=\"final_write\",code=\"UNAVAILABLE\"}"),
            "1");
  EXPECT_EQ(metric("flyte_neptune_agent_final_writes_handed_off_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_runs_finalized_total"), "1");
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "0");
  EXPECT_EQ(final_writer_.RunDue(), 0u);

  // A task polled no more stops counting as active after 15 minutes.
  create(MakeCreateRequest("n2"));
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "1");
  clock_.Advance(absl::Minutes(15));
  EXPECT_EQ(metric("flyte_neptune_agent_active_tasks"), "0");
}

}  // namespace
}  // namespace fna::tracking
