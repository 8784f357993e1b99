// baton-takeoverd's state file: what the core asks to persist comes back unchanged after a
// restart, and a damaged file is reported (kDataLoss), never silently taken as "no state" --
// a node that forgot a membership change could help a stale majority form. No root needed.
#include "takeover/daemon/state_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

PersistentState Sample() {
  PersistentState s;
  s.membership.version = 3;
  s.membership.members = {1, 2, 5};
  s.membership.old_members = {1, 2, 4, 5};
  s.epochs = {17, 0, 4294967296ULL};
  s.epoch_owners = {2, kNoNode, 5};
  s.membership.promised = {9, 4};
  s.membership.accepted = {8, 2};
  return s;
}

void ExpectSame(const PersistentState& a, const PersistentState& b) {
  EXPECT_EQ(a.membership.version, b.membership.version);
  EXPECT_EQ(a.membership.members, b.membership.members);
  EXPECT_EQ(a.membership.old_members, b.membership.old_members);
  EXPECT_EQ(a.epochs, b.epochs);
  EXPECT_EQ(a.epoch_owners, b.epoch_owners);
  EXPECT_EQ(a.membership.promised, b.membership.promised);
  EXPECT_EQ(a.membership.accepted, b.membership.accepted);
}

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-state-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/node.state";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::unlink((path_ + ".tmp").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string Read() {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  std::string dir_, path_;
};

TEST_F(StateFileTest, EncodeDecodeRoundTrip) {
  absl::StatusOr<PersistentState> back = DecodePersistentState(EncodePersistentState(Sample()));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(*back, Sample());
  PersistentState empty;
  back = DecodePersistentState(EncodePersistentState(empty));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(*back, empty);
}

TEST_F(StateFileTest, MissingFileIsNoStateAndSavedStateLoadsBack) {
  absl::StatusOr<std::optional<PersistentState>> none = LoadPersistentState(path_);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(SavePersistentState(path_, Sample()).ok());
  PersistentState newer = Sample();
  newer.membership.version = 4;
  newer.membership.old_members.clear();
  ASSERT_TRUE(SavePersistentState(path_, newer).ok());  // replaces, leaves no temp file
  EXPECT_NE(::access((path_ + ".tmp").c_str(), F_OK), 0);
  absl::StatusOr<std::optional<PersistentState>> back = LoadPersistentState(path_);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->has_value());
  ExpectSame(**back, newer);
}

TEST_F(StateFileTest, DamagedFilesAreDataLoss) {
  const std::string good = EncodePersistentState(Sample());
  std::string flipped = good;
  flipped[flipped.find("members 1 2 5") + 8] = '7';  // a member changed, checksum kept
  const std::string cases[] = {
      "",                                   // empty (e.g. a torn first write)
      good.substr(0, good.size() / 2),      // truncated
      flipped,                              // bit rot
      "garbage\nchecksum 0000000000000000\n",
      good + "extra\n",                     // anything after the checksum
  };
  for (const std::string& text : cases) {
    Write(text);
    absl::StatusOr<std::optional<PersistentState>> r = LoadPersistentState(path_);
    ASSERT_FALSE(r.ok()) << "accepted a damaged file:\n" << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    EXPECT_NE(std::string(r.status().message()).find(path_), std::string::npos) << r.status();
  }
}

// A file written before the membership ballots existed (format 1) still loads: a daemon upgraded
// in place keeps its membership and epochs, with no ballot promised or accepted.
TEST_F(StateFileTest, VersionOneFileWithoutBallotsLoads) {
  const std::string body =
      "baton-takeoverd-state 1\nmembership 3\nmembers 1 2 5\nold_members\nepochs 17:2\n";
  uint64_t h = 1469598103934665603ULL;  // as the file's checksum line (state_file.cc)
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char sum[17];
  std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(h));
  Write(body + "checksum " + sum + "\n");
  absl::StatusOr<std::optional<PersistentState>> r = LoadPersistentState(path_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->membership.version, 3u);
  EXPECT_EQ((*r)->membership.members, (std::vector<NodeId>{1, 2, 5}));
  EXPECT_EQ((*r)->membership.promised, Ballot{});
  EXPECT_EQ((*r)->epochs, (std::vector<uint64_t>{17}));
}

TEST_F(StateFileTest, UnwritableDirectoryIsAnError) {
  // As root, permissions do not stop writes: a missing directory does for everyone.
  const std::string bad = dir_ + "/no-such-dir/node.state";
  absl::Status s = SavePersistentState(bad, Sample());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("no-such-dir"), std::string::npos) << s;
}

}  // namespace
}  // namespace baton::takeover
