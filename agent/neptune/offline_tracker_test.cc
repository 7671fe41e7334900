#include "agent/neptune/offline_tracker.h"

#include <stdlib.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/testing/fake_clock.h"
#include "agent/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fna::neptune {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr absl::Time kDeadline = absl::InfiniteFuture();

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void AppendToFile(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << data;
}

void WriteFile(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::vector<std::string> Lines(const fs::path& path) {
  const std::string contents = ReadFile(path);
  EXPECT_TRUE(contents.empty() || contents.back() == '\n') << path;
  std::vector<std::string> lines = absl::StrSplit(contents, '\n', absl::SkipEmpty());
  return lines;
}

std::vector<std::string> ListDirectory(const fs::path& path) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(path)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The versions of all records of a run, in file order (data-<N>.log by N).
std::vector<int64_t> AllVersions(const fs::path& run_dir) {
  std::vector<int64_t> firsts;
  for (const std::string& name : ListDirectory(run_dir)) {
    if (absl::StartsWith(name, "data-")) firsts.push_back(std::stoll(name.substr(5)));
  }
  std::sort(firsts.begin(), firsts.end());
  std::vector<int64_t> versions;
  for (int64_t first : firsts) {
    for (const std::string& line : Lines(run_dir / absl::StrCat("data-", first, ".log"))) {
      versions.push_back(nlohmann::json::parse(line).at("version").get<int64_t>());
    }
  }
  return versions;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> range;
  for (int64_t v = first; v <= last; ++v) range.push_back(v);
  return range;
}

class OfflineTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/offline_tracker_test-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    ConfigureLogging(LogFormat::kAuto, LogLevel::kInfo, nullptr);
    fs::remove_all(root_);
  }

  std::unique_ptr<OfflineTracker> NewTracker(int64_t max_log_file_bytes = int64_t{64} << 20) {
    OfflineTrackerOptions options;
    options.directory = (root_ / "neptune").string();
    options.max_log_file_bytes = max_log_file_bytes;
    absl::StatusOr<std::unique_ptr<OfflineTracker>> tracker = OfflineTracker::Create(options, &clock_);
    EXPECT_TRUE(tracker.ok()) << tracker.status();
    return *std::move(tracker);
  }

  fs::path OfflineDir() const { return root_ / "neptune" / "offline"; }
  fs::path RunDir(const RunRef& ref) const { return OfflineDir() / OfflineTracker::RunDirectoryName(ref); }

  fs::path root_;
  FakeClock clock_;  // 2026-01-01T00:00:00Z
  const RunRef ref_{"ws/proj", "fna-abc123-n0-0"};
};

TEST_F(OfflineTrackerTest, DirectoryNameIsAVersion4UuidPidAndKeyStableAcrossInstances) {
  const std::string shape =
      "^run__[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}__[0-9]+__[a-z0-9]{8}$";
  const std::string name = OfflineTracker::RunDirectoryName(ref_);
  EXPECT_THAT(name, MatchesRegex(shape));

  auto first = NewTracker();
  auto second = NewTracker();
  EXPECT_EQ(first->RunDirectory(ref_), second->RunDirectory(ref_));
  EXPECT_EQ(first->RunDirectory(ref_), (OfflineDir() / name).string());
  for (int i = 0; i < 100; ++i) {
    const std::string other = OfflineTracker::RunDirectoryName({"ws/proj", absl::StrCat("id-", i)});
    EXPECT_THAT(other, MatchesRegex(shape));
    EXPECT_NE(other, name);
  }
  // The project is part of the identity, and (project, id) pairs that concatenate alike differ.
  EXPECT_NE(OfflineTracker::RunDirectoryName({"ws/other", ref_.custom_run_id}), name);
  EXPECT_NE(OfflineTracker::RunDirectoryName({"ws/pro", "jfna-abc123-n0-0"}), name);
  // Pinned: a changed derivation would orphan the runs of agents upgraded mid-task.
  EXPECT_EQ(name, "run__6ef854fc-ce74-494d-85d0-e00f78db5c83__1375780__oap9qrc8");
  // The routing rule only picks credentials.
  EXPECT_EQ(OfflineTracker::RunDirectoryName({ref_.project, ref_.custom_run_id, 3}), name);
}

TEST_F(OfflineTrackerTest, CreateRunWritesTheOfflineLayoutAndRecordsOfEveryType) {
  auto tracker = NewTracker();
  const std::vector<Field> fields = {
      {"sys/name", std::string("train \"model\" é")},
      {"flyte/retry_attempt", int64_t{3}},
      {"flyte/duration_seconds", 1.5},
      {"sys/failed", false},
      {"flyte/started_at", absl::FromUnixMillis(1767225600123)},
      {"sys/tags", StringSet{{"flyte", "neptune"}}},
      {"//flyte//nested/", std::string("x")},
  };
  absl::StatusOr<RunInfo> info = tracker->CreateRun(ref_, fields, kDeadline);
  ASSERT_TRUE(info.ok()) << info.status();

  const fs::path run_dir = RunDir(ref_);
  const std::string name = run_dir.filename().string();
  EXPECT_EQ(info->run_id, name.substr(5, 36));
  EXPECT_EQ(info->url, "file://" + run_dir.string());
  EXPECT_EQ(tracker->FallbackLink(ref_), info->url);

  EXPECT_THAT(ListDirectory(OfflineDir()), ElementsAre(name));
  EXPECT_THAT(ListDirectory(run_dir),
              ElementsAre(".lock", "data-1.log", "flyte-neptune-agent.json", "last_ack_version",
                          "last_put_version", "metadata.json", "upload_path"));
  EXPECT_TRUE(fs::is_directory(run_dir / "upload_path"));
  EXPECT_TRUE(fs::is_empty(run_dir / "upload_path"));
  EXPECT_EQ(ReadFile(run_dir / "last_ack_version"), "");
  EXPECT_EQ(ReadFile(run_dir / "last_put_version"), "7");
  EXPECT_EQ(ReadFile(run_dir / "flyte-neptune-agent.json"),
            "{\n  \"project\": \"ws/proj\",\n  \"customRunId\": \"fna-abc123-n0-0\"\n}\n");

  EXPECT_THAT(
      Lines(run_dir / "data-1.log"),
      ElementsAre(
          R"({"obj":{"type":"AssignString","path":["sys","name"],"value":"train \"model\" \u00e9"},"version":1,"at":1767225600.0})",
          R"({"obj":{"type":"AssignInt","path":["flyte","retry_attempt"],"value":3},"version":2,"at":1767225600.0})",
          R"({"obj":{"type":"AssignFloat","path":["flyte","duration_seconds"],"value":1.5},"version":3,"at":1767225600.0})",
          R"({"obj":{"type":"AssignBool","path":["sys","failed"],"value":false},"version":4,"at":1767225600.0})",
          R"({"obj":{"type":"AssignDatetime","path":["flyte","started_at"],"value":1767225600123},"version":5,"at":1767225600.0})",
          R"({"obj":{"type":"AddStrings","path":["sys","tags"],"values":["flyte","neptune"]},"version":6,"at":1767225600.0})",
          R"({"obj":{"type":"AssignString","path":["flyte","nested"],"value":"x"},"version":7,"at":1767225600.0})"));
}

TEST_F(OfflineTrackerTest, MetadataJsonHasTheClientsShapeWithoutTrailingNewline) {
  clock_.Advance(absl::Microseconds(123456));
  auto tracker = NewTracker();
  absl::StatusOr<RunInfo> info = tracker->CreateRun(ref_, {}, kDeadline);
  ASSERT_TRUE(info.ok()) << info.status();

  struct utsname u;
  ASSERT_EQ(uname(&u), 0);
  const std::string expected = absl::StrCat(                                          //
      "{\n",                                                                          //
      "  \"mode\": \"offline\",\n",                                                   //
      "  \"containerId\": \"", info->run_id, "\",\n",                                 //
      "  \"containerType\": \"run\",\n",                                              //
      "  \"structureVersion\": 3,\n",                                                 //
      "  \"os\": \"", u.sysname, "-", u.release, "-", u.machine, "\",\n",             //
      "  \"pythonVersion\": \"n/a\",\n",                                              //
      "  \"neptuneClientVersion\": \"n/a (flyte-neptune-agent ", kVersion, ")\",\n",  //
      "  \"createdAt\": \"2026-01-01T00:00:00.123456+00:00\"\n",                      //
      "}");
  EXPECT_EQ(ReadFile(RunDir(ref_) / "metadata.json"), expected);
  // A run created without fields is still a valid, empty queue.
  EXPECT_EQ(ReadFile(RunDir(ref_) / "data-1.log"), "");
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "0");
}

TEST_F(OfflineTrackerTest, RepeatedCreateRunAdoptsTheRunWithoutRewritingItsFields) {
  auto tracker = NewTracker();
  const std::vector<Field> fields = {{"sys/name", std::string("a")}, {"sys/failed", false}};
  absl::StatusOr<RunInfo> first = tracker->CreateRun(ref_, fields, kDeadline);
  ASSERT_TRUE(first.ok()) << first.status();
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<RunInfo> again = tracker->CreateRun(ref_, fields, kDeadline);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->run_id, first->run_id);
    EXPECT_EQ(again->url, first->url);
  }
  EXPECT_EQ(ListDirectory(OfflineDir()).size(), 1u);
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 2));
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "2");
}

TEST_F(OfflineTrackerTest, ConcurrentCreateRunsMakeOneRunWithOneCopyOfTheFields) {
  auto tracker = NewTracker();
  const std::vector<Field> fields = {{"sys/name", std::string("a")}, {"sys/failed", false}};
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<RunInfo>> results(8, absl::UnknownError("not run"));
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { results[t] = tracker->CreateRun(ref_, fields, kDeadline); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->url, "file://" + RunDir(ref_).string());
  }
  EXPECT_EQ(ListDirectory(OfflineDir()).size(), 1u);
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 2));
  // Losers removed their staging directories.
  EXPECT_TRUE(fs::is_empty(root_ / "neptune" / ".flyte-neptune-agent-staging"));
}

TEST_F(OfflineTrackerTest, ConcurrentWritesGetContiguousVersions) {
  auto tracker = NewTracker();
  ASSERT_TRUE(tracker->CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const absl::Status status = tracker->Write(ref_, {{absl::StrCat("w/", t), int64_t{i}}}, kDeadline);
        EXPECT_TRUE(status.ok()) << status;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 401));
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "401");
}

TEST_F(OfflineTrackerTest, WritersInOtherProcessesGetContiguousVersions) {
  auto tracker = NewTracker();
  ASSERT_TRUE(tracker->CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline).ok());
  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto own = NewTracker();
      bool ok = own != nullptr;
      for (int i = 0; ok && i < 50; ++i)
        ok = own->Write(ref_, {{absl::StrCat("p/", p), int64_t{i}}}, kDeadline).ok();
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(tracker->Write(ref_, {{"parent", int64_t{i}}}, kDeadline).ok());
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 201));
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "201");
}

TEST_F(OfflineTrackerTest, ANewInstanceContinuesTheVersions) {
  {
    auto tracker = NewTracker();
    ASSERT_TRUE(
        tracker->CreateRun(ref_, {{"sys/name", std::string("a")}, {"sys/failed", false}}, kDeadline).ok());
    ASSERT_TRUE(tracker->Write(ref_, {{"flyte/phase", std::string("RUNNING")}}, kDeadline).ok());
  }
  clock_.Advance(absl::Milliseconds(500));
  auto restarted = NewTracker();
  absl::StatusOr<RunInfo> info = restarted->CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(restarted->Write(ref_, {{"flyte/phase", std::string("SUCCEEDED")}}, kDeadline).ok());
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 4));
  EXPECT_EQ(
      Lines(RunDir(ref_) / "data-1.log").back(),
      R"({"obj":{"type":"AssignString","path":["flyte","phase"],"value":"SUCCEEDED"},"version":4,"at":1767225600.5})");
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "4");
}

TEST_F(OfflineTrackerTest, TornLastLineIsCutAndVersionsRecomputedFromTheLog) {
  auto tracker = NewTracker();
  ASSERT_TRUE(
      tracker->CreateRun(ref_, {{"sys/name", std::string("a")}, {"sys/failed", false}}, kDeadline).ok());
  const fs::path log = RunDir(ref_) / "data-1.log";
  const std::string before = ReadFile(log);
  // A writer died mid-record, before updating last_put_version (and an older one left it behind).
  AppendToFile(log, R"({"obj":{"type":"AssignStr)");
  WriteFile(RunDir(ref_) / "last_put_version", "1");

  ASSERT_TRUE(tracker->Write(ref_, {{"sys/failed", true}}, kDeadline).ok());
  EXPECT_EQ(
      ReadFile(log),
      before +
          R"({"obj":{"type":"AssignBool","path":["sys","failed"],"value":true},"version":3,"at":1767225600.0})" +
          "\n");
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "3");
}

TEST_F(OfflineTrackerTest, TornOnlyLineOfANewLogIsCut) {
  auto tracker = NewTracker(/*max_log_file_bytes=*/1);
  ASSERT_TRUE(tracker->CreateRun(ref_, {{"a", int64_t{1}}, {"b", int64_t{2}}}, kDeadline).ok());
  AppendToFile(RunDir(ref_) / "data-2.log", "{\"obj\":");
  ASSERT_TRUE(tracker->Write(ref_, {{"c", int64_t{3}}}, kDeadline).ok());
  EXPECT_THAT(
      Lines(RunDir(ref_) / "data-2.log"),
      ElementsAre(R"({"obj":{"type":"AssignInt","path":["b"],"value":2},"version":2,"at":1767225600.0})"));
  EXPECT_THAT(
      Lines(RunDir(ref_) / "data-3.log"),
      ElementsAre(R"({"obj":{"type":"AssignInt","path":["c"],"value":3},"version":3,"at":1767225600.0})"));
}

TEST_F(OfflineTrackerTest, LogsRotateWhenTheNextRecordWouldExceedTheMaximum) {
  const std::string one =
      R"({"obj":{"type":"AssignInt","path":["m"],"value":0},"version":1,"at":1767225600.0})";
  const int64_t two_lines = 2 * static_cast<int64_t>(one.size() + 1);
  auto tracker = NewTracker(two_lines);
  ASSERT_TRUE(tracker->CreateRun(ref_, {{"m", int64_t{0}}}, kDeadline).ok());
  for (int i = 1; i < 5; ++i) ASSERT_TRUE(tracker->Write(ref_, {{"m", int64_t{i}}}, kDeadline).ok());
  // A restarted agent appends to the newest log.
  auto restarted = NewTracker(two_lines);
  ASSERT_TRUE(restarted->Write(ref_, {{"m", int64_t{5}}, {"m", int64_t{6}}}, kDeadline).ok());

  const fs::path run_dir = RunDir(ref_);
  EXPECT_THAT(
      ListDirectory(run_dir),
      ElementsAre(".lock", "data-1.log", "data-3.log", "data-5.log", "data-7.log", "flyte-neptune-agent.json",
                  "last_ack_version", "last_put_version", "metadata.json", "upload_path"));
  EXPECT_THAT(
      Lines(run_dir / "data-1.log"),
      ElementsAre(one,
                  R"({"obj":{"type":"AssignInt","path":["m"],"value":1},"version":2,"at":1767225600.0})"));
  EXPECT_EQ(Lines(run_dir / "data-3.log").size(), 2u);
  EXPECT_EQ(Lines(run_dir / "data-5.log").size(), 2u);
  EXPECT_THAT(
      Lines(run_dir / "data-7.log"),
      ElementsAre(R"({"obj":{"type":"AssignInt","path":["m"],"value":6},"version":7,"at":1767225600.0})"));
  EXPECT_EQ(AllVersions(run_dir), Range(1, 7));
  EXPECT_EQ(ReadFile(run_dir / "last_put_version"), "7");
}

TEST_F(OfflineTrackerTest, AppliesTheClientsValueLimits) {
  std::ostringstream log;
  ConfigureLogging(LogFormat::kJson, LogLevel::kWarning, &log);
  auto tracker = NewTracker();
  const std::string long_ascii(16385, 'x');
  std::string long_utf8;
  for (int i = 0; i < 16385; ++i) long_utf8 += "\xc3\xa9";  // é
  std::string kept_utf8;
  for (int i = 0; i < 16384; ++i) kept_utf8 += "\\u00e9";
  const std::vector<Field> fields = {
      {"s/ascii", long_ascii},
      {"s/utf8", long_utf8},
      {"s/exact", std::string(16384, 'y')},
      {"i/too_big", int64_t{2147483648}},
      {"i/too_small", int64_t{-2147483649}},
      {"i/max", int64_t{2147483647}},
      {"i/min", int64_t{-2147483648}},
      {"f/nan", std::nan("")},
      {"f/inf", std::numeric_limits<double>::infinity()},
      {"f/-inf", -std::numeric_limits<double>::infinity()},
      {"f/ok", -0.25},
      {"t/inf", absl::InfiniteFuture()},
  };
  ASSERT_TRUE(tracker->CreateRun(ref_, fields, kDeadline).ok());
  EXPECT_THAT(
      Lines(RunDir(ref_) / "data-1.log"),
      ElementsAre(
          absl::StrCat(R"({"obj":{"type":"AssignString","path":["s","ascii"],"value":")",
                       std::string(16384, 'x'), R"("},"version":1,"at":1767225600.0})"),
          absl::StrCat(R"({"obj":{"type":"AssignString","path":["s","utf8"],"value":")", kept_utf8,
                       R"("},"version":2,"at":1767225600.0})"),
          absl::StrCat(R"({"obj":{"type":"AssignString","path":["s","exact"],"value":")",
                       std::string(16384, 'y'), R"("},"version":3,"at":1767225600.0})"),
          R"({"obj":{"type":"AssignInt","path":["i","max"],"value":2147483647},"version":4,"at":1767225600.0})",
          R"({"obj":{"type":"AssignInt","path":["i","min"],"value":-2147483648},"version":5,"at":1767225600.0})",
          R"({"obj":{"type":"AssignFloat","path":["f","ok"],"value":-0.25},"version":6,"at":1767225600.0})"));
  EXPECT_EQ(ReadFile(RunDir(ref_) / "last_put_version"), "6");

  std::vector<std::string> warned;
  for (absl::string_view line : absl::StrSplit(log.str(), '\n', absl::SkipEmpty())) {
    const nlohmann::json record = nlohmann::json::parse(line);
    EXPECT_EQ(record.at("level"), "warning");
    warned.push_back(record.at("field").get<std::string>());
  }
  EXPECT_THAT(warned, ElementsAre("s/ascii", "s/utf8", "i/too_big", "i/too_small", "f/nan", "f/inf", "f/-inf",
                                  "t/inf"));
}

TEST_F(OfflineTrackerTest, WriteToAnUnknownRunIsNotFound) {
  auto tracker = NewTracker();
  const absl::Status status = tracker->Write(ref_, {{"sys/failed", true}}, kDeadline);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(RunDir(ref_).string()));
  EXPECT_TRUE(fs::is_empty(OfflineDir()));
}

TEST_F(OfflineTrackerTest, EmptyFieldPathIsInvalidAndWritesNothing) {
  auto tracker = NewTracker();
  ASSERT_TRUE(tracker->CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline).ok());
  const absl::Status status =
      tracker->Write(ref_, {{"sys/failed", true}, {"//", std::string("x")}}, kDeadline);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 1));

  const RunRef other{"ws/proj", "other"};
  EXPECT_EQ(tracker->CreateRun(other, {{"", std::string("x")}}, kDeadline).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(RunDir(other)));
}

TEST_F(OfflineTrackerTest, DifferentCustomIdsGetDifferentRuns) {
  auto tracker = NewTracker();
  const RunRef other{"ws/proj", "fna-abc123-n0-1"};
  absl::StatusOr<RunInfo> a = tracker->CreateRun(ref_, {{"sys/name", std::string("a")}}, kDeadline);
  absl::StatusOr<RunInfo> b = tracker->CreateRun(other, {{"sys/name", std::string("b")}}, kDeadline);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->run_id, b->run_id);
  EXPECT_NE(a->url, b->url);
  EXPECT_EQ(ListDirectory(OfflineDir()).size(), 2u);
  ASSERT_TRUE(tracker->Write(other, {{"sys/failed", true}}, kDeadline).ok());
  EXPECT_EQ(AllVersions(RunDir(ref_)), Range(1, 1));
  EXPECT_EQ(AllVersions(RunDir(other)), Range(1, 2));
  EXPECT_EQ(ReadFile(RunDir(other) / "flyte-neptune-agent.json"),
            "{\n  \"project\": \"ws/proj\",\n  \"customRunId\": \"fna-abc123-n0-1\"\n}\n");
}

TEST_F(OfflineTrackerTest, FallbackLinkNeedsNoRun) {
  auto tracker = NewTracker();
  EXPECT_EQ(tracker->FallbackLink(ref_), "file://" + RunDir(ref_).string());
  EXPECT_FALSE(fs::exists(RunDir(ref_)));
}

TEST_F(OfflineTrackerTest, ErrorsNameThePathAndTheErrno) {
  WriteFile(root_ / "file", "");
  OfflineTrackerOptions options;
  options.directory = (root_ / "file").string();
  const absl::Status status = OfflineTracker::Create(options, &clock_).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr((root_ / "file").string() + "/offline"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("Not a directory"));
}

}  // namespace
}  // namespace fna::neptune
