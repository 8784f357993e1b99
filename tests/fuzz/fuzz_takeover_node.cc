// libFuzzer target: the take-over core (takeover::Node) driven by peers that
// hold the cluster key but send anything (a peer with a bug, a stolen key).
// The transport has authenticated the datagrams; what the core does with their
// payloads must keep its promises: Receive() "never crashes" on malformed or
// hostile payloads, and the address actions stay sane.
//
// The input is a script for node 1 of a group {1, 2, 3} with 4 slots and
// capacity 2 (clock starting at 1000 s), a sequence of steps
//   op:u8 delay_us:u16le [arguments]
// that advance the clock by delay_us and then, by op % 8:
//   0-2  Receive(from = op & 8 ? 3 : 2, payload)   len:u16le payload[len]
//        (raw bytes: the wire decoder runs inside Receive)
//   3    Tick(now)          4  Drain(now) / Resume(now)    flag:u8
//   5    Drain / Undrain(slot % 5, now) (4: out of range)  slot:u8 flag:u8
//   6    SetCapacity(c % 7 - 1)  c:u8                      7  Tick(NextTick())
// (the seeds in tests/fuzz/corpus/takeover_node/ are written in this form). Properties checked after every step, besides crashes and
// sanitizer reports (UBSan covers the time and epoch arithmetic):
//   - per slot, adds and removes alternate (no add of an address already
//     added, no remove of one not added);
//   - per slot, each add carries a strictly greater epoch than the last;
//   - the node never holds more slots than its capacity allows, and what
//     GetStatus says it holds is what its actions added.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "takeover/core/node.h"
#include "tests/fuzz/fuzz_util.h"

namespace baton::fuzz {
namespace {

using takeover::Action;
using takeover::Node;
using takeover::Time;

constexpr uint32_t kSlots = 4;

// Reads the script; past the end every read yields zeros / empty.
class Script {
 public:
  Script(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  std::string_view Bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string_view b(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return b;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

std::unique_ptr<Node> MakeNode(Time now) {
  takeover::GroupConfig config;
  config.peers = {{1, 30, 2}, {2, 20, 2}, {3, 10, 2}};
  config.num_slots = kSlots;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(config, 1, now);
  if (!node.ok()) Die("Node::Create: " + node.status().ToString());
  return *std::move(node);
}

}  // namespace
}  // namespace baton::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::fuzz;
  Script in(data, size);
  Time now = std::chrono::seconds(1000);
  std::unique_ptr<Node> node = MakeNode(now);
  std::array<bool, kSlots> added{};
  std::array<uint64_t, kSlots> last_epoch{};
  int capacity = 2;
  for (int step = 0; step < 256 && !in.done(); ++step) {
    const uint8_t op = in.U8();
    now += std::chrono::microseconds(in.U16());
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {
        const baton::takeover::NodeId from = (op & 8) != 0 ? 3 : 2;
        node->Receive(from, in.Bytes(in.U16()), now);
        break;
      }
      case 3:
        node->Tick(now);
        break;
      case 4:
        if (in.U8() % 2 == 0) {
          node->Drain(now);
        } else {
          node->Resume(now);
        }
        break;
      case 5: {
        const uint32_t slot = in.U8() % (kSlots + 1);  // kSlots: out of range
        if (in.U8() % 2 == 0) {
          node->Drain(slot, now);
        } else {
          node->Undrain(slot, now);
        }
        break;
      }
      case 6:
        capacity = in.U8() % 7 - 1;
        node->SetCapacity(capacity, now);
        break;
      default:
        now = std::max(now, node->NextTick());
        node->Tick(now);
        break;
    }
    for (const Action& a : node->TakeActions()) {
      Check(a.slot < kSlots, "an action for a slot that does not exist");
      if (a.kind == Action::Kind::kAddAddress) {
        Check(!added[a.slot], "an address added twice without a remove");
        Check(a.epoch > last_epoch[a.slot], "a slot taken again without a greater epoch");
        added[a.slot] = true;
        last_epoch[a.slot] = a.epoch;
      } else if (a.kind == Action::Kind::kRemoveAddress) {
        Check(added[a.slot], "an address removed that was not added");
        added[a.slot] = false;
      }
    }
    (void)node->TakeMessages();
    (void)node->TakeStateToPersist();
    Node::Status status = node->GetStatus(now);
    int held = 0;
    for (const Node::SlotStatus& s : status.slots) {
      Check(s.slot < kSlots && s.held_by_me == added[s.slot],
            "GetStatus disagrees with the actions about a held slot");
      held += s.held_by_me;
    }
    Check(held <= std::max(capacity, 0), "more slots held than the capacity");
  }
  return 0;
}
