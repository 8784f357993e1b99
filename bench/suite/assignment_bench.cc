// baton-assignment-bench: what the take-over core's per-round work costs as
// the group grows, for the scaling model in bench/README.md.
//
// For each (nodes, slots) pair it times takeover::Assign
// (takeover/core/assignment.h) in three situations every node meets:
//   fresh   no slot held yet (start-up: every slot is free);
//   steady  every slot held by the owner the previous assignment chose (the
//           common case, recomputed on every round);
//   crash   the node holding the most slots has just left the candidates
//           (its slots are re-distributed), with rebalance on;
// and encodes one round's message of the wire format
// (takeover/core/wire.h: one message per peer per round, every slot in it)
// to report its size in bytes: view and membership of `nodes` ids, one slot
// entry per slot, renewal requests on the sender's own slots and grants for
// the receiver's.
// Times are the fastest of --reps timed batches (a batch runs Assign until at
// least 20 ms have passed), in microseconds per call: the computation's cost
// without the preemptions of a shared machine, which only add to it.
//
//   baton-assignment-bench [--nodes 3,16,64] [--slots 6,128,1024] [--reps 5]
//                          [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/lib/json_output.h"
#include "nlohmann/json.hpp"
#include "takeover/core/assignment.h"
#include "takeover/core/wire.h"

namespace baton::takeover {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int> ParseList(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    const char* comma = std::strchr(p, ',');
    if (!comma) break;
    p = comma + 1;
  }
  return out;
}

AssignmentInput MakeInput(int nodes, int slots) {
  AssignmentInput in;
  in.num_slots = static_cast<uint32_t>(slots);
  for (int n = 0; n < nodes; ++n) {
    // Capacity: room for every slot twice over, so nothing is shed.
    in.candidates.push_back({static_cast<NodeId>(n + 1), 100 + n,
                             2 * slots / nodes + 2});
  }
  return in;
}

// Microseconds per Assign(in): the fastest batch.
double TimeAssign(const AssignmentInput& in, int reps, uint32_t* sink) {
  std::vector<double> per_call;
  for (int r = 0; r < reps; ++r) {
    int calls = 0;
    const Clock::time_point start = Clock::now();
    Clock::time_point now = start;
    do {
      Assignment a = Assign(in);
      *sink += a.shed + (a.slot_owner.empty() ? 0 : a.slot_owner.back());
      ++calls;
      if (calls % 16 == 0) now = Clock::now();
    } while (calls % 16 != 0 || now - start < std::chrono::milliseconds(20));
    per_call.push_back(std::chrono::duration<double, std::micro>(now - start).count() /
                       calls);
  }
  return *std::min_element(per_call.begin(), per_call.end());
}

// Average payload of what node 1 sends in a steady round (wire v4,
// docs/takeover.md "Lease traffic"): a full round message to each of the
// nodes - 1 peers (state, a renewal of each slot it holds: every nodes-th,
// four knowledge entries in rotation) and a reply message to each of the
// min(slots, nodes) - 1 other holders (a grant of each of its slots). Epochs
// are small, as in a pool that has run a while (< 128: one varint byte).
size_t MessageBytes(int nodes, int slots) {
  wire::Message round;
  round.incarnation = 1700000000000000000ull;
  round.send_time = round.incarnation + 123456789;
  round.seq = 100000;
  wire::Message reply = round;
  round.full = true;
  for (int n = 0; n < nodes; ++n) {
    round.view.push_back(static_cast<uint32_t>(n + 1));
    round.members.push_back(static_cast<uint32_t>(n + 1));
  }
  round.config_version = 3;
  round.capacity = static_cast<uint32_t>(2 * slots / nodes + 2);
  reply.peer_incarnation = round.incarnation + 7;
  reply.reply_echo = round.send_time - 5000000;
  int knowledge = 0;
  for (int s = 0; s < slots; ++s) {
    wire::SlotEntry e;
    e.slot = static_cast<uint32_t>(s);
    e.epoch = 1 + static_cast<uint64_t>(s % 100);
    if (s % nodes == 0) {  // Node 1 renews its own slots.
      e.holding = true;
      e.request = true;
      e.request_epoch = e.epoch;
      round.slots.push_back(e);
    } else if (knowledge < 4) {
      ++knowledge;
      e.knowledge = true;
      e.holder = static_cast<uint32_t>(s % nodes + 1);
      round.slots.push_back(e);
    }
    if (s % nodes == 1) {  // And answers node 2's renewals.
      wire::SlotEntry r;
      r.slot = e.slot;
      r.reply = true;
      r.granted = true;
      r.reply_epoch = e.epoch;
      reply.slots.push_back(r);
    }
  }
  const size_t rounds = static_cast<size_t>(nodes - 1);
  const size_t replies = static_cast<size_t>(std::min(slots, nodes) - 1);
  return (wire::Encode(round).size() * rounds + wire::Encode(reply).size() * replies) /
         (rounds + replies);
}

int Main(int argc, char** argv) {
  std::vector<int> nodes_list = {3, 16, 64};
  std::vector<int> slots_list = {6, 128, 1024};
  int reps = 5;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_next = i + 1 < argc;
    if (a == "--nodes" && has_next) {
      nodes_list = ParseList(argv[++i]);
    } else if (a == "--slots" && has_next) {
      slots_list = ParseList(argv[++i]);
    } else if (a == "--reps" && has_next) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--json" && has_next) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--nodes 3,16,64] [--slots 6,128,1024] [--reps 5] "
                   "[--json FILE]\n",
                   argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  nlohmann::json cells = nlohmann::json::array();
  uint32_t sink = 0;
  std::printf("%6s %6s %10s %10s %10s %10s %12s\n", "nodes", "slots", "fresh_us",
              "steady_us", "crash_us", "msg_bytes", "round_KiB/node");
  for (int nodes : nodes_list) {
    for (int slots : slots_list) {
      AssignmentInput fresh = MakeInput(nodes, slots);
      const double fresh_us = TimeAssign(fresh, reps, &sink);
      AssignmentInput steady = fresh;
      steady.holders = Assign(fresh).slot_owner;
      const double steady_us = TimeAssign(steady, reps, &sink);
      AssignmentInput crash = steady;
      crash.rebalance = true;
      // Drop the first candidate (it holds as many slots as anyone).
      crash.candidates.erase(crash.candidates.begin());
      const double crash_us =
          crash.candidates.empty() ? 0 : TimeAssign(crash, reps, &sink);
      const size_t bytes = MessageBytes(nodes, slots);
      // Each node sends one round message to each of the other nodes, and
      // a reply to each other holder's renewal (every node holds a slot when
      // slots >= nodes): nodes - 1 + min(slots, nodes) - 1 messages.
      const int msgs = nodes - 1 + std::min(slots, nodes) - 1;
      const double round_kib = static_cast<double>(bytes) * msgs / 1024.0;
      std::printf("%6d %6d %10.2f %10.2f %10.2f %10zu %12.1f\n", nodes, slots, fresh_us,
                  steady_us, crash_us, bytes, round_kib);
      std::fflush(stdout);
      cells.push_back({{"nodes", nodes},
                       {"slots", slots},
                       {"fresh_us", fresh_us},
                       {"steady_us", steady_us},
                       {"crash_us", crash_us},
                       {"message_bytes", bytes},
                       {"messages_per_node_per_round", msgs},
                       {"bytes_per_node_per_round", bytes * static_cast<size_t>(msgs)}});
    }
  }
  std::printf("\nus = microseconds per Assign() call (fastest of %d batches of >= 20 ms); "
              "msg_bytes = average encoded message of a steady round (wire v%d); "
              "round_KiB/node = what one node sends per heartbeat (round messages to every "
              "peer + replies to every other holder).%s\n",
              reps, wire::kVersion, sink == 1 ? " " : "");
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "assignment"}, {"cells", cells}};
    if (!bench::WriteJsonFileOrReport(json_path, j)) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace baton::takeover

int main(int argc, char** argv) { return baton::takeover::Main(argc, argv); }
