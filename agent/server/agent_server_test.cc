#include "agent/server/agent_server.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/testing/fake_clock.h"
#include "agent/testing/fake_executor.h"
#include "agent/testing/fake_output_store.h"
#include "agent/testing/fake_tracker.h"
#include "agent/testing/flyte_requests.h"
#include "agent/testing/grpc_health_check.h"
#include "agent/tracking/final_writer.h"
#include "flyteidl/service/agent.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace fna::server {
namespace {

constexpr int kServing = 1;
constexpr int kNotServing = 2;

// A FakeExecutor whose Start waits while held, and whose readiness the test sets.
class GatedExecutor final : public executor::Executor {
 public:
  absl::Status Start(const executor::TaskSpec& spec) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !held_; });
      --waiting_;
    }
    return inner_.Start(spec);
  }
  absl::StatusOr<executor::TaskStatus> GetStatus(const executor::TaskRef& task) override {
    return inner_.GetStatus(task);
  }
  absl::Status Abort(const executor::TaskRef& task) override { return inner_.Abort(task); }
  absl::Status MarkRunFinalized(const executor::TaskRef& task) override {
    return inner_.MarkRunFinalized(task);
  }
  absl::Status RecordPendingFinalWrite(const executor::TaskRef& task, absl::string_view record) override {
    return inner_.RecordPendingFinalWrite(task, record);
  }
  absl::StatusOr<std::vector<std::string>> ListPendingFinalWrites() override {
    return inner_.ListPendingFinalWrites();
  }
  absl::StatusOr<executor::LogBatch> ReadLogs(const executor::TaskRef& task,
                                              const executor::LogQuery& query) override {
    return inner_.ReadLogs(task, query);
  }
  bool Ready() const override { return ready_; }

  void SetReady(bool ready) { ready_ = ready; }
  void Hold(bool held) {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = held;
    changed_.notify_all();
  }
  void WaitForStart() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return waiting_ > 0; });
  }

 private:
  FakeExecutor inner_;
  std::atomic<bool> ready_{true};
  std::mutex mu_;
  std::condition_variable changed_;
  bool held_ = false;
  int waiting_ = 0;
};

class AgentServerTest : public ::testing::Test {
 protected:
  AgentServerTest() { config_.listen_address = "127.0.0.1:0"; }

  void StartServer() {
    health_.AddReadinessCheck("executor", [this] { return executor_.Ready(); });
    AgentServer::Options options;
    options.health = &health_;
    options.metrics = &registry_;
    options.clock = &clock_;
    options.probe_interval = absl::Milliseconds(10);
    auto server = AgentServer::Start(&config_, &lifecycle_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
  }

  AgentConfig config_;
  FakeClock clock_;
  FakeTracker tracker_;
  GatedExecutor executor_;
  FakeOutputStore outputs_;
  tracking::FinalWriter final_writer_{tracking::FinalWriter::Options{}, &tracker_, &executor_, &clock_};
  tracking::TaskLifecycle lifecycle_{&config_, &tracker_, &executor_, &outputs_, &final_writer_, &clock_};
  metrics::Registry registry_;
  Health health_{&clock_, absl::Seconds(30)};
  std::unique_ptr<AgentServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AgentServerTest, HealthIsNotServingUntilReadyAndWhileTheExecutorIsNot) {
  StartServer();
  for (const std::string service :
       {"", "flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService"}) {
    EXPECT_EQ(testing::GrpcHealthCheck(channel_, service), kNotServing) << service;  // starting
  }
  EXPECT_EQ(testing::GrpcHealthCheck(channel_, "no.such.Service"), -grpc::StatusCode::NOT_FOUND);
  health_.SetServing();
  server_->ReportReadiness();
  for (const std::string service :
       {"", "flyteidl.service.AsyncAgentService", "flyteidl.service.AgentMetadataService"}) {
    EXPECT_EQ(testing::GrpcHealthCheck(channel_, service), kServing) << service;
  }
  executor_.SetReady(false);  // e.g. the Pod cache lost its watch
  server_->ReportReadiness();
  EXPECT_EQ(testing::GrpcHealthCheck(channel_, ""), kNotServing);
  EXPECT_EQ(testing::GrpcHealthCheck(channel_, "flyteidl.service.AsyncAgentService"), kNotServing);
  executor_.SetReady(true);
  server_->ReportReadiness();
  EXPECT_EQ(testing::GrpcHealthCheck(channel_, ""), kServing);
}

TEST_F(AgentServerTest, TheProbeKeepsTheAgentAlive) {
  StartServer();
  health_.SetServing();
  clock_.Advance(absl::Minutes(1));
  // The probe thread answers within its interval and records a heartbeat at the clock's new time.
  while (!health_.Liveness().ok) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(health_.Liveness().ok);
}

TEST_F(AgentServerTest, ShutdownLetsACallInFlightFinishThenReturnsDespiteTheOpenConnection) {
  StartServer();
  health_.SetServing();
  server_->ReportReadiness();
  auto stub = flyteidl::service::AsyncAgentService::NewStub(channel_);
  executor_.Hold(true);
  grpc::Status created;
  std::thread create([&] {
    grpc::ClientContext context;
    flyteidl::admin::CreateTaskResponse response;
    created = stub->CreateTask(&context, MakeCreateRequest(), &response);
  });
  executor_.WaitForStart();
  absl::Time returned;
  std::thread shutdown([&] {
    server_->Shutdown(absl::Now() + absl::Seconds(30));
    returned = absl::Now();
  });
  // New connections are refused once the drain began; then the held call may finish.
  while (true) {
    auto fresh =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
    if (testing::GrpcHealthCheck(fresh, "") < 0) break;
  }
  const absl::Time released = absl::Now();
  executor_.Hold(false);
  create.join();
  shutdown.join();
  EXPECT_TRUE(created.ok()) << created.error_message();
  // The client's connection stays open; the drain does not wait for it (gRPC alone would, for seconds).
  EXPECT_LT(returned - released, absl::Seconds(3));
  EXPECT_NE(registry_.TextExposition().find("flyte_neptune_agent_grpc_requests_total{task_type=\"neptune\","
                                            "operation=\"create\",code=\"OK\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace fna::server
