#include "takeover/core/wire.h"

#include <cstring>

namespace baton::takeover::wire {
namespace {

// Flag bits. Unknown bits make a message malformed, so a future version that
// needs new meaning must bump kVersion.
constexpr uint8_t kMsgQuiet = 1 << 0;
constexpr uint8_t kMsgDraining = 1 << 1;
constexpr uint8_t kMsgKnownFlags = kMsgQuiet | kMsgDraining;

constexpr uint8_t kSlotHolding = 1 << 0;
constexpr uint8_t kSlotRequest = 1 << 1;
constexpr uint8_t kSlotRelease = 1 << 2;
constexpr uint8_t kSlotReply = 1 << 3;
constexpr uint8_t kSlotGranted = 1 << 4;
constexpr uint8_t kSlotDrained = 1 << 5;
constexpr uint8_t kSlotKnownFlags =
    kSlotHolding | kSlotRequest | kSlotRelease | kSlotReply | kSlotGranted | kSlotDrained;

void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void PutU16(std::string& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) PutU8(out, static_cast<uint8_t>(v >> (8 * i)));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) PutU8(out, static_cast<uint8_t>(v >> (8 * i)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) PutU8(out, static_cast<uint8_t>(v >> (8 * i)));
}

// Bounds-checked little-endian reader; any read past the end sets !ok.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == b_.size(); }
  uint64_t Get(int bytes) {
    if (!ok_ || b_.size() - pos_ < static_cast<size_t>(bytes)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[pos_ + i])) << (8 * i);
    }
    pos_ += bytes;
    return v;
  }
  uint8_t U8() { return static_cast<uint8_t>(Get(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Get(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Get(4)); }
  uint64_t U64() { return Get(8); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

// Layout (little-endian):
//   'B' 'T' version:u8 flags:u8 incarnation:u64 send_time:u64 seq:u64 peer_inc:u64
//   view_count:u16 view_count × id:u32
//   config_version:u64 members_count:u16 × id:u32 old_count:u16 × id:u32
//   capacity:u32
//   promised_round:u64 promised_node:u32 accepted_round:u64 accepted_node:u32
//   slot_count:u16 slot_count × {
//     slot:u32 flags:u8 holder:u32 epoch:u64
//     [request] request_epoch:u64
//     [reply]   reply_echo:u64 reply_epoch:u64 reply_wait_ns:u64 }
std::string Encode(const Message& m) {
  std::string out;
  out.reserve(72 + 4 * m.view.size() + 40 * m.slots.size());
  PutU8(out, kMagic0);
  PutU8(out, kMagic1);
  PutU8(out, kVersion);
  PutU8(out, static_cast<uint8_t>((m.quiet ? kMsgQuiet : 0) |
                                  (m.draining ? kMsgDraining : 0)));
  PutU64(out, m.incarnation);
  PutU64(out, m.send_time);
  PutU64(out, m.seq);
  PutU64(out, m.peer_incarnation);
  PutU16(out, static_cast<uint16_t>(m.view.size()));
  for (uint32_t id : m.view) PutU32(out, id);
  PutU64(out, m.config_version);
  PutU16(out, static_cast<uint16_t>(m.members.size()));
  for (uint32_t id : m.members) PutU32(out, id);
  PutU16(out, static_cast<uint16_t>(m.old_members.size()));
  for (uint32_t id : m.old_members) PutU32(out, id);
  PutU32(out, m.capacity);
  PutU64(out, m.promised_round);
  PutU32(out, m.promised_node);
  PutU64(out, m.accepted_round);
  PutU32(out, m.accepted_node);
  PutU16(out, static_cast<uint16_t>(m.slots.size()));
  for (const SlotEntry& s : m.slots) {
    uint8_t flags = (s.holding ? kSlotHolding : 0) |
                    (s.request ? kSlotRequest : 0) |
                    (s.release ? kSlotRelease : 0) |
                    (s.reply ? kSlotReply : 0) |
                    (s.reply && s.granted ? kSlotGranted : 0) |
                    (s.drained ? kSlotDrained : 0);
    PutU32(out, s.slot);
    PutU8(out, flags);
    PutU32(out, s.holder);
    PutU64(out, s.epoch);
    if (s.request) PutU64(out, s.request_epoch);
    if (s.reply) {
      PutU64(out, s.reply_echo);
      PutU64(out, s.reply_epoch);
      PutU64(out, s.reply_wait_ns);
    }
  }
  return out;
}

std::optional<Message> Decode(std::string_view bytes) {
  Reader r(bytes);
  if (r.U8() != kMagic0 || r.U8() != kMagic1 || r.U8() != kVersion) {
    return std::nullopt;
  }
  Message m;
  uint8_t flags = r.U8();
  if ((flags & ~kMsgKnownFlags) != 0) return std::nullopt;
  m.quiet = (flags & kMsgQuiet) != 0;
  m.draining = (flags & kMsgDraining) != 0;
  m.incarnation = r.U64();
  m.send_time = r.U64();
  m.seq = r.U64();
  m.peer_incarnation = r.U64();
  uint16_t view_count = r.U16();
  if (!r.ok() || view_count > kMaxView) return std::nullopt;
  m.view.reserve(view_count);
  for (uint16_t i = 0; i < view_count && r.ok(); ++i) m.view.push_back(r.U32());
  m.config_version = r.U64();
  for (std::vector<uint32_t>* list : {&m.members, &m.old_members}) {
    const uint16_t count = r.U16();
    if (!r.ok() || count > kMaxView) return std::nullopt;
    list->reserve(count);
    for (uint16_t i = 0; i < count && r.ok(); ++i) list->push_back(r.U32());
  }
  m.capacity = r.U32();
  m.promised_round = r.U64();
  m.promised_node = r.U32();
  m.accepted_round = r.U64();
  m.accepted_node = r.U32();
  uint16_t slot_count = r.U16();
  if (!r.ok() || slot_count > kMaxSlots) return std::nullopt;
  m.slots.reserve(slot_count);
  for (uint16_t i = 0; i < slot_count && r.ok(); ++i) {
    SlotEntry s;
    s.slot = r.U32();
    uint8_t sf = r.U8();
    if ((sf & ~kSlotKnownFlags) != 0) return std::nullopt;
    s.holding = (sf & kSlotHolding) != 0;
    s.request = (sf & kSlotRequest) != 0;
    s.release = (sf & kSlotRelease) != 0;
    s.reply = (sf & kSlotReply) != 0;
    s.granted = (sf & kSlotGranted) != 0;
    s.drained = (sf & kSlotDrained) != 0;
    if (s.granted && !s.reply) return std::nullopt;
    s.holder = r.U32();
    s.epoch = r.U64();
    if (s.request) s.request_epoch = r.U64();
    if (s.reply) {
      s.reply_echo = r.U64();
      s.reply_epoch = r.U64();
      s.reply_wait_ns = r.U64();
    }
    m.slots.push_back(s);
  }
  if (!r.ok() || !r.done()) return std::nullopt;
  return m;
}

}  // namespace baton::takeover::wire
