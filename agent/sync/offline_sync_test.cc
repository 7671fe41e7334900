// SyncOfflineRuns end to end: runs written by the real OfflineTracker, uploaded through a real NeptuneClient
// over http::HttplibTransport into the strict Neptune emulator. One FakeClock drives everything, so backoff
// waits take no time.

#include "agent/sync/offline_sync.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"
#include "agent/neptune/neptune_client.h"
#include "agent/neptune/offline_tracker.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/neptune_emulator/emulator.h"

namespace fna::sync {
namespace {

namespace fs = std::filesystem;
using ::fna::neptune::RunRef;
using ::fna::neptune::StringSet;
using ::fna::neptune_emulator::NeptuneEmulator;
using ::fna::neptune_emulator::Outage;
using ::fna::neptune_emulator::RunSnapshot;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

constexpr char kProject[] = "ml/flyte";
constexpr char kOperations[] = "/api/leaderboard/v1/attributes/operations";
constexpr absl::Duration kBudget = absl::Seconds(30);

RunRef Ref(absl::string_view custom_id) { return RunRef{kProject, std::string(custom_id), -1}; }

std::vector<neptune::Field> Initial() {
  return {
      {"sys/name", std::string("f1a2b3c4-n0-0")},
      {"sys/tags", StringSet{{"flyte", "team-a"}}},
      {"sys/failed", false},
      {"flyte/project", std::string("flytesnacks")},
      {"flyte/retry_attempt", int64_t{0}},
      {"flyte/started_at", absl::FromUnixMillis(1767225600250)},
      {"flyte/phase", std::string("RUNNING")},
  };
}

std::vector<neptune::Field> Final() {
  return {
      {"flyte/phase", std::string("FAILED")},
      {"flyte/finished_at", absl::FromUnixMillis(1767225660750)},
      {"flyte/duration_seconds", 60.5},
      {"flyte/exit_code", int64_t{3}},
      {"sys/failed", true},
      {"sys/name", std::string("train")},
      {"sys/tags", StringSet{{"final"}}},
  };
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteWhole(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::trunc);
  out << contents;
}

class OfflineSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/fna-sync-test-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    auto offline = neptune::OfflineTracker::Create(neptune::OfflineTrackerOptions{root_}, &clock_);
    ASSERT_TRUE(offline.ok()) << offline.status();
    offline_ = *std::move(offline);

    NeptuneEmulator::Options options;
    options.clock = &clock_;
    options.projects = {{kProject, "FLY"}};
    auto emulator = NeptuneEmulator::Start(std::move(options));
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    token_ = emulator_->api_token();
    auto transport = http::HttplibTransport::Create({}, &clock_);
    ASSERT_TRUE(transport.ok()) << transport.status();
    transport_ = *std::move(transport);
    neptune::NeptuneClientOptions client_options;
    client_options.token_source = [this](int) { return absl::StatusOr<Secret>(Secret(token_)); };
    client_options.random = [] { return 0.5; };
    client_ = std::make_unique<neptune::NeptuneClient>(std::move(client_options), transport_.get(), &clock_);
  }

  void TearDown() override {
    client_.reset();
    transport_.reset();
    emulator_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  // A run with the initial fields and, unless `finished` is false, the final write.
  void WriteRun(absl::string_view custom_id, bool finished = true) {
    ASSERT_TRUE(offline_->CreateRun(Ref(custom_id), Initial(), clock_.Now()).ok());
    clock_.Advance(absl::Seconds(60));
    if (finished) {
      ASSERT_TRUE(offline_->Write(Ref(custom_id), Final(), clock_.Now()).ok());
    }
  }

  std::string RunDir(absl::string_view custom_id) { return offline_->RunDirectory(Ref(custom_id)); }
  std::string LastAck(absl::string_view custom_id) {
    return ReadWhole(RunDir(custom_id) + "/last_ack_version");
  }
  std::string LastPut(absl::string_view custom_id) {
    return ReadWhole(RunDir(custom_id) + "/last_put_version");
  }

  SyncReport Sync() {
    absl::StatusOr<SyncReport> report = SyncOfflineRuns(root_, client_.get(), &clock_, kBudget);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.value_or(SyncReport{});
  }

  int OperationRequests() { return emulator_->RequestCount("POST", kOperations); }

  FakeClock clock_;
  std::string root_;
  std::unique_ptr<neptune::OfflineTracker> offline_;
  std::string token_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::unique_ptr<http::HttplibTransport> transport_;
  std::unique_ptr<neptune::NeptuneClient> client_;
};

void ExpectAttribute(const RunSnapshot& run, const std::string& path, const std::string& type,
                     const Json& value) {
  auto it = run.attributes.find(path);
  ASSERT_NE(it, run.attributes.end()) << path;
  EXPECT_EQ(it->second.type, type) << path;
  EXPECT_EQ(it->second.value, value) << path;
}

TEST_F(OfflineSyncTest, SyncsEveryFieldWithItsTypeAndFinalValue) {
  WriteRun("run-a");
  const SyncReport report = Sync();
  ASSERT_EQ(report.synced.size(), 1u);
  EXPECT_THAT(report.failed, IsEmpty());
  EXPECT_EQ(report.synced[0].directory, neptune::OfflineTracker::RunDirectoryName(Ref("run-a")));
  EXPECT_EQ(report.synced[0].project, kProject);
  EXPECT_EQ(report.synced[0].custom_run_id, "run-a");
  EXPECT_EQ(report.synced[0].operations, 14);
  EXPECT_EQ(report.synced[0].first_version, 1);
  EXPECT_EQ(report.synced[0].last_version, 14);
  EXPECT_EQ(LastAck("run-a"), "14");

  const std::optional<RunSnapshot> run = emulator_->RunByCustomId(kProject, "run-a");
  ASSERT_TRUE(run.has_value());
  ExpectAttribute(*run, "sys/custom_run_id", "string", "run-a");
  ExpectAttribute(*run, "sys/name", "string", "train");
  ExpectAttribute(*run, "sys/tags", "stringSet", Json::array({"final", "flyte", "team-a"}));
  ExpectAttribute(*run, "sys/failed", "bool", true);
  ExpectAttribute(*run, "flyte/project", "string", "flytesnacks");
  ExpectAttribute(*run, "flyte/retry_attempt", "int", 0);
  ExpectAttribute(*run, "flyte/started_at", "datetime", 1767225600250);
  ExpectAttribute(*run, "flyte/finished_at", "datetime", 1767225660750);
  ExpectAttribute(*run, "flyte/duration_seconds", "float", 60.5);
  ExpectAttribute(*run, "flyte/exit_code", "int", 3);
  ExpectAttribute(*run, "flyte/phase", "string", "FAILED");
}

TEST_F(OfflineSyncTest, SecondSyncSendsNothing) {
  WriteRun("run-a");
  ASSERT_EQ(Sync().synced.size(), 1u);
  const int operations = OperationRequests();
  const int experiments = emulator_->RequestCount("POST", "/api/leaderboard/v1/experiments");
  ASSERT_GT(operations, 0);

  const SyncReport again = Sync();
  EXPECT_THAT(again.synced, IsEmpty());
  EXPECT_THAT(again.failed, IsEmpty());
  ASSERT_EQ(again.skipped.size(), 1u);
  EXPECT_EQ(again.skipped[0].reason, "up to date");
  EXPECT_EQ(OperationRequests(), operations);
  EXPECT_EQ(emulator_->RequestCount("POST", "/api/leaderboard/v1/experiments"), experiments);
}

TEST_F(OfflineSyncTest, LaterRecordsAreSentIncrementally) {
  WriteRun("run-a", /*finished=*/false);
  ASSERT_EQ(Sync().synced.size(), 1u);
  EXPECT_EQ(LastAck("run-a"), "7");
  ASSERT_TRUE(offline_->Write(Ref("run-a"), Final(), clock_.Now()).ok());

  const SyncReport report = Sync();
  ASSERT_EQ(report.synced.size(), 1u);
  EXPECT_EQ(report.synced[0].first_version, 8);
  EXPECT_EQ(report.synced[0].last_version, 14);
  EXPECT_EQ(LastAck("run-a"), "14");
  const std::optional<RunSnapshot> run = emulator_->RunByCustomId(kProject, "run-a");
  ASSERT_TRUE(run.has_value());
  ExpectAttribute(*run, "flyte/phase", "string", "FAILED");
  ExpectAttribute(*run, "flyte/exit_code", "int", 3);
  EXPECT_EQ(emulator_->Runs().size(), 1u);
}

TEST_F(OfflineSyncTest, CorruptOrUnsupportedRecordsFailOnlyTheirRun) {
  WriteRun("run-good");
  WriteRun("run-corrupt");
  WriteRun("run-unsupported");
  // run-corrupt: its third record cut in half.
  {
    const std::string log = RunDir("run-corrupt") + "/data-1.log";
    std::vector<std::string> lines = absl::StrSplit(ReadWhole(log), '\n');
    ASSERT_GT(lines.size(), 3u);
    lines[2] = lines[2].substr(0, lines[2].size() / 2);
    WriteWhole(log, absl::StrJoin(lines, "\n"));
  }
  // run-unsupported: an operation type the sync does not translate.
  {
    const std::string log = RunDir("run-unsupported") + "/data-1.log";
    WriteWhole(log, absl::StrReplaceAll(ReadWhole(log), {{"\"AssignInt\"", "\"LogFloats\""}}));
  }

  const SyncReport report = Sync();
  ASSERT_EQ(report.synced.size(), 1u);
  EXPECT_EQ(report.synced[0].custom_run_id, "run-good");
  ASSERT_EQ(report.failed.size(), 2u);
  for (const RunSyncResult& failed : report.failed) {
    if (failed.custom_run_id == "run-corrupt") {
      EXPECT_THAT(failed.reason, HasSubstr("not a JSON record"));
    } else {
      EXPECT_EQ(failed.custom_run_id, "run-unsupported");
      EXPECT_THAT(failed.reason, HasSubstr("unsupported operation type LogFloats"));
    }
    EXPECT_THAT(failed.reason, ::testing::Not(HasSubstr(token_)));
  }
  EXPECT_EQ(LastAck("run-good"), "14");
  EXPECT_EQ(LastAck("run-corrupt"), "");
  EXPECT_EQ(LastAck("run-unsupported"), "");
  EXPECT_TRUE(emulator_->RunByCustomId(kProject, "run-good").has_value());
  EXPECT_FALSE(emulator_->RunByCustomId(kProject, "run-corrupt").has_value());
  EXPECT_FALSE(emulator_->RunByCustomId(kProject, "run-unsupported").has_value());
}

TEST_F(OfflineSyncTest, DirectoryWithoutSidecarIsSkipped) {
  WriteRun("run-a");
  const std::string foreign = root_ + "/offline/run__python-client";
  fs::create_directories(foreign);
  WriteWhole(foreign + "/last_put_version", "3");

  const SyncReport report = Sync();
  EXPECT_EQ(report.synced.size(), 1u);
  EXPECT_THAT(report.failed, IsEmpty());
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].directory, "run__python-client");
  EXPECT_THAT(report.skipped[0].reason, HasSubstr("no flyte-neptune-agent.json"));
}

TEST_F(OfflineSyncTest, OutageFailsEveryRunAndALaterSyncSucceeds) {
  WriteRun("run-a");
  WriteRun("run-b");
  emulator_->SetOutage(Outage::kUnavailable);

  const SyncReport report = Sync();
  EXPECT_THAT(report.synced, IsEmpty());
  ASSERT_EQ(report.failed.size(), 2u);
  for (const RunSyncResult& failed : report.failed) {
    EXPECT_FALSE(failed.reason.empty());
    EXPECT_THAT(failed.reason, ::testing::Not(HasSubstr(token_)));
  }
  EXPECT_EQ(LastAck("run-a"), "");
  EXPECT_EQ(LastAck("run-b"), "");
  EXPECT_THAT(emulator_->Runs(), IsEmpty());

  emulator_->SetOutage(Outage::kNone);
  const SyncReport later = Sync();
  EXPECT_EQ(later.synced.size(), 2u);
  EXPECT_THAT(later.failed, IsEmpty());
  EXPECT_EQ(LastAck("run-a"), LastPut("run-a"));
  EXPECT_EQ(LastAck("run-b"), "14");
  const std::optional<RunSnapshot> run = emulator_->RunByCustomId(kProject, "run-b");
  ASSERT_TRUE(run.has_value());
  ExpectAttribute(*run, "flyte/phase", "string", "FAILED");
  ExpectAttribute(*run, "flyte/duration_seconds", "float", 60.5);
}

TEST_F(OfflineSyncTest, MissingOfflineDirectoryIsNotFound) {
  absl::StatusOr<SyncReport> report = SyncOfflineRuns(root_ + "/nowhere", client_.get(), &clock_, kBudget);
  EXPECT_TRUE(absl::IsNotFound(report.status())) << report.status();
}

}  // namespace
}  // namespace fna::sync
