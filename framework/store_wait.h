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
//   { StoreWait::Scope reading(&wait); store.Get(key); }
//   bool waiting = wait.Waiting();      // a read is in flight
//   absl::Duration d = wait.Current();  // since when (zero: none is)
//
// Whether a read is in flight is exact; how long is for the logs: it is
// measured from the moment the number of reads in flight last went from zero
// to one (with reads overlapping back to back, longer than the oldest read's
// age), and a read that starts while Current() runs may be dated a moment
// off. The liveness judgement uses only whether it is zero: it bounds the
// silence, not the wait.
//
// Cost on the request path: two atomic increments per read, and a clock read
// when it is the only one in flight; no lock.
//
// Thread safety: thread-safe; `clock` must outlive it.
#ifndef BATON_FRAMEWORK_STORE_WAIT_H_
#define BATON_FRAMEWORK_STORE_WAIT_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

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
      if (wait_ != nullptr) wait_->in_flight_.fetch_sub(1);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StoreWait* wait_;
  };

  // Whether at least one call is in flight.
  bool Waiting() const { return in_flight_.load() > 0; }

  // Since when at least one call has been in flight without a pause (see the
  // file comment); zero exactly when none is (at least 1 ns while one is).
  absl::Duration Current() const {
    if (!Waiting()) return absl::ZeroDuration();
    const int64_t now = clock_.MonotonicNow().count();
    return absl::Nanoseconds(std::max<int64_t>(1, now - since_ns_.load()));
  }

 private:
  void Enter() {
    if (in_flight_.fetch_add(1) == 0) {
      since_ns_.store(clock_.MonotonicNow().count());
    }
  }

  Clock& clock_;
  std::atomic<int> in_flight_{0};
  // clock_.MonotonicNow() when in_flight_ last went from 0 to 1.
  std::atomic<int64_t> since_ns_{0};
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_STORE_WAIT_H_
