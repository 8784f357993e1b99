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
  b.reply_echo = 42;
  b.reply_epoch = 8;
  b.reply_wait_ns = 1000;
  b.release = true;
  b.drained = true;
  m.slots = {a, b};
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
  ASSERT_EQ(d->slots.size(), 2u);
  EXPECT_FALSE(d->slots[0].drained);
  EXPECT_TRUE(d->slots[1].drained);
  EXPECT_TRUE(d->slots[0].holding);
  EXPECT_TRUE(d->slots[0].request);
  EXPECT_EQ(d->slots[0].request_epoch, 9u);
  EXPECT_EQ(d->slots[0].holder, 2u);
  EXPECT_TRUE(d->slots[1].reply);
  EXPECT_FALSE(d->slots[1].granted);
  EXPECT_TRUE(d->slots[1].release);
  EXPECT_EQ(d->slots[1].reply_echo, 42u);
  EXPECT_EQ(d->slots[1].reply_epoch, 8u);
  EXPECT_EQ(d->slots[1].reply_wait_ns, 1000u);
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
}

TEST(TakeoverWire, HugeCountsAreRejectedWithoutAllocating) {
  std::string s = Encode(Message{});
  // view_count is at offset 36 (after magic, version, flags, four u64).
  s[36] = static_cast<char>(0xff);
  s[37] = static_cast<char>(0xff);
  EXPECT_FALSE(Decode(s).has_value());
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
