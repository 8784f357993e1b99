// StoreWait: how long a server's request path has been waiting on its store.
//
// A request's reads (the dedup lookup, a handler's Get/GetMany/Scan) are
// synchronous calls on the thread that executes it -- the HTTP event loop's,
// when the store commits asynchronously (etcd). While every event-loop
// thread waits in such a read, the loop makes no progress, and the take-over
// agent's liveness probe (agent_liveness.h) would take a slow store for a
// hung server and give the service addresses away, to peers that use the
// same store. With this gauge it tells the two apart: silence while the
// request path waits on the store is the store's, up to a bound
// (health_check.liveness_store).
//
//   StoreWait wait(clock);
//   { StoreWait::Scope reading(wait); store.Get(key); }
//   absl::Duration d = wait.Current();  // zero: nothing is waiting
//
// Current() is measured from the moment the number of reads in flight last
// went from zero to one: with reads overlapping back to back it is longer
// than the oldest read's age, never shorter (the conservative side: the
// excuse ends early, not late).
//
// Thread safety: thread-safe; `clock` must outlive it.
#ifndef BATON_FRAMEWORK_STORE_WAIT_H_
#define BATON_FRAMEWORK_STORE_WAIT_H_

#include <algorithm>
#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace baton::framework {

class StoreWait {
 public:
  explicit StoreWait(Clock& clock) : clock_(clock) {}
  StoreWait(const StoreWait&) = delete;
  StoreWait& operator=(const StoreWait&) = delete;

  // Counts one store call in flight for its lifetime; nullptr: counts
  // nothing.
  class Scope {
   public:
    explicit Scope(StoreWait* wait) : wait_(wait) {
      if (wait_ != nullptr) wait_->Enter();
    }
    ~Scope() {
      if (wait_ != nullptr) wait_->Exit();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StoreWait* wait_;
  };

  // Since when at least one call has been in flight without a pause; zero
  // when none is.
  absl::Duration Current() const {
    const std::chrono::nanoseconds now = clock_.MonotonicNow();
    absl::MutexLock lock(&mu_);
    if (in_flight_ == 0) return absl::ZeroDuration();
    return absl::FromChrono(std::max(std::chrono::nanoseconds(0), now - since_));
  }

 private:
  // (A mutex, not atomics: the count and the start must change together,
  // and a store call costs far more than an uncontended lock.)
  void Enter() {
    const std::chrono::nanoseconds now = clock_.MonotonicNow();
    absl::MutexLock lock(&mu_);
    if (in_flight_++ == 0) since_ = now;
  }
  void Exit() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }

  Clock& clock_;
  mutable absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // clock_.MonotonicNow() when in_flight_ last went from 0 to 1.
  std::chrono::nanoseconds since_ ABSL_GUARDED_BY(mu_){0};
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_STORE_WAIT_H_
