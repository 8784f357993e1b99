// Pool assignment: which node campaigns for which slot (service address).
//
// A pure function of a node's membership view (the candidates it currently
// hears, with their priorities and capacities) and the holders it knows of.
// Every node computes it from its own view; nodes that agree on the inputs
// agree on the result. It only decides *who campaigns*: two nodes with
// disagreeing views may both campaign for a slot, and then the per-slot
// majority lease lets at most one of them hold it (docs/takeover.md "Pool").
//
// Rules (docs/takeover.md "Pool of addresses"):
//   * Slot 0 is the most important. With total candidate capacity C below the
//     number of slots S, only slots 0..C-1 are assigned; the rest are *shed*
//     (unassigned) until capacity returns.
//   * Sticky: a served slot stays with its current holder while the holder is
//     a candidate within its capacity (a holder over capacity keeps its
//     lowest-numbered slots).
//   * Free served slots go, in slot order, to the least-loaded candidate with
//     spare capacity; ties by higher priority, then lower id.
//   * With `rebalance`, slots then move (highest-numbered first) from the most
//     loaded candidate to the least loaded one with spare capacity while their
//     loads differ by two or more; otherwise a recovered node gets only
//     free slots.
//
// Cost: O(S log P + P log P) for S slots and P candidates. Thread-safe (pure).
#ifndef BATON_TAKEOVER_CORE_ASSIGNMENT_H_
#define BATON_TAKEOVER_CORE_ASSIGNMENT_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "takeover/core/node.h"

namespace baton::takeover {

struct Candidate {
  NodeId id = kNoNode;
  int priority = 0;  // Higher first; ties by lower id.
  int capacity = 0;  // Most slots it may carry; negative counts as 0.
};

struct AssignmentInput {
  uint32_t num_slots = 0;
  // Nodes that may be given slots. Duplicate ids: the first one counts.
  std::vector<Candidate> candidates;
  // Per slot (size num_slots, or shorter: missing = kNoNode): the node known
  // to hold it now, kNoNode if none. Holders that are not candidates are
  // ignored (their slots count as free).
  std::vector<NodeId> holders;
  // Move slots to even out the load (see the file comment). Default: false.
  bool rebalance = false;
  // (slot, node) pairs: the node must not be given that slot (it drained the
  // slot alone, Node::Drain(slot)). Such a slot may stay unassigned if only
  // excluded candidates have room.
  std::vector<std::pair<uint32_t, NodeId>> excluded;
};

struct Assignment {
  std::vector<NodeId> slot_owner;  // Per slot: who campaigns; kNoNode = nobody.
  // Number of slots left unassigned because the total capacity is too small
  // (they are the highest-numbered ones). 0 when there are no candidates
  // counts every slot as shed.
  uint32_t shed = 0;
};

Assignment Assign(const AssignmentInput& input);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_CORE_ASSIGNMENT_H_
