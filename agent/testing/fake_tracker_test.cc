#include "agent/testing/fake_tracker.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/neptune/tracker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna {
namespace {

using neptune::FieldValue;
using neptune::RunRef;
using neptune::StringSet;
using ::testing::ElementsAre;

constexpr absl::Time kDeadline = absl::InfiniteFuture();

class FakeTrackerTest : public ::testing::Test {
 protected:
  FakeTracker tracker_;
  const RunRef ref_{"ws/proj", "id-1"};
};

TEST_F(FakeTrackerTest, CreatesOnceAndRecordsTheLatestValues) {
  absl::StatusOr<neptune::RunInfo> info = tracker_.CreateRun(
      ref_, {{"sys/name", std::string("a")}, {"sys/tags", StringSet{{"b", "a"}}}}, kDeadline);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->run_id, "RUN-1");
  EXPECT_EQ(info->url, "https://neptune.test/ws/proj/e/RUN-1");
  absl::StatusOr<neptune::RunInfo> again =
      tracker_.CreateRun(ref_, {{"sys/name", std::string("z")}}, kDeadline);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->url, info->url);
  ASSERT_TRUE(tracker_
                  .Write(ref_, {{"sys/failed", true}, {"sys/tags", StringSet{{"c", "a"}}}, {"n", int64_t{1}}},
                         kDeadline)
                  .ok());
  ASSERT_TRUE(tracker_.Write(ref_, {{"n", int64_t{2}}}, kDeadline).ok());

  const std::optional<FakeTracker::Run> run = tracker_.GetRun("id-1");
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->project, "ws/proj");
  EXPECT_EQ(run->create_runs, 2);
  EXPECT_EQ(run->writes, 2);
  EXPECT_EQ(run->fields, (std::map<std::string, FieldValue>{{"sys/name", std::string("a")},
                                                            {"sys/tags", StringSet{{"a", "b", "c"}}},
                                                            {"sys/failed", true},
                                                            {"n", int64_t{2}}}));
  EXPECT_EQ(tracker_.FallbackLink(ref_), "https://neptune.test/ws/proj/runs?customId=id-1");
  EXPECT_THAT(tracker_.CustomRunIds(), ElementsAre("id-1"));

  absl::StatusOr<neptune::RunInfo> second = tracker_.CreateRun({"ws/proj", "id-2"}, {}, kDeadline);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->run_id, "RUN-2");
}

TEST_F(FakeTrackerTest, WriteToAnUnknownRunIsNotFound) {
  EXPECT_EQ(tracker_.Write(ref_, {{"n", int64_t{1}}}, kDeadline).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(tracker_.WriteCalls("id-1"), 1);
  EXPECT_EQ(tracker_.GetRun("id-1"), std::nullopt);
}

TEST_F(FakeTrackerTest, ReusingACustomIdInAnotherProjectFails) {
  ASSERT_TRUE(tracker_.CreateRun(ref_, {}, kDeadline).ok());
  EXPECT_EQ(tracker_.CreateRun({"ws/other", "id-1"}, {}, kDeadline).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeTrackerTest, FailNextCreateRunsFailsThatManyCallsWithoutEffect) {
  tracker_.FailNextCreateRuns(2, absl::UnavailableError("neptune down"));
  for (int i = 0; i < 2; ++i) {
    const absl::Status status =
        tracker_.CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline).status();
    EXPECT_EQ(status, absl::UnavailableError("neptune down"));
    EXPECT_EQ(tracker_.GetRun("id-1"), std::nullopt);
  }
  ASSERT_TRUE(tracker_.CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline).ok());
  EXPECT_EQ(tracker_.CreateRunCalls("id-1"), 3);
  EXPECT_EQ(tracker_.GetRun("id-1")->create_runs, 1);
}

TEST_F(FakeTrackerTest, FailNextWritesFailsThatManyCallsWithoutEffect) {
  ASSERT_TRUE(tracker_.CreateRun(ref_, {}, kDeadline).ok());
  tracker_.FailNextWrites(1, absl::DeadlineExceededError("slow"));
  EXPECT_EQ(tracker_.Write(ref_, {{"n", int64_t{1}}}, kDeadline), absl::DeadlineExceededError("slow"));
  EXPECT_TRUE(tracker_.GetRun("id-1")->fields.empty());
  ASSERT_TRUE(tracker_.Write(ref_, {{"n", int64_t{2}}}, kDeadline).ok());
  EXPECT_EQ(tracker_.WriteCalls("id-1"), 2);
  EXPECT_EQ(tracker_.GetRun("id-1")->writes, 1);
  EXPECT_EQ(tracker_.GetRun("id-1")->fields.at("n"), FieldValue(int64_t{2}));
}

TEST_F(FakeTrackerTest, FailAllFailsUntilCleared) {
  tracker_.FailAllCreateRuns(absl::UnavailableError("down"));
  tracker_.FailAllWrites(absl::PermissionDeniedError("token"));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(tracker_.CreateRun(ref_, {}, kDeadline).status(), absl::UnavailableError("down"));
    EXPECT_EQ(tracker_.Write(ref_, {}, kDeadline), absl::PermissionDeniedError("token"));
  }
  tracker_.ClearFailures();
  ASSERT_TRUE(tracker_.CreateRun(ref_, {}, kDeadline).ok());
  EXPECT_TRUE(tracker_.Write(ref_, {}, kDeadline).ok());
  EXPECT_EQ(tracker_.CreateRunCalls("id-1"), 6);
  EXPECT_EQ(tracker_.WriteCalls("id-1"), 6);
}

TEST_F(FakeTrackerTest, StandingFailureWinsOverCountedOnesAndClearDropsBoth) {
  ASSERT_TRUE(tracker_.CreateRun(ref_, {}, kDeadline).ok());
  tracker_.FailNextWrites(1, absl::UnavailableError("once"));
  tracker_.FailAllWrites(absl::InternalError("always"));
  EXPECT_EQ(tracker_.Write(ref_, {}, kDeadline), absl::InternalError("always"));
  EXPECT_EQ(tracker_.Write(ref_, {}, kDeadline), absl::InternalError("always"));
  tracker_.ClearFailures();
  EXPECT_TRUE(tracker_.Write(ref_, {}, kDeadline).ok());
}

}  // namespace
}  // namespace fna
