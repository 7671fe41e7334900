// GetTask on the Kubernetes executor at scale: the latency of GetStatus and the API requests per minute, with
// the Pod cache (list+watch) and without it (one GET per poll, the baseline), at 100 and 5,000 running tasks
// polled as propeller would at 200 GetTask per second. Against the fake API server over real HTTP on this
// machine, so absolute figures are machine-dependent: compare the ratios, measured in the same run.
//
//   scripts/bench.sh

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/common/clock.h"
#include "agent/common/log.h"
#include "agent/executor/kubernetes/kubernetes_executor.h"
#include "agent/executor/kubernetes/pod_cache.h"
#include "agent/kube/kube_client.h"
#include "agent/testing/flyte_requests.h"
#include "tests/fake_kube_apiserver/fake_kube_apiserver.h"

namespace fna::executor::kubernetes {
namespace {

constexpr char kNamespace[] = "flytesnacks-development";
constexpr char kToken[] = "bench-token";
constexpr int kPolls = 4000;             // GetTask calls measured per configuration
constexpr double kPollsPerSecond = 200;  // propeller's rate in the scenario

struct Result {
  double p50_us = 0;
  double p99_us = 0;
  double requests_per_minute = 0;
};

double Percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[static_cast<size_t>(p * static_cast<double>(samples.size() - 1))];
}

class Bench {
 public:
  explicit Bench(int tasks) : tasks_(tasks) {
    fake_kube::FakeKubeApiServer::Options options;
    options.worker_threads = 32;
    server_ = *fake_kube::FakeKubeApiServer::Start(options);
    server_->AcceptToken(kToken);
    kube::ClusterConnection connection;
    connection.server = server_->url();
    connection.token = Secret(kToken);
    kube::KubeClientOptions client_options;
    client_options.qps = 1e6;  // measure the executor, not the client's rate limit
    client_options.burst = 1000000;
    client_ = *kube::KubeClient::Create(connection, client_options, Clock::Real());
    KubernetesExecutorOptions executor_options;
    executor_options.owner_references = false;
    executor_options.request_timeout = absl::Seconds(10);
    direct_ = std::make_unique<KubernetesExecutor>(client_.get(), executor_options, Clock::Real());
    PodCacheOptions cache_options;
    cache_options.label_selector = AgentPodSelector(executor_options.agent_name);
    cache_ = std::make_unique<PodCache>(client_.get(), cache_options, Clock::Real());
    cached_ =
        std::make_unique<KubernetesExecutor>(client_.get(), executor_options, Clock::Real(), cache_.get());
    for (int i = 0; i < tasks_; ++i) {
      requests_.push_back(
          std::make_unique<flyteidl::admin::CreateTaskRequest>(MakeCreateRequest(absl::StrCat("n", i))));
      if (!direct_->Start(Spec(i)).ok()) std::fprintf(stderr, "start %d failed\n", i);
    }
    cache_->Start();
    while (!cache_->synced()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~Bench() {
    cached_.reset();
    cache_->Stop();
  }

  Result Measure(KubernetesExecutor* executor) {
    std::mt19937 random(42);
    std::vector<double> latencies;
    latencies.reserve(kPolls);
    server_->ClearRequests();
    for (int i = 0; i < kPolls; ++i) {
      const auto start = std::chrono::steady_clock::now();
      auto status = executor->GetStatus(Spec(static_cast<int>(random() % tasks_)).ref());
      const auto end = std::chrono::steady_clock::now();
      if (!status.ok())
        std::fprintf(stderr, "GetStatus failed: %s\n", std::string(status.status().message()).c_str());
      latencies.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    Result result;
    result.p50_us = Percentile(latencies, 0.5);
    result.p99_us = Percentile(latencies, 0.99);
    // kPolls polls take kPolls / kPollsPerSecond seconds of propeller's time.
    result.requests_per_minute =
        static_cast<double>(server_->Requests().size()) / (kPolls / kPollsPerSecond) * 60.0;
    return result;
  }

  KubernetesExecutor* direct() { return direct_.get(); }
  KubernetesExecutor* cached() { return cached_.get(); }

 private:
  TaskSpec Spec(int i) {
    TaskSpec spec;
    spec.name = absl::StrCat("f6c5d2a1b9e8a4c3d2b1-n", i, "-0");
    spec.k8s_namespace = kNamespace;
    spec.request = requests_[i].get();
    spec.neptune_project = "ml/flyte";
    spec.custom_run_id = absl::StrCat("run-", i);
    return spec;
  }

  const int tasks_;
  std::unique_ptr<fake_kube::FakeKubeApiServer> server_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<KubernetesExecutor> direct_;
  std::unique_ptr<PodCache> cache_;
  std::unique_ptr<KubernetesExecutor> cached_;
  std::vector<std::unique_ptr<flyteidl::admin::CreateTaskRequest>> requests_;
};

void Run() {
  std::printf("GetTask on the Kubernetes executor, %d polls at a simulated %.0f GetTask/s\n", kPolls,
              kPollsPerSecond);
  std::printf("%-8s %-10s %12s %12s %18s\n", "tasks", "reads", "p50 (us)", "p99 (us)", "API requests/min");
  for (int tasks : {100, 5000}) {
    Bench bench(tasks);
    const Result direct = bench.Measure(bench.direct());
    const Result cached = bench.Measure(bench.cached());
    std::printf("%-8d %-10s %12.1f %12.1f %18.0f\n", tasks, "GET/poll", direct.p50_us, direct.p99_us,
                direct.requests_per_minute);
    std::printf("%-8d %-10s %12.1f %12.1f %18.0f\n", tasks, "cache", cached.p50_us, cached.p99_us,
                cached.requests_per_minute);
    std::printf("%-8d ratio cache/GET: p50 %.3f, p99 %.3f; requests/min %.0f vs %.0f\n", tasks,
                cached.p50_us / direct.p50_us, cached.p99_us / direct.p99_us, cached.requests_per_minute,
                direct.requests_per_minute);
  }
}

}  // namespace
}  // namespace fna::executor::kubernetes

int main() {
  fna::ConfigureLogging(fna::LogFormat::kText, fna::LogLevel::kWarning);  // not a line per Pod created
  fna::executor::kubernetes::Run();
  return 0;
}
