// Wire encoding of the take-over protocol. Versioned, compact (varints,
// run-length sets, one reply echo per message); decoding is strict and
// bounds-checked (anything malformed or non-canonical is rejected, never
// trusted): every message has exactly one encoding.
// Internal to baton_takeover_core (drivers carry the bytes opaquely).
//
// What a message carries (docs/takeover.md "Messages" and "Lease traffic"):
// not every slot, only the slots it has something to say about: the sender's
// renewal requests and holdings, releases, replies to the receiver's
// requests, and knowledge entries (the sender's highest epoch per slot) for
// slots whose knowledge changed lately plus a rotating window of the others.
// A "full" message also carries the sender's state (view, membership,
// capacity, ballots, drained slots) and names *every* slot the sender holds,
// so that a slot it does not name there is one it does not hold.
#ifndef BATON_TAKEOVER_CORE_WIRE_H_
#define BATON_TAKEOVER_CORE_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace baton::takeover::wire {

inline constexpr uint8_t kMagic0 = 'B';
inline constexpr uint8_t kMagic1 = 'T';
// Version 2 (pool): adds the sender's capacity and the per-slot drained flag.
// Version 3 (membership ballots): adds the sender's promised and accepted
// membership ballots.
// Version 4 (lease traffic): only the slots the sender has news about,
// varints, run-length sets, one reply echo per message, state only in full
// messages. Only the current version is decoded: a group is upgraded as a
// whole (older peers count newer messages as malformed).
inline constexpr uint8_t kVersion = 4;
// Decoding limits (a message naming more is malformed). Slot numbers are
// below kMaxSlots.
inline constexpr uint32_t kMaxSlots = 1024;
inline constexpr uint32_t kMaxView = 1024;

// What the sender says about one slot. Times are the *sender's* clock (ns)
// unless stated; a receiver never compares them with its own clock.
struct SlotEntry {
  uint32_t slot = 0;
  // Sender holds the slot itself (confirmed by a majority), with `epoch`.
  bool holding = false;
  // Knowledge (not holding): the highest epoch the sender granted or saw
  // claimed is `epoch`, and it belongs to `holder` (UINT32_MAX = none).
  bool knowledge = false;
  uint32_t holder = UINT32_MAX;  // Only with `knowledge`.
  uint64_t epoch = 0;            // With `holding` or `knowledge`.
  // Sender asks the receiver for a grant (or renewal) under `request_epoch`;
  // the request's time is the message's send_time.
  bool request = false;
  uint64_t request_epoch = 0;
  // Sender gives up the slot: the receiver drops its grant to the sender.
  bool release = false;
  // Sender answers a request of the receiver (the request's send_time is the
  // message's reply_echo).
  bool reply = false;
  bool granted = false;
  uint64_t reply_epoch = 0;   // Granted epoch; on refusal the grantor's highest epoch.
  uint64_t reply_wait_ns = 0; // On refusal: how long the grantor's obstacle lasts.
};

struct Message {
  uint64_t incarnation = 0;  // Sender's clock at its start (identifies a run).
  uint64_t send_time = 0;    // Sender's clock when the message was made.
  uint64_t seq = 0;          // Per-incarnation message counter (staleness).
  bool quiet = false;        // Sender is in its start-up quiet period.
  bool draining = false;     // Sender has drained (never campaigns again).
  // Full message: carries the state below, and `slots` names every slot the
  // sender holds. Otherwise (a message made only to answer requests) the
  // state fields are not sent (decoded as defaults).
  bool full = false;
  std::vector<uint32_t> view;  // Peers the sender hears from (self included).
  // The sender's membership: version, members, and the previous members
  // while a change is under way (empty otherwise).
  uint64_t config_version = 0;
  std::vector<uint32_t> members;
  std::vector<uint32_t> old_members;
  uint32_t capacity = 0;     // Sender's current capacity (pool assignment).
  // Membership change of version (committed + 1), docs/takeover.md "Serial
  // failures": the highest ballot the sender promised, and, while it is
  // joint, the ballot of the change it accepted (its members / old_members;
  // sent only while old_members is non-empty).
  // A ballot is (round, proposer id); (0, 0) is none.
  uint64_t promised_round = 0;
  uint32_t promised_node = 0;
  uint64_t accepted_round = 0;
  uint32_t accepted_node = 0;
  // Slots the sender will not campaign for (Node::Drain(slot)), all of them.
  std::vector<uint32_t> drained;
  std::vector<SlotEntry> slots;  // At most one entry per slot.
  // Sent only if some entry is a reply: the receiver's incarnation as the
  // sender knows it (replies answer requests of that incarnation only) and
  // the send_time of the request message answered (receiver's clock).
  uint64_t peer_incarnation = 0;
  uint64_t reply_echo = 0;
};

// Sets (view, members, drained) are encoded sorted and deduplicated; slot
// entries sorted by slot within their kind.
std::string Encode(const Message& m);
// nullopt on any malformation: bad magic/version, truncation, trailing bytes,
// counts or slots above the limits, unknown flag bits, overlong varints,
// duplicate slots, and any form the encoder would not produce.
std::optional<Message> Decode(std::string_view bytes);

}  // namespace baton::takeover::wire

#endif  // BATON_TAKEOVER_CORE_WIRE_H_
