#include "framework/fence.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace baton::framework {

std::string FenceKey(uint32_t slot) {
  return absl::StrCat(std::string(storage::kReservedPrefix), "fence/", slot);
}

std::string_view FenceStateName(FenceState state) {
  switch (state) {
    case FenceState::kNone: return "none";
    case FenceState::kEstablishing: return "establishing";
    case FenceState::kReady: return "ready";
    case FenceState::kReleased: return "released";
    case FenceState::kDeposed: return "deposed";
  }
  return "unknown";
}

FenceDecision FenceTable::ForAddress(std::string_view local_address) const {
  FenceDecision d;
  if (local_address.empty()) return d;
  absl::MutexLock lock(&mu_);
  for (const auto& [slot, s] : slots_) {
    if (s.address != local_address) continue;
    d.slot = slot;
    d.state = s.state;
    if (s.state == FenceState::kReady) {
      d.kind = FenceDecision::Kind::kFenced;
      d.key = FenceKey(slot);
      d.version = s.version;
    } else {
      d.kind = FenceDecision::Kind::kNotReady;
    }
    return d;
  }
  return d;
}

void FenceTable::Held(uint32_t slot, std::string address, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  FenceSlot& s = slots_[slot];
  s.slot = slot;
  s.address = std::move(address);
  s.state = FenceState::kEstablishing;
  s.epoch = epoch;
  s.version = 0;
  s.error.clear();
}

bool FenceTable::WantsEstablish(uint32_t slot, uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(slot);
  return it != slots_.end() && it->second.state == FenceState::kEstablishing &&
         it->second.epoch == epoch;
}

absl::Status FenceTable::Establish(storage::StableStore& store, uint32_t slot,
                                   uint64_t epoch) {
  const std::string key = FenceKey(slot);
  auto stale = [] {
    return absl::AbortedError(
        "the slot was released or taken again meanwhile; fence not written");
  };
  auto note_error = [&](const absl::Status& s) {
    establish_errors_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(slot);
    if (it != slots_.end() && it->second.epoch == epoch) {
      it->second.error = std::string(s.message());
    }
    return s;
  };
  // A racing writer (another host establishing at the same moment) changes
  // the version between our read and our write: read again. A few rounds
  // suffice, since each round's loser sees the winner's epoch.
  for (int round = 0; round < 8; ++round) {
    if (!WantsEstablish(slot, epoch)) return stale();
    absl::StatusOr<storage::Versioned> cur = store.Get(key);
    if (!cur.ok()) return note_error(cur.status());
    uint64_t stored = 0;
    if (cur->present() && !absl::SimpleAtoi(cur->value, &stored)) {
      return note_error(absl::DataLossError(absl::StrCat(
          "fence key of slot ", slot, " holds \"", cur->value,
          "\", not an epoch")));
    }
    if (cur->present() && stored >= epoch) {
      establish_refused_.fetch_add(1, std::memory_order_relaxed);
      const std::string why = absl::StrCat(
          "stored fence epoch ", stored, " >= ours (", epoch,
          "): a newer holder exists, this one is deposed");
      absl::MutexLock lock(&mu_);
      FenceSlot& s = slots_[slot];
      if (s.state != FenceState::kEstablishing || s.epoch != epoch) {
        return stale();
      }
      s.state = FenceState::kDeposed;
      s.error = why;
      spdlog::error("fence of slot {} ({}): {}", slot, s.address, why);
      return absl::FailedPreconditionError(why);
    }
    absl::StatusOr<uint64_t> written = store.Commit(
        {{key, cur->version}}, {storage::Write::Put(key, absl::StrCat(epoch))});
    if (!written.ok()) {
      if (storage::IsConflict(written.status())) continue;
      return note_error(written.status());
    }
    absl::MutexLock lock(&mu_);
    FenceSlot& s = slots_[slot];
    if (s.state != FenceState::kEstablishing || s.epoch != epoch) {
      // Released (or held again) while we wrote: the fence we wrote is ours
      // but the holding is over; its requests are refused by the new state.
      return stale();
    }
    s.state = FenceState::kReady;
    s.version = *written;
    s.error.clear();
    established_.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("fence of slot {} ({}) ready: epoch {}, version {}", slot,
                 s.address, epoch, s.version);
    return absl::OkStatus();
  }
  return note_error(absl::AbortedError(
      "the fence key kept changing while being written; retry"));
}

void FenceTable::Released(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  it->second.state = FenceState::kReleased;
  it->second.version = 0;
}

void FenceTable::Deposed(uint32_t slot, uint64_t version) {
  deposed_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  FenceSlot& s = it->second;
  if (s.state == FenceState::kReady && s.version == version) {
    s.state = FenceState::kDeposed;
    s.version = 0;
    s.error = "a commit found a newer holder's fence";
    spdlog::warn("slot {} ({}) epoch {}: deposed (a newer holder's fence is "
                 "in the store); its requests get 503",
                 slot, s.address, s.epoch);
  }
}

void FenceTable::CountNotReady() {
  not_ready_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<FenceSlot> FenceTable::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<FenceSlot> out;
  out.reserve(slots_.size());
  for (const auto& [slot, s] : slots_) out.push_back(s);
  return out;
}

FenceCounters FenceTable::Counters() const {
  FenceCounters c;
  c.deposed = deposed_.load();
  c.not_ready = not_ready_.load();
  c.established = established_.load();
  c.establish_refused = establish_refused_.load();
  c.establish_errors = establish_errors_.load();
  return c;
}

}  // namespace baton::framework
