// Lease-loss damping (takeover/daemon/damping.h): a holder that keeps losing a slot's lease steps
// back from it for a while, so that a peer with a healthy link wins it; a single loss does not
// move anything; the step-back ends by itself.
#include "takeover/daemon/damping.h"

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

using std::chrono::milliseconds;

DampingConfig Config(int losses) {
  DampingConfig c;
  c.losses = losses;
  c.window = milliseconds(5000);
  c.hold = milliseconds(2000);
  return c;
}

TEST(LeaseLossDamperTest, SecondLossWithinTheWindowStepsBackForTheHold) {
  LeaseLossDamper d(Config(2), 2);
  EXPECT_FALSE(d.OnLoss(0, milliseconds(1000)));  // one loss: the node takes the slot back
  EXPECT_FALSE(d.stepped_back(0));
  EXPECT_TRUE(d.OnLoss(0, milliseconds(1300)));
  EXPECT_TRUE(d.stepped_back(0));
  EXPECT_FALSE(d.stepped_back(1));  // per slot
  EXPECT_EQ(d.NextEnd(), milliseconds(3300));
  EXPECT_FALSE(d.OnLoss(0, milliseconds(1400)));  // already stepped back
  EXPECT_TRUE(d.TakeEnded(milliseconds(3299)).empty());
  EXPECT_EQ(d.TakeEnded(milliseconds(3300)), std::vector<uint32_t>{0});
  EXPECT_TRUE(d.TakeEnded(milliseconds(3400)).empty());  // reported once
  EXPECT_FALSE(d.stepped_back(0));
  EXPECT_EQ(d.step_backs(), 1u);
  // The count starts again after a step-back.
  EXPECT_FALSE(d.OnLoss(0, milliseconds(3500)));
}

TEST(LeaseLossDamperTest, LossesFartherApartThanTheWindowDoNotAddUp) {
  LeaseLossDamper d(Config(2), 1);
  EXPECT_FALSE(d.OnLoss(0, milliseconds(0)));
  EXPECT_FALSE(d.OnLoss(0, milliseconds(5000)));  // the first is out of the window
  EXPECT_FALSE(d.OnLoss(0, milliseconds(10001)));
  EXPECT_TRUE(d.OnLoss(0, milliseconds(10002)));
}

TEST(LeaseLossDamperTest, OffAndCancel) {
  LeaseLossDamper off(Config(0), 1);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(off.OnLoss(0, milliseconds(i)));
  EXPECT_FALSE(off.NextEnd().has_value());
  LeaseLossDamper d(Config(1), 1);
  EXPECT_TRUE(d.OnLoss(0, milliseconds(0)));
  d.Cancel(0);
  EXPECT_FALSE(d.stepped_back(0));
  EXPECT_TRUE(d.TakeEnded(milliseconds(100000)).empty());
  EXPECT_FALSE(d.OnLoss(7, milliseconds(0)));  // no such slot
}

}  // namespace
}  // namespace baton::takeover
