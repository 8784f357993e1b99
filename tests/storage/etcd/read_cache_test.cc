// The etcd backend's read cache (storage/etcd/read_cache.h) on its own: it
// never answers with an older observation than one it was given, it stays
// within its byte budget by evicting the least recently used key, and it
// forgets on request.
#include "storage/etcd/read_cache.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace baton::storage::etcd_internal {
namespace {

TEST(ReadCacheTest, NewerObservationWinsOlderIsIgnored) {
  ReadCache cache(1 << 20);
  EXPECT_FALSE(cache.Lookup("k").has_value());
  cache.Observe("k", Versioned{"v10", 10}, 10);
  cache.Observe("k", Versioned{"v7", 7}, 8);  // a slow read, older than the commit at 10
  ASSERT_TRUE(cache.Lookup("k").has_value());
  EXPECT_EQ(cache.Lookup("k")->value, "v10");
  // Deleted at 12: cached as absent, and an older read cannot bring it back.
  cache.Observe("k", Versioned{}, 12);
  cache.Observe("k", Versioned{"v10", 10}, 11);
  ASSERT_TRUE(cache.Lookup("k").has_value());
  EXPECT_FALSE(cache.Lookup("k")->present());
  cache.Observe("k", Versioned{"v13", 13}, 13);
  EXPECT_EQ(cache.Lookup("k")->version, 13u);
}

TEST(ReadCacheTest, StaysWithinItsBytesEvictingLeastRecentlyUsed) {
  const size_t entry = 2 + 100 + ReadCache::kEntryOverheadBytes;  // "kN" + 100-byte value
  ReadCache cache(4 * entry);
  const std::string value(100, 'x');
  for (int i = 0; i < 4; ++i) cache.Observe(absl::StrCat("k", i), Versioned{value, 1}, 1);
  EXPECT_EQ(cache.entries(), 4u);
  ASSERT_TRUE(cache.Lookup("k0").has_value());  // k0 is now the most recently used
  cache.Observe("k4", Versioned{value, 2}, 2);
  EXPECT_LE(cache.bytes(), 4 * entry);
  EXPECT_TRUE(cache.Lookup("k0").has_value());
  EXPECT_FALSE(cache.Lookup("k1").has_value()) << "the least recently used key goes first";
  EXPECT_TRUE(cache.Lookup("k4").has_value());
  // Many more keys than fit: the budget holds.
  for (uint64_t i = 0; i < 1000; ++i) {
    cache.Observe(absl::StrCat("m", i % 10), Versioned{value, i + 3}, i + 3);
  }
  EXPECT_LE(cache.bytes(), 4 * entry);
  EXPECT_EQ(cache.entries(), 4u);
}

// Refresh (what the store does with its own writes) updates held keys only:
// a key this process writes but never reads takes no room.
TEST(ReadCacheTest, RefreshUpdatesOnlyHeldKeys) {
  ReadCache cache(1 << 20);
  cache.Refresh("written-only", Versioned{"v", 4}, 4);
  EXPECT_FALSE(cache.Lookup("written-only").has_value());
  EXPECT_EQ(cache.entries(), 0u);
  cache.Observe("read", Versioned{"old", 2}, 2);
  cache.Refresh("read", Versioned{"new", 5}, 5);
  ASSERT_TRUE(cache.Lookup("read").has_value());
  EXPECT_EQ(cache.Lookup("read")->value, "new");
  cache.Refresh("read", Versioned{"older", 3}, 3);
  EXPECT_EQ(cache.Lookup("read")->value, "new") << "an older write never replaces a newer one";
}

TEST(ReadCacheTest, ForgetAndZeroCapacity) {
  ReadCache cache(1 << 20);
  cache.Observe("k", Versioned{"v", 5}, 5);
  cache.Forget("k");
  EXPECT_FALSE(cache.Lookup("k").has_value());
  EXPECT_EQ(cache.bytes(), 0u);
  // After Forget, any real observation is welcome again, even an older one.
  cache.Observe("k", Versioned{"old", 3}, 3);
  EXPECT_EQ(cache.Lookup("k")->value, "old");

  ReadCache off(0);
  off.Observe("k", Versioned{"v", 5}, 5);
  EXPECT_FALSE(off.Lookup("k").has_value());
  EXPECT_EQ(off.entries(), 0u);
  // A value larger than the whole budget is not kept (and evicts nothing).
  ReadCache small(300);
  small.Observe("a", Versioned{"v", 1}, 1);
  small.Observe("big", Versioned{std::string(1000, 'x'), 1}, 1);
  EXPECT_TRUE(small.Lookup("a").has_value());
  EXPECT_FALSE(small.Lookup("big").has_value());
}

}  // namespace
}  // namespace baton::storage::etcd_internal
