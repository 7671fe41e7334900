#include "agent/common/periodic.h"

#include <utility>

namespace fna {

PeriodicThread::PeriodicThread(absl::Duration interval, std::function<void()> fn)
    : interval_(interval), fn_(std::move(fn)), thread_([this] { Loop(); }) {}

PeriodicThread::~PeriodicThread() { Stop(); }

void PeriodicThread::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stopped_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeriodicThread::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopped_.wait_for(lock, absl::ToChronoNanoseconds(interval_), [this] { return stop_; })) return;
    }
    fn_();
  }
}

}  // namespace fna
