#include "takeover/core/wire.h"

#include <algorithm>
#include <bitset>

namespace baton::takeover::wire {
namespace {

// Flag bits. Unknown bits make a message malformed, so a future version that
// needs new meaning must bump kVersion.
constexpr uint8_t kMsgQuiet = 1 << 0;
constexpr uint8_t kMsgDraining = 1 << 1;
constexpr uint8_t kMsgFull = 1 << 2;
constexpr uint8_t kMsgKnownFlags = kMsgQuiet | kMsgDraining | kMsgFull;

// Flags of a general slot entry (the third section).
constexpr uint8_t kSlotHolding = 1 << 0;
constexpr uint8_t kSlotKnowledge = 1 << 1;
constexpr uint8_t kSlotRequest = 1 << 2;
constexpr uint8_t kSlotRelease = 1 << 3;
constexpr uint8_t kSlotReply = 1 << 4;
constexpr uint8_t kSlotGranted = 1 << 5;
constexpr uint8_t kSlotWait = 1 << 6;
constexpr uint8_t kSlotKnownFlags = kSlotHolding | kSlotKnowledge | kSlotRequest | kSlotRelease |
                                    kSlotReply | kSlotGranted | kSlotWait;

void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) PutU8(out, static_cast<uint8_t>(v >> (8 * i)));
}
// LEB128: 7 bits per byte, low first.
void PutVar(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    PutU8(out, static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  PutU8(out, static_cast<uint8_t>(v));
}

// A set of ids as runs of consecutive values: run count, then per run the
// gap from the end of the previous run (the first run: its start) and its
// length − 1. Consecutive ids (the usual view and membership) cost 3 bytes.
void PutSet(std::string& out, std::vector<uint32_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // (start, length)
  for (uint32_t id : ids) {
    if (!runs.empty() && runs.back().first + runs.back().second == id) {
      ++runs.back().second;
    } else {
      runs.push_back({id, 1});
    }
  }
  PutVar(out, runs.size());
  uint64_t end = 0;  // One past the previous run.
  for (const auto& [start, length] : runs) {
    PutVar(out, start - end);
    PutVar(out, length - 1);
    end = start + length;
  }
}

bool IsRenewal(const SlotEntry& s) {
  return s.holding && !s.knowledge && s.request && s.request_epoch == s.epoch && !s.release &&
         !s.reply;
}
bool IsGrant(const SlotEntry& s) {
  return s.reply && s.granted && s.reply_wait_ns == 0 && !s.holding && !s.knowledge &&
         !s.request && !s.release;
}

// Bounds-checked reader; any read past the end or non-canonical varint sets
// !ok.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == b_.size(); }
  void Fail() { ok_ = false; }
  uint8_t U8() {
    if (!ok_ || pos_ >= b_.size()) {
      ok_ = false;
      return 0;
    }
    return static_cast<uint8_t>(b_[pos_++]);
  }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(U8()) << (8 * i);
    return ok_ ? v : 0;
  }
  // Canonical LEB128 of at most `max`.
  uint64_t Var(uint64_t max = UINT64_MAX) {
    uint64_t v = 0;
    for (int shift = 0; ok_; shift += 7) {
      const uint8_t byte = U8();
      if (!ok_) break;
      if (shift == 63 && byte > 1) break;  // Beyond 64 bits.
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0) break;  // Overlong.
        if (v > max) break;
        return v;
      }
    }
    ok_ = false;
    return 0;
  }
  // A set written by PutSet, with at most `max_count` ids, each below `limit`.
  std::vector<uint32_t> Set(uint64_t max_count, uint64_t limit) {
    std::vector<uint32_t> ids;
    const uint64_t runs = Var(max_count);
    uint64_t end = 0;
    for (uint64_t r = 0; r < runs && ok_; ++r) {
      const uint64_t gap = Var(limit);
      const uint64_t length = Var(max_count - 1) + 1;
      // Runs are maximal: a later run starts after a gap of at least one.
      if (!ok_ || (r > 0 && gap == 0) || end + gap + length > limit ||
          ids.size() + length > max_count) {
        ok_ = false;
        break;
      }
      const uint64_t start = end + gap;
      for (uint64_t i = 0; i < length; ++i) ids.push_back(static_cast<uint32_t>(start + i));
      end = start + length;
    }
    return ok_ ? ids : std::vector<uint32_t>{};
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

constexpr uint64_t kIdLimit = uint64_t{1} << 32;  // Ids are uint32.

}  // namespace

// Layout (u64 little-endian, var = LEB128, set = PutSet):
//   'B' 'T' version:u8 flags:u8 incarnation:u64 send_time:u64 seq:var
//   [full] view:set config_version:var members:set old_members:set
//          capacity:var promised_round:var promised_node:var
//          [old_members non-empty] accepted_round:var accepted_node:var
//          drained:set
//   renewals: count:var × { slot_gap:var epoch:var }
//       (holding, requesting a renewal of the held epoch, nothing else)
//   grants:   count:var × { slot_gap:var epoch:var }
//       (a granting reply, nothing else)
//   others:   count:var × { slot_gap:var flags:u8
//       [holding|knowledge] epoch:var  [knowledge] holder+1 (mod 2^32):var
//       [request] request_epoch:var  [reply] reply_epoch:var
//       [wait] reply_wait_ns:var }
//   [some entry is a reply] peer_incarnation:u64 reply_echo:u64
// slot_gap: the slot minus one past the previous slot of the same section
// (the first: the slot itself). An entry of the third section never has the
// shape of the first two.
std::string Encode(const Message& m) {
  std::string out;
  out.reserve(64 + 4 * m.slots.size());
  PutU8(out, kMagic0);
  PutU8(out, kMagic1);
  PutU8(out, kVersion);
  PutU8(out, static_cast<uint8_t>((m.quiet ? kMsgQuiet : 0) | (m.draining ? kMsgDraining : 0) |
                                  (m.full ? kMsgFull : 0)));
  PutU64(out, m.incarnation);
  PutU64(out, m.send_time);
  PutVar(out, m.seq);
  if (m.full) {
    PutSet(out, m.view);
    PutVar(out, m.config_version);
    PutSet(out, m.members);
    PutSet(out, m.old_members);
    PutVar(out, m.capacity);
    PutVar(out, m.promised_round);
    PutVar(out, m.promised_node);
    if (!m.old_members.empty()) {
      PutVar(out, m.accepted_round);
      PutVar(out, m.accepted_node);
    }
    PutSet(out, m.drained);
  }
  std::vector<const SlotEntry*> sections[3];
  bool any_reply = false;
  for (const SlotEntry& s : m.slots) {
    sections[IsRenewal(s) ? 0 : IsGrant(s) ? 1 : 2].push_back(&s);
    any_reply = any_reply || s.reply;
  }
  for (int k = 0; k < 3; ++k) {
    std::vector<const SlotEntry*>& list = sections[k];
    std::sort(list.begin(), list.end(),
              [](const SlotEntry* a, const SlotEntry* b) { return a->slot < b->slot; });
    PutVar(out, list.size());
    uint64_t next = 0;  // One past the previous slot.
    for (const SlotEntry* s : list) {
      PutVar(out, s->slot - next);
      next = uint64_t{s->slot} + 1;
      if (k == 0) {
        PutVar(out, s->epoch);
        continue;
      }
      if (k == 1) {
        PutVar(out, s->reply_epoch);
        continue;
      }
      const bool knowledge = s->knowledge && !s->holding;
      const bool wait = s->reply && !s->granted && s->reply_wait_ns > 0;
      PutU8(out, static_cast<uint8_t>((s->holding ? kSlotHolding : 0) |
                                      (knowledge ? kSlotKnowledge : 0) |
                                      (s->request ? kSlotRequest : 0) |
                                      (s->release ? kSlotRelease : 0) |
                                      (s->reply ? kSlotReply : 0) |
                                      (s->reply && s->granted ? kSlotGranted : 0) |
                                      (wait ? kSlotWait : 0)));
      if (s->holding || knowledge) PutVar(out, s->epoch);
      if (knowledge) PutVar(out, (uint64_t{s->holder} + 1) & 0xffffffffu);
      if (s->request) PutVar(out, s->request_epoch);
      if (s->reply) PutVar(out, s->reply_epoch);
      if (wait) PutVar(out, s->reply_wait_ns);
    }
  }
  if (any_reply) {
    PutU64(out, m.peer_incarnation);
    PutU64(out, m.reply_echo);
  }
  return out;
}

std::optional<Message> Decode(std::string_view bytes) {
  Reader r(bytes);
  if (r.U8() != kMagic0 || r.U8() != kMagic1 || r.U8() != kVersion) {
    return std::nullopt;
  }
  Message m;
  const uint8_t flags = r.U8();
  if ((flags & ~kMsgKnownFlags) != 0) return std::nullopt;
  m.quiet = (flags & kMsgQuiet) != 0;
  m.draining = (flags & kMsgDraining) != 0;
  m.full = (flags & kMsgFull) != 0;
  m.incarnation = r.U64();
  m.send_time = r.U64();
  m.seq = r.Var();
  if (m.full) {
    m.view = r.Set(kMaxView, kIdLimit);
    m.config_version = r.Var();
    m.members = r.Set(kMaxView, kIdLimit);
    m.old_members = r.Set(kMaxView, kIdLimit);
    m.capacity = static_cast<uint32_t>(r.Var(UINT32_MAX));
    m.promised_round = r.Var();
    m.promised_node = static_cast<uint32_t>(r.Var(UINT32_MAX));
    if (!m.old_members.empty()) {
      m.accepted_round = r.Var();
      m.accepted_node = static_cast<uint32_t>(r.Var(UINT32_MAX));
    }
    m.drained = r.Set(kMaxSlots, kMaxSlots);
  }
  std::bitset<kMaxSlots> seen;
  bool any_reply = false;
  for (int k = 0; k < 3 && r.ok(); ++k) {
    const uint64_t count = r.Var(kMaxSlots);
    if (!r.ok() || m.slots.size() + count > kMaxSlots) return std::nullopt;
    uint64_t next = 0;
    for (uint64_t i = 0; i < count && r.ok(); ++i) {
      const uint64_t slot = next + r.Var(kMaxSlots);
      if (!r.ok() || slot >= kMaxSlots || seen[slot]) return std::nullopt;
      seen[slot] = true;
      next = slot + 1;
      SlotEntry s;
      s.slot = static_cast<uint32_t>(slot);
      if (k == 0) {
        s.holding = true;
        s.request = true;
        s.epoch = s.request_epoch = r.Var();
      } else if (k == 1) {
        s.reply = true;
        s.granted = true;
        s.reply_epoch = r.Var();
      } else {
        const uint8_t sf = r.U8();
        if ((sf & ~kSlotKnownFlags) != 0 || sf == 0) return std::nullopt;
        s.holding = (sf & kSlotHolding) != 0;
        s.knowledge = (sf & kSlotKnowledge) != 0;
        s.request = (sf & kSlotRequest) != 0;
        s.release = (sf & kSlotRelease) != 0;
        s.reply = (sf & kSlotReply) != 0;
        s.granted = (sf & kSlotGranted) != 0;
        const bool wait = (sf & kSlotWait) != 0;
        if ((s.holding && s.knowledge) || ((s.granted || wait) && !s.reply) ||
            (wait && s.granted)) {
          return std::nullopt;
        }
        if (s.holding || s.knowledge) s.epoch = r.Var();
        if (s.knowledge) {
          const uint64_t h = r.Var(UINT32_MAX);
          s.holder = h == 0 ? UINT32_MAX : static_cast<uint32_t>(h - 1);
        }
        if (s.request) s.request_epoch = r.Var();
        if (s.reply) s.reply_epoch = r.Var();
        if (wait) {
          s.reply_wait_ns = r.Var();
          if (s.reply_wait_ns == 0) return std::nullopt;
        }
        if (IsRenewal(s) || IsGrant(s)) return std::nullopt;  // Not canonical.
      }
      any_reply = any_reply || s.reply;
      m.slots.push_back(s);
    }
  }
  if (any_reply) {
    m.peer_incarnation = r.U64();
    m.reply_echo = r.U64();
  }
  if (!r.ok() || !r.done()) return std::nullopt;
  return m;
}

}  // namespace baton::takeover::wire
