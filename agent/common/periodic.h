#ifndef FNA_AGENT_COMMON_PERIODIC_H_
#define FNA_AGENT_COMMON_PERIODIC_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace fna {

// Calls `fn` on its own thread every `interval` (real time) until Stop() or destruction. What `fn` does
// should be decided by an injected clock; this only paces it. Thread-safe.
class PeriodicThread {
 public:
  PeriodicThread(absl::Duration interval, std::function<void()> fn);
  ~PeriodicThread();
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  // Stops the thread after the current call, if any, returns. Idempotent.
  void Stop();

 private:
  void Loop();

  const absl::Duration interval_;
  const std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable stopped_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fna

#endif  // FNA_AGENT_COMMON_PERIODIC_H_
