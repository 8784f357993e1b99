#include "takeover/daemon/damping.h"

#include <algorithm>

namespace baton::takeover {

LeaseLossDamper::LeaseLossDamper(const DampingConfig& config, size_t slots)
    : config_(config), slots_(slots) {}

bool LeaseLossDamper::OnLoss(uint32_t slot, Time now) {
  if (config_.losses <= 0 || slot >= slots_.size()) return false;
  SlotState& s = slots_[slot];
  if (s.until) return false;
  const Time window = config_.window;
  while (!s.losses.empty() && now - s.losses.front() >= window) s.losses.pop_front();
  s.losses.push_back(now);
  if (static_cast<int>(s.losses.size()) < config_.losses) return false;
  s.losses.clear();
  s.until = now + Time(config_.hold);
  ++step_backs_;
  return true;
}

void LeaseLossDamper::Cancel(uint32_t slot) {
  if (slot < slots_.size()) slots_[slot].until.reset();
}

std::vector<uint32_t> LeaseLossDamper::TakeEnded(Time now) {
  std::vector<uint32_t> ended;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].until && *slots_[i].until <= now) {
      slots_[i].until.reset();
      ended.push_back(i);
    }
  }
  return ended;
}

std::optional<Time> LeaseLossDamper::NextEnd() const {
  std::optional<Time> next;
  for (const SlotState& s : slots_) {
    if (s.until && (!next || *s.until < *next)) next = s.until;
  }
  return next;
}

bool LeaseLossDamper::stepped_back(uint32_t slot) const {
  return slot < slots_.size() && slots_[slot].until.has_value();
}

}  // namespace baton::takeover
