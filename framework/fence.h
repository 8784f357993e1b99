// Fencing of the stable store by take-over slots: what keeps a deposed
// holder of a service address from writing after a new holder took over.
//
// The take-over agent moves service addresses ("slots") between hosts and
// gives every holding an epoch that strictly grows per slot (the core's
// fencing token). When this host gets slot s with epoch E, it writes the
// reserved key FenceKey(s) = decimal E to the store, conditioned on the
// version it read and refused when the stored epoch is already >= E
// (Establish). The version F of that write is remembered; from then on every
// commit of a request that arrived on slot s's address carries the condition
// {FenceKey(s), F} (RequestPipeline). A newer holder's fence write changes the
// key's version, so every later commit of the old holder -- including one
// whose handler was already running -- fails on the fence key: "deposed",
// nothing is written, the client gets 503 and retries at the new holder.
//
// Requests that arrive on an address that is not a slot (the host's own
// address, loopback) are not fenced. Requests on a slot whose fence is not
// ready (being written, released, deposed, or refused) fail before they
// commit (kUnavailable).
//
// Thread safety: FenceTable is thread-safe. Establish() blocks on the store
// (call it from a thread that may block, not from an event loop).
#ifndef BATON_FRAMEWORK_FENCE_H_
#define BATON_FRAMEWORK_FENCE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/stable_store.h"

namespace baton::framework {

// The reserved store key of slot `slot`'s fence: "\xff" "fence/<slot>".
std::string FenceKey(uint32_t slot);

enum class FenceState {
  kNone,          // never held here
  kEstablishing,  // held; the fence write is under way
  kReady,         // held; commits carry {FenceKey, version}
  kReleased,      // the address was removed here
  kDeposed,       // a newer holder's fence was seen (at establishment or at a
                  // commit); stays until the slot is held here again
};

std::string_view FenceStateName(FenceState state);

// One slot's fence as this host sees it.
struct FenceSlot {
  uint32_t slot = 0;
  std::string address;  // numeric, no prefix length
  FenceState state = FenceState::kNone;
  uint64_t epoch = 0;    // the epoch of the latest holding here
  uint64_t version = 0;  // version of our fence write (kReady), else 0
  std::string error;     // why the last establishment failed, if it did
};

// What a request that arrived on a given local address must do.
struct FenceDecision {
  enum class Kind {
    kUnfenced,  // not a slot's address: commit without a fence condition
    kFenced,    // add storage::Condition{key, version} to the commit
    kNotReady,  // a slot's address whose fence is not ready: 503
  };
  Kind kind = Kind::kUnfenced;
  uint32_t slot = 0;
  std::string key;
  uint64_t version = 0;
  FenceState state = FenceState::kNone;  // kNotReady: which state
};

struct FenceCounters {
  uint64_t deposed = 0;    // requests refused: their commit hit a newer fence
  uint64_t not_ready = 0;  // requests refused: slot's fence not ready
  uint64_t established = 0;
  uint64_t establish_refused = 0;  // stored epoch >= ours
  uint64_t establish_errors = 0;   // store errors while establishing
};

class FenceTable {
 public:
  FenceTable() = default;
  FenceTable(const FenceTable&) = delete;
  FenceTable& operator=(const FenceTable&) = delete;

  // The decision for a request that arrived on `local_address` (numeric, as
  // the front end saw it; IPv4-mapped IPv6 must already be unmapped).
  // Counts nothing; see CountNotReady / CountDeposed.
  FenceDecision ForAddress(std::string_view local_address) const;

  // The agent reports slot `slot` (address `address`) taken here with
  // `epoch`: state kEstablishing until Establish() for the same epoch ends.
  void Held(uint32_t slot, std::string address, uint64_t epoch);

  // Writes the fence of the holding begun by Held(slot, _, epoch): reads
  // FenceKey(slot); if the stored epoch is >= `epoch` the holder is already
  // deposed (kFailedPrecondition, state kDeposed); else writes `epoch`
  // conditioned on the version read (a racing writer: read again, at most a
  // few times) and sets kReady with the written version. Blocks on the store.
  // Returns kAborted without touching the state when the slot was released
  // or held again with another epoch meanwhile (the result is stale); store
  // errors (kUnavailable, kUnknown, ...) leave kEstablishing (the caller
  // retries). OK: the fence is ready.
  [[nodiscard]] absl::Status Establish(storage::StableStore& store,
                                       uint32_t slot, uint64_t epoch);

  // The agent reports slot `slot` removed here: state kReleased.
  void Released(uint32_t slot);

  // A commit conditioned on {FenceKey(slot), version} failed on that key:
  // a newer holder wrote its fence. Marks the slot kDeposed if its fence is
  // still that version, and counts the request.
  void Deposed(uint32_t slot, uint64_t version);
  void CountNotReady();

  // Every slot ever reported, by slot number.
  std::vector<FenceSlot> Snapshot() const;
  FenceCounters Counters() const;

  // True when the slot is kEstablishing for exactly `epoch` (Establish of
  // that holding is still wanted).
  bool WantsEstablish(uint32_t slot, uint64_t epoch) const;

 private:
  mutable absl::Mutex mu_;
  std::map<uint32_t, FenceSlot> slots_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> deposed_{0}, not_ready_{0}, established_{0},
      establish_refused_{0}, establish_errors_{0};
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_FENCE_H_
