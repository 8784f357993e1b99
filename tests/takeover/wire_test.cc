// Encoding of take-over messages: round trip, and strict rejection of
// malformed input (random bytes, truncations, flips), never a crash.
#include "takeover/core/wire.h"

#include <random>

#include "gtest/gtest.h"
#include "takeover/core/node.h"

namespace baton::takeover::wire {
namespace {

Message Sample() {
  Message m;
  m.incarnation = 77;
  m.send_time = 123456789;
  m.peer_incarnation = 99;
  m.quiet = true;
  m.full = true;
  m.view = {1, 2, 5};
  m.config_version = 3;
  m.members = {1, 2};
  m.old_members = {1, 2, 5};
  m.capacity = 16;
  m.promised_round = 7;
  m.promised_node = 5;
  m.accepted_round = 6;
  m.accepted_node = 2;
  SlotEntry a;
  a.slot = 0;
  a.holder = 2;
  a.epoch = 9;
  a.holding = true;
  a.request = true;
  a.request_epoch = 9;
  SlotEntry b;
  b.slot = 1;
  b.reply = true;
  b.granted = false;
  b.reply_epoch = 8;
  b.reply_wait_ns = 1000;
  b.release = true;
  SlotEntry c;
  c.slot = 1000;
  c.knowledge = true;
  c.holder = 3;
  c.epoch = 300;
  SlotEntry d;
  d.slot = 7;
  d.reply = true;
  d.granted = true;
  d.reply_epoch = 4;
  m.reply_echo = 42;
  m.drained = {1, 2, 3, 900};
  m.slots = {a, b, c, d};
  return m;
}

TEST(TakeoverWire, RoundTrip) {
  const Message m = Sample();
  std::optional<Message> d = Decode(Encode(m));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->incarnation, 77u);
  EXPECT_EQ(d->send_time, 123456789u);
  EXPECT_EQ(d->peer_incarnation, 99u);
  EXPECT_TRUE(d->quiet);
  EXPECT_FALSE(d->draining);
  EXPECT_EQ(d->view, (std::vector<uint32_t>{1, 2, 5}));
  EXPECT_EQ(d->config_version, 3u);
  EXPECT_EQ(d->members, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(d->old_members, (std::vector<uint32_t>{1, 2, 5}));
  EXPECT_EQ(d->capacity, 16u);
  EXPECT_EQ(d->promised_round, 7u);
  EXPECT_EQ(d->promised_node, 5u);
  EXPECT_EQ(d->accepted_round, 6u);
  EXPECT_EQ(d->accepted_node, 2u);
  EXPECT_TRUE(d->full);
  EXPECT_EQ(d->drained, (std::vector<uint32_t>{1, 2, 3, 900}));
  EXPECT_EQ(d->reply_echo, 42u);
  // Renewals first, then grants, then the others by slot.
  ASSERT_EQ(d->slots.size(), 4u);
  EXPECT_EQ(d->slots[0].slot, 0u);
  EXPECT_TRUE(d->slots[0].holding);
  EXPECT_TRUE(d->slots[0].request);
  EXPECT_EQ(d->slots[0].epoch, 9u);
  EXPECT_EQ(d->slots[0].request_epoch, 9u);
  EXPECT_FALSE(d->slots[0].release);
  EXPECT_EQ(d->slots[1].slot, 7u);
  EXPECT_TRUE(d->slots[1].reply);
  EXPECT_TRUE(d->slots[1].granted);
  EXPECT_EQ(d->slots[1].reply_epoch, 4u);
  EXPECT_EQ(d->slots[2].slot, 1u);
  EXPECT_TRUE(d->slots[2].reply);
  EXPECT_FALSE(d->slots[2].granted);
  EXPECT_TRUE(d->slots[2].release);
  EXPECT_FALSE(d->slots[2].holding);
  EXPECT_EQ(d->slots[2].reply_epoch, 8u);
  EXPECT_EQ(d->slots[2].reply_wait_ns, 1000u);
  EXPECT_EQ(d->slots[3].slot, 1000u);
  EXPECT_TRUE(d->slots[3].knowledge);
  EXPECT_EQ(d->slots[3].holder, 3u);
  EXPECT_EQ(d->slots[3].epoch, 300u);
  EXPECT_EQ(Encode(*d), Encode(m));  // One encoding per message.
}

// A message made only to answer requests carries no state: decoded as the
// defaults, whatever the encoder was given.
TEST(TakeoverWire, StateOnlyInFullMessages) {
  Message m = Sample();
  m.full = false;
  std::optional<Message> d = Decode(Encode(m));
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->full);
  EXPECT_TRUE(d->view.empty());
  EXPECT_TRUE(d->members.empty());
  EXPECT_EQ(d->capacity, 0u);
  EXPECT_TRUE(d->drained.empty());
  EXPECT_EQ(d->slots.size(), 4u);
  EXPECT_LT(Encode(m).size(), Encode(Sample()).size());
}

// Every message has exactly one encoding: forms the encoder never writes are
// malformed (the fuzzer checks Decode → Encode gives the same bytes).
TEST(TakeoverWire, NonCanonicalFormsAreRejected) {
  Message base;
  base.seq = 1;
  const std::string good = Encode(base);
  ASSERT_TRUE(Decode(good).has_value());
  // Header is 20 bytes; seq (a varint) at 20, then the three section counts.
  ASSERT_EQ(good.size(), 24u);
  std::string s = good;
  s.replace(20, 1, "\x81\x00");  // seq 1 in two bytes: overlong.
  EXPECT_FALSE(Decode(s).has_value());
  // A general entry (third section) shaped as a renewal.
  s = good.substr(0, 23) + std::string("\x01\x05\x05\x02\x02", 5);  // slot 5 holding|request
  EXPECT_FALSE(Decode(s).has_value());
  s = good.substr(0, 23) + std::string("\x01\x05\x01\x02", 4);  // slot 5 holding, epoch 2
  EXPECT_TRUE(Decode(s).has_value());
  // The same slot twice (in two sections).
  s = good.substr(0, 21) + std::string("\x01\x05\x02\x00\x01\x05\x01\x02", 8);
  EXPECT_FALSE(Decode(s).has_value());
  // A slot beyond the limit.
  s = good.substr(0, 21) + std::string("\x01\x80\x08\x02\x00\x00", 6);  // slot 1024
  EXPECT_FALSE(Decode(s).has_value());
  s = good.substr(0, 21) + std::string("\x01\xff\x07\x02\x00\x00", 6);  // slot 1023
  EXPECT_TRUE(Decode(s).has_value());
  // An empty general entry, and a reply without the trailing echo.
  s = good.substr(0, 23) + std::string("\x01\x05\x00", 3);
  EXPECT_FALSE(Decode(s).has_value());
  s = good.substr(0, 22) + std::string("\x01\x05\x03\x00", 4);  // grant of slot 5
  EXPECT_FALSE(Decode(s).has_value());
  EXPECT_TRUE(Decode(s + std::string(16, '\0')).has_value());
  // A set whose runs touch (two runs where one would do).
  Message full;
  full.full = true;
  full.view = {1, 2, 3};
  s = Encode(full);
  ASSERT_EQ(s.substr(21, 3), std::string("\x01\x01\x02", 3));
  s.replace(21, 3, std::string("\x02\x01\x00\x00\x01", 5));  // {1}, {2, 3}
  EXPECT_FALSE(Decode(s).has_value());
  s.replace(21, 5, std::string("\x02\x01\x00\x01\x01", 5));  // {1}, {3, 4}
  ASSERT_TRUE(Decode(s).has_value());
  EXPECT_EQ(Decode(s)->view, (std::vector<uint32_t>{1, 3, 4}));
}

TEST(TakeoverWire, EveryTruncationAndTrailingByteIsRejected) {
  const std::string good = Encode(Sample());
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_FALSE(Decode(good.substr(0, len)).has_value()) << "length " << len;
  }
  EXPECT_FALSE(Decode(good + '\0').has_value());
}

TEST(TakeoverWire, WrongMagicVersionOrFlagsIsRejected) {
  std::string s = Encode(Sample());
  s[0] = 'X';
  EXPECT_FALSE(Decode(s).has_value());
  s = Encode(Sample());
  s[2] = static_cast<char>(kVersion + 1);
  EXPECT_FALSE(Decode(s).has_value());
  s[2] = static_cast<char>(kVersion - 1);  // A v2 peer: no membership ballots.
  EXPECT_FALSE(Decode(s).has_value());
  s = Encode(Sample());
  s[3] = static_cast<char>(0x80);  // Unknown message flag.
  EXPECT_FALSE(Decode(s).has_value());
  s = Encode(Sample());
  s[2] = static_cast<char>(3);  // A v3 peer: every slot in every message.
  EXPECT_FALSE(Decode(s).has_value());
}

TEST(TakeoverWire, HugeCountsAreRejectedWithoutAllocating) {
  std::string s = Encode(Message{});
  // The first section's count is at offset 21 (after magic, version, flags,
  // two u64 and a one-byte seq).
  EXPECT_FALSE(Decode(s.substr(0, 21) + "\xff\xff\xff\x7f" + s.substr(22)).has_value());
  Message full;
  full.full = true;
  s = Encode(full);  // The view's run count is at 21 too.
  EXPECT_FALSE(Decode(s.substr(0, 21) + "\xff\xff\xff\x7f" + s.substr(22)).has_value());
}

// Fuzz-like: random bytes and random mutations of a valid message never
// crash the decoder, and a Node fed them counts them as malformed.
TEST(TakeoverWire, RandomBytesNeverCrashAndAreCounted) {
  std::mt19937_64 g(20261126);
  GroupConfig group;
  group.peers = {{1, 1, 1}, {2, 2, 1}, {3, 3, 1}};
  auto node = Node::Create(group, 1, Time(0));
  ASSERT_TRUE(node.ok());
  const std::string good = Encode(Sample());
  int accepted = 0;
  uint64_t fed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    if (i % 2 == 0) {
      s.resize(g() % 200);
      for (char& c : s) c = static_cast<char>(g());
    } else {
      s = good;
      const int flips = 1 + static_cast<int>(g() % 4);
      for (int f = 0; f < flips; ++f) s[g() % s.size()] = static_cast<char>(g());
    }
    if (Decode(s).has_value()) ++accepted;
    if (i % 10 == 0) {
      (*node)->Receive(2, s, Time(i));
      ++fed;
    }
  }
  const Node::Status st = (*node)->GetStatus(Time(20000));
  // Mutated messages that still decode are either fresh (accepted) or stale.
  EXPECT_GT(st.malformed_messages, fed / 2);
  EXPECT_LE(st.malformed_messages + st.stale_messages, fed);
  EXPECT_LT(accepted, 20000);
}

TEST(TakeoverWire, MessageFromUnknownPeerIsMalformed) {
  GroupConfig group;
  group.peers = {{1, 1, 1}, {2, 2, 1}};
  auto node = Node::Create(group, 1, Time(0));
  ASSERT_TRUE(node.ok());
  (*node)->Receive(7, Encode(Sample()), Time(1));
  (*node)->Receive(1, Encode(Sample()), Time(2));  // Claims to be ourselves.
  EXPECT_EQ((*node)->GetStatus(Time(3)).malformed_messages, 2u);
}

}  // namespace
}  // namespace baton::takeover::wire
