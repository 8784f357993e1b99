#include "takeover/core/assignment.h"

#include <algorithm>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>

namespace baton::takeover {
namespace {

struct Cand {
  NodeId id;
  int priority;
  int capacity;
  int load = 0;
};

// Heap order for "fill the least-loaded": fewer slots, then higher priority,
// then lower id. The comparator says whether a ranks *after* b.
struct AfterInFill {
  const std::vector<Cand>* c;
  bool operator()(size_t a, size_t b) const {
    const Cand& x = (*c)[a];
    const Cand& y = (*c)[b];
    return std::make_tuple(x.load, -x.priority, x.id) > std::make_tuple(y.load, -y.priority, y.id);
  }
};

}  // namespace

Assignment Assign(const AssignmentInput& input) {
  Assignment out;
  const uint32_t n = input.num_slots;
  out.slot_owner.assign(n, kNoNode);

  std::vector<Cand> cands;
  std::unordered_map<NodeId, size_t> index;
  int64_t total = 0;
  for (const Candidate& c : input.candidates) {
    if (c.id == kNoNode || index.count(c.id)) continue;
    const int cap = std::max(0, c.capacity);
    index[c.id] = cands.size();
    cands.push_back({c.id, c.priority, cap});
    total += cap;
  }
  const std::set<std::pair<uint32_t, NodeId>> excluded(input.excluded.begin(),
                                                       input.excluded.end());
  auto allowed = [&](uint32_t k, NodeId id) {
    return excluded.empty() || !excluded.count({k, id});
  };
  const uint32_t served = static_cast<uint32_t>(std::min<int64_t>(n, total));
  out.shed = n - served;

  // Sticky pass: served slots stay with their holder within its capacity
  // (lower-numbered slots first, so a holder over capacity keeps those).
  for (uint32_t k = 0; k < served && k < input.holders.size(); ++k) {
    auto it = index.find(input.holders[k]);
    if (it == index.end()) continue;
    Cand& c = cands[it->second];
    if (c.load < c.capacity && allowed(k, c.id)) {
      out.slot_owner[k] = c.id;
      ++c.load;
    }
  }

  // Fill pass: free served slots in order to the least-loaded candidate.
  AfterInFill after{&cands};
  std::priority_queue<size_t, std::vector<size_t>, AfterInFill> heap(after);
  for (size_t i = 0; i < cands.size(); ++i) {
    if (cands[i].load < cands[i].capacity) heap.push(i);
  }
  for (uint32_t k = 0; k < served; ++k) {
    if (out.slot_owner[k] != kNoNode) continue;
    std::vector<size_t> skipped;  // Excluded from this slot only.
    while (!heap.empty() && !allowed(k, cands[heap.top()].id)) {
      skipped.push_back(heap.top());
      heap.pop();
    }
    if (!heap.empty()) {
      const size_t i = heap.top();
      heap.pop();
      out.slot_owner[k] = cands[i].id;
      if (++cands[i].load < cands[i].capacity) heap.push(i);
    }
    for (size_t i : skipped) heap.push(i);
  }

  if (!input.rebalance || cands.size() < 2) return out;
  // Rebalance: move from the most loaded to the least loaded (with room)
  // while they differ by two or more. Each move lowers the sum of squared
  // loads, so this ends; bounded by `served` moves anyway.
  std::vector<std::vector<uint32_t>> owned(cands.size());
  for (uint32_t k = 0; k < served; ++k) {
    if (out.slot_owner[k] != kNoNode) owned[index[out.slot_owner[k]]].push_back(k);
  }
  for (uint32_t moves = 0; moves < served; ++moves) {
    size_t hi = cands.size();
    size_t lo = cands.size();
    for (size_t i = 0; i < cands.size(); ++i) {
      const Cand& c = cands[i];
      // Most loaded; ties: the lower-ranked gives first.
      if (hi == cands.size() ||
          std::make_tuple(c.load, -c.priority, c.id) >
              std::make_tuple(cands[hi].load, -cands[hi].priority, cands[hi].id)) {
        hi = i;
      }
      if (c.load < c.capacity &&
          (lo == cands.size() || after(lo, i))) {
        lo = i;
      }
    }
    if (lo == cands.size() || cands[hi].load - cands[lo].load < 2) break;
    // Its least important slot that `lo` may take.
    auto pick = std::find_if(owned[hi].rbegin(), owned[hi].rend(),
                             [&](uint32_t k) { return allowed(k, cands[lo].id); });
    if (pick == owned[hi].rend()) break;
    const uint32_t k = *pick;
    owned[hi].erase(std::next(pick).base());
    owned[lo].push_back(k);
    std::sort(owned[lo].begin(), owned[lo].end());
    out.slot_owner[k] = cands[lo].id;
    --cands[hi].load;
    ++cands[lo].load;
  }
  return out;
}

}  // namespace baton::takeover
