// Wire encoding of the take-over protocol: one message per peer per round,
// carrying every slot. Versioned, little-endian, compact; decoding is strict
// and bounds-checked (anything malformed is rejected, never trusted).
// Internal to baton_takeover_core (drivers carry the bytes opaquely).
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
// membership ballots. Only the current version is decoded: a group is
// upgraded as a whole (older peers count newer messages as malformed).
inline constexpr uint8_t kVersion = 3;
// Decoding limits (a message naming more is malformed).
inline constexpr uint32_t kMaxSlots = 1024;
inline constexpr uint32_t kMaxView = 1024;

// Per-slot content of a message. Times are the *sender's* clock (ns) unless
// stated; a receiver never compares them with its own clock.
struct SlotEntry {
  uint32_t slot = 0;
  // Sender's knowledge: the highest epoch it granted or saw claimed, and the
  // node that epoch belongs to (UINT32_MAX = none). If `holding`, the
  // sender's own epoch and id.
  uint32_t holder = UINT32_MAX;
  uint64_t epoch = 0;
  // Sender holds the slot itself (confirmed by a majority), with `epoch`.
  bool holding = false;
  // Sender asks the receiver for a grant (or renewal) under `request_epoch`;
  // the request's time is the message's send_time.
  bool request = false;
  uint64_t request_epoch = 0;
  // Sender gives up the slot: the receiver drops its grant to the sender.
  bool release = false;
  // Sender answers a request of the receiver.
  bool reply = false;
  bool granted = false;
  uint64_t reply_echo = 0;    // send_time of the request answered (receiver's clock).
  uint64_t reply_epoch = 0;   // Granted epoch; on refusal the grantor's highest epoch.
  uint64_t reply_wait_ns = 0; // On refusal: how long the grantor's obstacle lasts.
  // The sender will not campaign for this slot (Node::Drain(slot)).
  bool drained = false;
};

struct Message {
  uint64_t incarnation = 0;  // Sender's clock at its start (identifies a run).
  uint64_t send_time = 0;    // Sender's clock when the message was made.
  uint64_t seq = 0;          // Per-incarnation message counter (staleness).
  // The receiver's incarnation as the sender knows it (0 = unknown). Replies
  // in the message answer requests of that incarnation only.
  uint64_t peer_incarnation = 0;
  bool quiet = false;        // Sender is in its start-up quiet period.
  bool draining = false;     // Sender has drained (never campaigns again).
  std::vector<uint32_t> view;  // Peers the sender hears from (self included).
  // The sender's membership: version, members, and the previous members
  // while a change is under way (empty otherwise).
  uint64_t config_version = 0;
  std::vector<uint32_t> members;
  std::vector<uint32_t> old_members;
  uint32_t capacity = 0;     // Sender's current capacity (pool assignment).
  // Membership change of version (committed + 1), docs/takeover.md "Serial
  // failures": the highest ballot the sender promised, and, while it is
  // joint, the ballot of the change it accepted (its members / old_members).
  // A ballot is (round, proposer id); (0, 0) is none.
  uint64_t promised_round = 0;
  uint32_t promised_node = 0;
  uint64_t accepted_round = 0;
  uint32_t accepted_node = 0;
  std::vector<SlotEntry> slots;
};

std::string Encode(const Message& m);
// nullopt on any malformation: bad magic/version, truncation, trailing bytes,
// counts above the limits, unknown flag bits.
std::optional<Message> Decode(std::string_view bytes);

}  // namespace baton::takeover::wire

#endif  // BATON_TAKEOVER_CORE_WIRE_H_
