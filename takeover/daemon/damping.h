// Damping of lease losses (config `damping`, config.h DampingConfig): the policy that makes a
// holder with a gray failure -- a cluster link that loses or delays a share of its datagrams --
// step back from a slot instead of winning it back after every loss. Without it such a holder,
// still the top-ranked candidate in every view, flaps holder -> nobody -> holder while the two
// healthy hosts wait (issue 14: eleven flaps in 5 s of 25 % loss, clients stuck up to 6.4 s).
//
// Pure: no clock reads, no I/O. The daemon reports each lease loss (an address removed that it
// did not choose to release) with its clock reading; the damper says when to step back (the
// daemon drains the slot, so its peers assign it elsewhere) and when the step-back is over (the
// daemon undrains it; like a recovered node it then takes no slot from a live holder).
//
// Thread safety: none (the daemon's io_context thread owns it).
#ifndef BATON_TAKEOVER_DAEMON_DAMPING_H_
#define BATON_TAKEOVER_DAEMON_DAMPING_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "takeover/core/node.h"
#include "takeover/daemon/config.h"

namespace baton::takeover {

class LeaseLossDamper {
 public:
  LeaseLossDamper(const DampingConfig& config, size_t slots);

  // The lease of `slot` ran out at `now` (the address was removed without a release this node
  // chose). True when this is the config.losses-th loss within config.window: step back now,
  // until NextEnd(). False while stepped back already, or when damping is off (losses 0).
  bool OnLoss(uint32_t slot, Time now);
  // Ends a step-back at once (e.g. no peer could take the slot).
  void Cancel(uint32_t slot);
  // Slots whose step-back ended at or before `now`, each returned once.
  std::vector<uint32_t> TakeEnded(Time now);
  // The earliest end of a step-back in progress.
  std::optional<Time> NextEnd() const;
  bool stepped_back(uint32_t slot) const;
  uint64_t step_backs() const { return step_backs_; }

 private:
  struct SlotState {
    std::deque<Time> losses;  // within the window, oldest first
    std::optional<Time> until;  // stepped back until then
  };
  DampingConfig config_;
  std::vector<SlotState> slots_;
  uint64_t step_backs_ = 0;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_DAMPING_H_
