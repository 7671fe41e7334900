// Three agent replicas (three NeptuneClients, each over its own http::HttplibTransport) against one strict
// Neptune emulator, with propeller's GetTask polls spread round-robin over them. One FakeClock drives the
// clients, the transports and the emulator, so the emulator's request log carries the simulated time of every
// ping.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/secret.h"
#include "agent/http/http_transport.h"
#include "agent/neptune/neptune_client.h"
#include "agent/testing/fake_clock.h"
#include "gtest/gtest.h"
#include "tests/neptune_emulator/emulator.h"

namespace fna::neptune {
namespace {

using ::fna::neptune_emulator::NeptuneEmulator;
using ::fna::neptune_emulator::RequestRecord;
using ::fna::neptune_emulator::RunSnapshot;

constexpr char kProject[] = "ws/proj";
constexpr char kPing[] = "/api/leaderboard/v1/attributes/ping";

constexpr int kReplicas = 3;
constexpr int kRuns = 30;
constexpr int kResyncSeconds = 30;    // propeller polls each task's GetTask every 30 s
constexpr int kPingsPerSecond = 2;    // each replica's budget: too small to ping 30 runs every 10 s
constexpr int kIntervalSeconds = 10;  // PingerOptions::interval
constexpr int kIdleExpirySeconds = 180;
// Polls before this second ensure the run; the first poll at or after it finds the task finished and writes
// the final fields.
constexpr int kFinalizeFrom = 180;
constexpr int kEnd = 400;

// The longest a due run waits for a token of its replica's budget: all runs due at once, served at the
// budget's rate.
constexpr int kBudgetDelaySeconds = (kRuns + kPingsPerSecond - 1) / kPingsPerSecond;

RunRef Ref(int run) { return RunRef{kProject, absl::StrCat("run-", run), -1}; }

std::string UserAgent(int replica) { return absl::StrCat("fna-replica-", replica); }

// Which replica serves run `run`'s poll at second `t` (polls at t = run + 30 m): the m-th poll of each run
// goes to the next replica, so every replica sees every run every 90 s.
int ReplicaOf(int run, int t) { return (run + (t - run) / kResyncSeconds) % kReplicas; }

std::string Header(const RequestRecord& record, absl::string_view name) {
  for (const auto& [key, value] : record.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

class ReplicaPingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NeptuneEmulator::Options options;
    options.clock = &clock_;
    options.projects = {{kProject, "PROJ"}};
    options.max_request_log = 100000;
    absl::StatusOr<std::unique_ptr<NeptuneEmulator>> emulator = NeptuneEmulator::Start(std::move(options));
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    token_ = emulator_->api_token();
    for (int replica = 0; replica < kReplicas; ++replica) {
      absl::StatusOr<std::unique_ptr<http::HttplibTransport>> transport =
          http::HttplibTransport::Create(http::HttplibTransportOptions(), &clock_);
      ASSERT_TRUE(transport.ok()) << transport.status();
      transports_.push_back(*std::move(transport));
      NeptuneClientOptions client_options;
      client_options.token_source = [this](int) { return absl::StatusOr<Secret>(Secret(token_)); };
      client_options.random = [] { return 0.5; };
      client_options.user_agent = UserAgent(replica);
      client_options.pinger.interval = absl::Seconds(kIntervalSeconds);
      client_options.pinger.idle_expiry = absl::Seconds(kIdleExpirySeconds);
      client_options.pinger.max_pings_per_second = kPingsPerSecond;
      clients_.push_back(
          std::make_unique<NeptuneClient>(std::move(client_options), transports_.back().get(), &clock_));
    }
  }

  void TearDown() override {
    clients_.clear();
    transports_.clear();
    emulator_.reset();
  }

  absl::Time Deadline() const { return clock_.Now() + absl::Seconds(2); }

  FakeClock clock_;
  std::string token_;
  std::unique_ptr<NeptuneEmulator> emulator_;
  std::vector<std::unique_ptr<http::HttplibTransport>> transports_;
  std::vector<std::unique_ptr<NeptuneClient>> clients_;
};

TEST_F(ReplicaPingTest, RoundRobinPollsKeepEveryRunPingedWithinTheBudgets) {
  const absl::Time start = clock_.Now();
  std::vector<int> finalized_at(kRuns, -1);
  std::vector<std::map<int, int>> last_touch(kRuns);  // run -> replica -> second of its last poll there
  for (int t = 0; t <= kEnd; ++t) {
    clock_.Set(start + absl::Seconds(t));
    for (int run = 0; run < kRuns; ++run) {
      if (t < run || (t - run) % kResyncSeconds != 0 || finalized_at[run] >= 0) continue;
      const int replica = ReplicaOf(run, t);
      NeptuneClient& client = *clients_[replica];
      // Every GetTask ensures the run (CreateRun), which touches it in that replica's pinger.
      absl::StatusOr<RunInfo> info =
          client.CreateRun(Ref(run), {{"flyte/phase", std::string("RUNNING")}}, Deadline());
      ASSERT_TRUE(info.ok()) << "run " << run << " at " << t << ": " << info.status();
      last_touch[run][replica] = t;
      if (t >= kFinalizeFrom) {
        // The poll that finds the task finished writes the final fields; propeller polls no more.
        ASSERT_TRUE(client
                        .Write(Ref(run),
                               {{"flyte/phase", std::string("SUCCEEDED")}, {"flyte/exit_code", int64_t{0}}},
                               Deadline())
                        .ok());
        finalized_at[run] = t;
      }
    }
    for (auto& client : clients_) client->RunDue();
  }
  for (int run = 0; run < kRuns; ++run) ASSERT_EQ(finalized_at[run], kFinalizeFrom + run) << run;

  // Runs by experiment id; every run created once though each replica "created" it.
  const std::vector<RunSnapshot> runs = emulator_->Runs();
  ASSERT_EQ(runs.size(), static_cast<size_t>(kRuns));
  std::map<std::string, int> run_of;  // experiment uuid -> run number
  for (const RunSnapshot& snapshot : runs) {
    ASSERT_TRUE(absl::StartsWith(snapshot.custom_id, "run-")) << snapshot.custom_id;
    run_of[snapshot.id] = std::stoi(snapshot.custom_id.substr(4));
    EXPECT_EQ(snapshot.attributes.at("flyte/phase").value, "SUCCEEDED") << snapshot.custom_id;
  }

  // The pings, from the emulator's log: per run (second, replica), and per second.
  std::vector<std::vector<std::pair<int, int>>> pings(kRuns);
  std::map<int, int> pings_per_second;
  std::map<std::pair<int, int>, int> pings_per_replica_second;
  int total = 0;
  for (const RequestRecord& record : emulator_->Requests()) {
    EXPECT_EQ(record.status, 200) << record.method << " " << record.path << ": " << record.response_body;
    if (record.path != kPing) continue;
    ++total;
    ASSERT_TRUE(absl::StartsWith(record.query, "experimentId=")) << record.query;
    auto run = run_of.find(record.query.substr(std::string("experimentId=").size()));
    ASSERT_NE(run, run_of.end()) << record.query;
    const int64_t second = absl::ToInt64Seconds(record.time - start);
    ASSERT_EQ(record.time, start + absl::Seconds(second));  // nothing slept: pings at whole seconds
    const std::string agent = Header(record, "User-Agent");
    int replica = -1;
    for (int r = 0; r < kReplicas; ++r) {
      if (agent == UserAgent(r)) replica = r;
    }
    ASSERT_NE(replica, -1) << agent;
    pings[run->second].emplace_back(static_cast<int>(second), replica);
    ++pings_per_second[static_cast<int>(second)];
    ++pings_per_replica_second[{replica, static_cast<int>(second)}];
  }
  EXPECT_EQ(total, emulator_->RequestCount("POST", kPing));
  int64_t sent = 0;
  for (auto& client : clients_) sent += client->pinger().pings_sent();
  EXPECT_EQ(sent, total);

  // The budgets: never more than the three together per second, nor one replica's more than its own.
  int busiest = 0;
  for (const auto& [second, count] : pings_per_second) {
    EXPECT_LE(count, kReplicas * kPingsPerSecond) << "second " << second;
    busiest = std::max(busiest, count);
  }
  EXPECT_EQ(busiest, kReplicas * kPingsPerSecond);  // the budgets bind: 90 pings per 10 s are wanted
  for (const auto& [replica_second, count] : pings_per_replica_second) {
    EXPECT_LE(count, kPingsPerSecond)
        << "replica " << replica_second.first << " second " << replica_second.second;
  }

  constexpr int kMaxGap = kIntervalSeconds + kBudgetDelaySeconds;
  int longest_gap = 0;
  int after_final = 0;  // pings of finished runs, by the replicas that did not finalize them
  for (int run = 0; run < kRuns; ++run) {
    const std::vector<std::pair<int, int>>& times = pings[run];
    ASSERT_FALSE(times.empty()) << run;
    // Active: the first ping within the budget's delay of the first poll, then no gap longer than
    // interval + delay until the final write.
    EXPECT_LE(times.front().first - run, kBudgetDelaySeconds) << "run " << run;
    int previous = times.front().first;
    for (const auto& [second, replica] : times) {
      if (second > finalized_at[run]) break;
      EXPECT_LE(second - previous, kMaxGap)
          << "run " << run << " unpinged from " << previous << " to " << second;
      longest_gap = std::max(longest_gap, second - previous);
      previous = second;
    }
    EXPECT_GE(previous + kMaxGap, finalized_at[run]) << "run " << run << " last pinged at " << previous;

    // Final: the replica that wrote the final fields stops at once; the others, which never hear of it,
    // drop the run idle_expiry after their last poll of it.
    const int finalizer = ReplicaOf(run, finalized_at[run]);
    for (const auto& [second, replica] : times) {
      if (second >= finalized_at[run]) ++after_final;
      if (replica == finalizer) {
        EXPECT_LT(second, finalized_at[run]) << "run " << run << " pinged by its finalizer at " << second;
      } else {
        EXPECT_LT(second, last_touch[run][replica] + kIdleExpirySeconds)
            << "run " << run << " pinged by replica " << replica << " at " << second;
      }
    }
  }
  RecordProperty("longest_gap_seconds", longest_gap);
  RecordProperty("pings", total);
  RecordProperty("pings_after_final_write", after_final);
  for (auto& client : clients_) EXPECT_EQ(client->pinger().active_runs(), 0u);
  // Everything has stopped: one more round sends nothing.
  clock_.Advance(absl::Seconds(kIntervalSeconds));
  for (auto& client : clients_) EXPECT_EQ(client->RunDue(), 0);
}

}  // namespace
}  // namespace fna::neptune
