#include "agent/executor/instrumented_executor.h"

#include <string>

#include "agent/testing/fake_clock.h"
#include "agent/testing/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::executor {
namespace {

using ::testing::HasSubstr;

TEST(InstrumentedExecutorTest, ForwardsAndCountsEveryCallByOperationAndCode) {
  FakeClock clock;
  FakeExecutor inner;
  metrics::Registry registry;
  InstrumentedExecutor executor(&inner, &registry, &clock);
  TaskSpec spec;
  spec.name = "task-a";
  ASSERT_TRUE(executor.Start(spec).ok());
  ASSERT_TRUE(executor.Start(spec).ok());
  EXPECT_EQ(inner.task("task-a")->starts, 2);
  EXPECT_TRUE(executor.GetStatus(spec.ref()).ok());
  EXPECT_EQ(executor.GetStatus(TaskRef{"missing", ""}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(executor.Abort(spec.ref()).ok());
  EXPECT_TRUE(executor.RecordPendingFinalWrite(spec.ref(), "record").ok());
  EXPECT_TRUE(executor.MarkRunFinalized(spec.ref()).ok());
  EXPECT_TRUE(executor.ListPendingFinalWrites().ok());
  EXPECT_TRUE(executor.Ready());

  const std::string text = registry.TextExposition();
  for (const char* line : {
           "flyte_neptune_agent_executor_calls_total{operation=\"abort\",code=\"OK\"} 1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"get_status\",code=\"NOT_FOUND\"} 1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"get_status\",code=\"OK\"} 1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"list_pending_final_writes\",code=\"OK\"} "
           "1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"mark_run_finalized\",code=\"OK\"} 1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"record_pending_final_write\",code=\"OK\"} "
           "1\n",
           "flyte_neptune_agent_executor_calls_total{operation=\"start\",code=\"OK\"} 2\n",
           "flyte_neptune_agent_executor_call_duration_seconds_count{operation=\"get_status\"} 2\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
}

}  // namespace
}  // namespace fna::executor
