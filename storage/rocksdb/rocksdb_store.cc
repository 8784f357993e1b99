#include "storage/rocksdb/rocksdb_store.h"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/internal/rocksdb_env.h"
#include "storage/rocksdb/rocksdb_status.h"

namespace baton::storage {
namespace {

using rocksdb_internal::FromRocksDb;
using rocksdb_internal::ToAbsl;

// Column family of the metadata; the data lives in the default family, so a
// scan of the data never meets metadata.
constexpr char kMetaColumnFamily[] = "baton_meta";
// In kMetaColumnFamily: the revision of the last commit with writes, written
// in the same WriteBatch as that commit's writes, so that after a restart the
// revision counter resumes above every version on disk.
constexpr char kRevisionKey[] = "revision";
// In kMetaColumnFamily: the on-disk format, written when the store is created.
constexpr char kFormatKey[] = "format";
constexpr char kFormat[] = "baton-rocksdb-1";

constexpr size_t kVersionBytes = 8;

// Big-endian, so that the encoding reads the same on every host.
void EncodeFixed64To(uint64_t v, char* out) {
  for (size_t i = 0; i < kVersionBytes; ++i) {
    out[kVersionBytes - 1 - i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

uint64_t DecodeFixed64(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < kVersionBytes; ++i) {
    v = (v << 8) | static_cast<unsigned char>(in[i]);
  }
  return v;
}

// A stored value is the 8-byte big-endian version, then the value's bytes.
// The version alone, without copying the value (what a condition needs).
absl::StatusOr<uint64_t> DecodeVersion(std::string_view key,
                                       std::string_view stored) {
  if (stored.size() < kVersionBytes) {
    return absl::DataLossError(
        absl::StrCat("stored value of key \"", absl::CHexEscape(ToAbsl(key)),
                     "\" is shorter than its version (", stored.size(),
                     " bytes)"));
  }
  const uint64_t version = DecodeFixed64(stored);
  if (version == 0) {
    return absl::DataLossError(absl::StrCat(
        "stored value of key \"", absl::CHexEscape(ToAbsl(key)), "\" has version 0"));
  }
  return version;
}

absl::StatusOr<Versioned> DecodeValue(std::string_view key,
                                      std::string_view stored) {
  absl::StatusOr<uint64_t> version = DecodeVersion(key, stored);
  if (!version.ok()) return version.status();
  Versioned v;
  v.version = *version;
  v.value.assign(stored.substr(kVersionBytes));
  return v;
}

// The smallest string greater than every string that starts with `prefix`;
// empty when there is none (prefix empty or all 0xff).
std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char last = static_cast<unsigned char>(s.back());
    if (last != 0xff) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

// RocksDB's own log goes to spdlog instead of a LOG file in the database
// directory: on a full disk, RocksDB 7.8 aborts (assertion in
// WritableFileWriter) when it logs to a LOG file whose earlier write failed,
// and a store must survive a full disk. RocksDB's chatty INFO lines become
// spdlog debug lines.
class SpdlogRocksDbLogger final : public rocksdb::Logger {
 public:
  SpdlogRocksDbLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    spdlog::level::level_enum to = spdlog::level::debug;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL &&
        level != rocksdb::InfoLogLevel::HEADER_LEVEL) {
      to = spdlog::level::err;
    } else if (level == rocksdb::InfoLogLevel::WARN_LEVEL) {
      to = spdlog::level::warn;
    }
    if (!spdlog::should_log(to)) return;
    char buffer[1024];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(buffer, sizeof(buffer), format, copy);
    va_end(copy);
    std::string_view line(buffer, n < 0 ? 0
                                        : std::min(static_cast<size_t>(n),
                                                   sizeof(buffer) - 1));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    spdlog::log(to, "rocksdb: {}", line);
  }
};

// A RocksDB snapshot that readers share: the state after the last durable
// group. Released by its last holder. Every holder holds db_mu_ (shared or
// exclusive) while it holds a reference, so the database outlives it.
class SnapshotRef {
 public:
  SnapshotRef(rocksdb::DB* db, const rocksdb::Snapshot* snapshot)
      : db_(db), snapshot_(snapshot) {}
  ~SnapshotRef() { db_->ReleaseSnapshot(snapshot_); }
  SnapshotRef(const SnapshotRef&) = delete;
  SnapshotRef& operator=(const SnapshotRef&) = delete;

  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snapshot_;
};

// Memtable insert hints for the framework's reserved keys. RocksDB inserts
// each key into the memtable (a skip list) by a search from the top, unless
// the key lands next to the one inserted last under the same hint. Reserved
// keys fall into a few families by their first bytes ("\xff" "fw/c/"
// completion records, "\xff" "fw/t/" the age index, ordered by time) that
// are interleaved in every commit; a hint per family makes the time-ordered
// index entries nearly free to insert. Application keys get no hint (their
// prefixes are unbounded; a hint costs ~250 bytes per prefix per memtable).
class ReservedKeyFamilies final : public rocksdb::SliceTransform {
 public:
  static constexpr size_t kFamilyBytes = 6;

  const char* Name() const override { return "baton.ReservedKeyFamilies"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), std::min(key.size(), kFamilyBytes));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= kFamilyBytes && key[0] == kReservedPrefix[0];
  }
};

class RocksDbStoreImpl;
// The store whose commit callbacks this thread is running, if any (Close()
// from a callback must not wait for the callbacks to end).
thread_local const RocksDbStoreImpl* answering_store = nullptr;

class RocksDbStoreImpl final : public RocksDbStore {
 public:
  // `env`: where RocksDB's files live (null: rocksdb::Env::Default()).
  RocksDbStoreImpl(RocksDbOptions options, rocksdb::Env* env)
      : options_(std::move(options)), env_(env) {}

  ~RocksDbStoreImpl() override {
    absl::Status s = Close();
    if (!s.ok()) spdlog::warn("rocksdb store: close: {}", s.ToString());
    StopThreads();
  }

  // Opens the database; called once, before the store is shared.
  absl::Status Open() {
    uint64_t revision = 0;
    {
      absl::WriterMutexLock db_lock(&db_mu_);
      absl::Status s = OpenDbLocked();
      if (!s.ok()) return s;
      revision = loaded_revision_;
    }
    absl::MutexLock lock(&mu_);
    revision_ = durable_revision_ = revision;
    return absl::OkStatus();
  }

  absl::StatusOr<Versioned> Get(std::string_view key) override {
    if (key.size() > options_.max_key_bytes) return KeyTooLarge(key);
    absl::ReaderMutexLock db_lock(&db_mu_);
    if (db_ == nullptr) return NotOpenLocked();
    const std::shared_ptr<const SnapshotRef> durable = DurableSnapshotLocked();
    rocksdb::ReadOptions read_options;
    if (durable != nullptr) read_options.snapshot = durable->get();
    rocksdb::PinnableSlice stored;
    rocksdb::Status s = db_->Get(read_options, data_cf_,
                                 rocksdb::Slice(key.data(), key.size()),
                                 &stored);
    if (s.IsNotFound()) return Versioned{};
    if (!s.ok()) return FromRocksDb(s, "get");
    return DecodeValue(key, stored.ToStringView());
  }

  absl::StatusOr<std::vector<KeyValue>> Scan(
      const ScanOptions& options) override {
    if (options.prefix.size() > options_.max_key_bytes) {
      return KeyTooLarge(options.prefix);
    }
    std::vector<KeyValue> out;
    if (options.limit == 0) return out;
    absl::ReaderMutexLock db_lock(&db_mu_);
    if (db_ == nullptr) return NotOpenLocked();
    // Declared before the iterator, which must be gone before it is released.
    const std::shared_ptr<const SnapshotRef> durable = DurableSnapshotLocked();

    // Bounding the iterator lets RocksDB skip deleted keys beyond the prefix.
    const std::string upper = PrefixSuccessor(options.prefix);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions read_options;
    if (durable != nullptr) read_options.snapshot = durable->get();
    if (!upper.empty()) read_options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(read_options, data_cf_));

    // start_after is exclusive: seek to it and step over it when present.
    const std::string& start_after = options.start_after;
    if (!start_after.empty() && start_after >= options.prefix) {
      it->Seek(start_after);
      if (it->Valid() && it->key() == rocksdb::Slice(start_after)) it->Next();
    } else {
      it->Seek(options.prefix);
    }
    for (; it->Valid() && out.size() < options.limit; it->Next()) {
      std::string_view key = it->key().ToStringView();
      if (key.substr(0, options.prefix.size()) != options.prefix) break;
      absl::StatusOr<Versioned> v = DecodeValue(key, it->value().ToStringView());
      if (!v.ok()) return v.status();
      out.push_back(KeyValue{std::string(key), std::move(v->value), v->version});
    }
    if (!it->status().ok()) return FromRocksDb(it->status(), "scan");
    return out;
  }

  absl::StatusOr<uint64_t> Commit(const std::vector<Condition>& conditions,
                                  const std::vector<Write>& writes) override {
    absl::StatusOr<size_t> bytes = Validate(conditions, writes);
    if (!bytes.ok()) {
      CountResult(bytes.status());
      return bytes.status();
    }
    Writer w(&conditions, &writes, *bytes);
    absl::StatusOr<uint64_t> result = RunInQueue(&w);
    CountResult(result.status());
    return result;
  }

  void CommitAsync(std::vector<Condition> conditions, std::vector<Write> writes,
                   CommitCallback done) override {
    absl::StatusOr<size_t> bytes = Validate(conditions, writes);
    if (!bytes.ok()) {
      CountResult(bytes.status());
      done(bytes.status());
      return;
    }
    auto* w = new AsyncWriter(std::move(conditions), std::move(writes), *bytes,
                              std::move(done));
    {
      absl::MutexLock lock(&mu_);
      if (!threads_stop_) {
        while (committers_.size() < kCommitters) {
          committers_.emplace_back([this] { CommitterLoop(); });
        }
        w->seq = ++enqueued_;
        writers_.push_back(w);
        // The committers wait on a condition over the queue, evaluated by
        // this unlock: no explicit signal, and no wake-up at all while they
        // are busy.
        return;
      }
    }
    // Closed: the committers are gone (or going); answer here.
    w->result = ClosedError();
    FinishAsync(w);
  }

  bool CommitsAsynchronously() const override { return true; }

  absl::Status Ping() override {
    {
      absl::ReaderMutexLock db_lock(&db_mu_);
      if (closed_) return NotOpenLocked();
      if (db_ != nullptr && !needs_recovery_.load()) return absl::OkStatus();
    }
    // After a write error: an empty commit goes through the queue, whose
    // leader tries to recover (DB::Resume(), then a reopen).
    static const std::vector<Condition> kNoConditions;
    static const std::vector<Write> kNoWrites;
    Writer w(&kNoConditions, &kNoWrites, 0);
    return RunInQueue(&w).status();
  }

  absl::Status Close() override {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      // Let the groups already written reach their fsync and be answered,
      // unless this is a commit callback, which would wait for itself; their
      // commits then fail below.
      if (answering_store != this) {
        mu_.Await(absl::Condition(&Drained, this));
      }
    }
    {
      absl::WriterMutexLock db_lock(&db_mu_);
      if (closed_) return absl::OkStatus();
      closed_ = true;
      CloseDbLocked();
    }
    // Queued commits fail with kUnavailable (leaders see closing_); then the
    // store's threads exit.
    StopThreads();
    spdlog::info("rocksdb store {}: closed", options_.path);
    return absl::OkStatus();
  }

  std::string Kind() const override { return "rocksdb"; }

  std::vector<StoreStatistic> Statistics() const override {
    const RocksDbStoreStats st = Stats();
    return {
        {"commits", static_cast<double>(st.commits_ok),
         "Commits that succeeded.", true},
        {"commit_conflicts", static_cast<double>(st.commits_conflict),
         "Commits refused by a failed condition.", true},
        {"commit_errors", static_cast<double>(st.commits_failed),
         "Commits that failed otherwise (disk, closed store).", true},
        {"commit_groups", static_cast<double>(st.groups),
         "Groups of commits checked and written together.", true},
        {"commit_batches", static_cast<double>(st.batches_written),
         "Write batches written to the WAL (one per group with writes).",
         true},
        {"wal_syncs", static_cast<double>(st.wal_syncs),
         "WAL fsyncs; each makes every batch written before it durable.",
         true},
        {"recoveries", static_cast<double>(st.recoveries),
         "Recoveries after a write error.", true},
    };
  }

  RocksDbStoreStats Stats() const override {
    RocksDbStoreStats st;
    st.commits_ok = commits_ok_.load(std::memory_order_relaxed);
    st.commits_conflict = commits_conflict_.load(std::memory_order_relaxed);
    st.commits_failed = commits_failed_.load(std::memory_order_relaxed);
    st.groups = groups_.load(std::memory_order_relaxed);
    st.batches_written = batches_written_.load(std::memory_order_relaxed);
    st.wal_syncs = wal_syncs_.load(std::memory_order_relaxed);
    st.recoveries = recoveries_.load(std::memory_order_relaxed);
    return st;
  }

  uint64_t CurrentRevision() const override {
    absl::MutexLock lock(&mu_);
    return durable_revision_;
  }

 private:
  // One Commit() (or Ping()) waiting in the queue. Lives on its caller's
  // stack; the fields below `bytes` are written by the store's threads.
  struct Writer {
    Writer(const std::vector<Condition>* c, const std::vector<Write>* w,
           size_t b)
        : conditions(c), writes(w), bytes(b) {}
    virtual ~Writer() = default;
    const std::vector<Condition>* conditions;
    const std::vector<Write>* writes;
    size_t bytes;
    uint64_t seq = 0;  // Position in the queue (1, 2, ...). Guarded by mu_.
    bool async = false;
    bool done = false;  // Guarded by mu_.
    absl::StatusOr<uint64_t> result = uint64_t{0};
  };

  // One CommitAsync(): owns its commit and callback; on the heap, deleted
  // once its callback has run.
  struct AsyncWriter final : Writer {
    AsyncWriter(std::vector<Condition> c, std::vector<Write> w, size_t b,
                CommitCallback d)
        : Writer(nullptr, nullptr, b),
          owned_conditions(std::move(c)),
          owned_writes(std::move(w)),
          callback(std::move(d)) {
      conditions = &owned_conditions;
      writes = &owned_writes;
      async = true;
    }
    std::vector<Condition> owned_conditions;
    std::vector<Write> owned_writes;
    CommitCallback callback;
  };

  // One group of commits, from its leader to its answers. A group is checked
  // and written by a leader, then (with sync on) waits in unsynced_ until a
  // WAL fsync covers it (SyncRoundLocked); only then are its commits
  // answered.
  struct Group {
    std::vector<Writer*> writers;
    uint64_t id = 0;          // Groups are numbered in commit order.
    uint64_t revision = 0;    // The store's revision after the group.
    uint64_t generation = 0;  // Of the database it was checked against.
    bool wrote = false;       // A batch went to the WAL (sync=false write).
  };

  // A write of an accepted commit, while its group is assembled.
  struct GroupWrite {
    const Write* write;
    uint64_t revision;   // The commit's revision: the key's new version.
    uint32_t position;   // Order in the group (commit order).
  };

  void FinishAsync(AsyncWriter* w) ABSL_LOCKS_EXCLUDED(mu_) {
    CountResult(w->result.status());
    w->callback(std::move(w->result));
    delete w;
  }

  static absl::Status KeyTooLarge(std::string_view key) {
    return absl::InvalidArgumentError(
        absl::StrCat("key of ", key.size(), " bytes starting with \"",
                     absl::CHexEscape(ToAbsl(key.substr(0, 32))),
                     "\" is larger than the limit"));
  }

  absl::Status ClosedError() const {
    return absl::UnavailableError(
        absl::StrCat("rocksdb store ", options_.path, " is closed"));
  }

  absl::Status NotOpenLocked() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    if (closed_) return ClosedError();
    return absl::UnavailableError(
        absl::StrCat("rocksdb store ", options_.path,
                     " is not open (reopen after an error failed: ",
                     reopen_error_.ToString(), ")"));
  }

  // What reads see: the state after the last durable group (null with sync
  // off: the latest state, as every written group is acknowledged).
  std::shared_ptr<const SnapshotRef> DurableSnapshotLocked() const
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    absl::ReaderMutexLock lock(&snap_mu_);
    return durable_;
  }

  // The commit's size in bytes, or why it is refused.
  absl::StatusOr<size_t> Validate(const std::vector<Condition>& conditions,
                                  const std::vector<Write>& writes) const {
    size_t bytes = 0;
    for (const Condition& c : conditions) {
      if (c.key.size() > options_.max_key_bytes) return KeyTooLarge(c.key);
    }
    for (const Write& w : writes) {
      if (w.key.size() > options_.max_key_bytes) return KeyTooLarge(w.key);
      bytes += w.key.size() + w.value.size() + kVersionBytes;
    }
    if (bytes > options_.max_commit_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("commit of ", bytes, " bytes exceeds the limit of ",
                       options_.max_commit_bytes, " bytes"));
    }
    return bytes;
  }

  void CountResult(const absl::Status& s) {
    if (s.ok()) {
      commits_ok_.fetch_add(1, std::memory_order_relaxed);
    } else if (IsConflict(s)) {
      commits_conflict_.fetch_add(1, std::memory_order_relaxed);
    } else {
      commits_failed_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Queues `w`; returns its result once it is answered. Modeled on LevelDB's
  // DBImpl::Write: while it waits, the thread also does the store's work
  // when it is its turn: it leads a group when its commit is at the front,
  // and it fsyncs written groups (its own, usually) when no other thread
  // does (see SyncTurn).
  absl::StatusOr<uint64_t> RunInQueue(Writer* w) {
    absl::MutexLock lock(&mu_);
    w->seq = ++enqueued_;
    writers_.push_back(w);
    WaitArgs args{this, w};
    for (;;) {
      mu_.Await(absl::Condition(&MayProceed, &args));
      if (w->done) return std::move(w->result);
      if (SyncTurn(this)) {
        SyncRoundLocked();
      } else {
        LeadOneGroupLocked();
      }
    }
  }

  // The store's work is done by its committer threads (for asynchronous
  // commits, which have no thread of their own) and by the threads of
  // synchronous commits while they wait. Two roles, each held by at most
  // one thread at a time:
  //   leading_  checking and writing a group (LeadOneGroupLocked);
  //   syncing_  fsyncing the written groups and answering them
  //             (SyncRoundLocked).
  // A thread that has written a group usually syncs it itself at once (no
  // hand-over to another thread); while it does, another thread can lead
  // the next group, which the next fsync covers.
  //
  // When a new group may be checked and written:
  //  - No fsync running: at once (a lone commit waits for nothing), unless
  //    the next fsync is due (SyncTurn), which goes first.
  //  - An fsync (or the answering of its groups) running: the group written
  //    now is made durable by the next fsync, which covers every group
  //    written before it; so groups are written during the fsync, but only
  //    once half as many commits are queued as the last fsync covered (each
  //    batch costs a WAL write and a memtable pass: a few per fsync, not one
  //    per commit).
  //  - After a failed write or fsync: once no group waits for an fsync (the
  //    leader then recovers the database).
  //  - While closing: at once (groups fail without touching the database).
  static bool LeaderMayStart(const RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (self->leading_) return false;
    if (self->closing_) return true;
    if (self->needs_recovery_.load()) {
      return self->unsynced_.empty() && !self->syncing_;
    }
    if (!self->syncing_) return !SyncDue(self);
    const size_t enough =
        std::min(self->options_.max_group_commits,
                 std::max<size_t>(1, self->last_sync_commits_ / 2));
    return self->writers_.size() >= enough;
  }

  // The next fsync is due once every commit that was queued when the last
  // one had been answered is written (and no group is being written): it
  // then covers all of them. Commits that arrive during an fsync are thus
  // checked and written during it and made durable together by the next
  // one, which starts without waiting for later arrivals. When leaders are
  // slow (a busy machine), fsyncs wait for them and cover more commits, so
  // the fsync rate, and its CPU, fall as CPU gets scarce.
  static bool SyncDue(const RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !self->unsynced_.empty() && !self->leading_ &&
           self->taken_ >= self->drain_to_;
  }

  // Whether a waiting thread should take the sync role now. Failing or
  // closing: the waiting groups are answered (with errors) at once.
  static bool SyncTurn(const RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (self->syncing_ || self->unsynced_.empty()) return false;
    if (self->closing_ || self->threads_stop_ ||
        self->needs_recovery_.load()) {
      return true;
    }
    return SyncDue(self);
  }

  // RunInQueue's wait: done, the sync role's turn, or at the front when a
  // leader may start and no fsync runs. A synchronous commit's thread does
  // not write during an fsync: its commit waits for the fsync to end and is
  // then written with every commit queued behind it (one batch, as many
  // synchronous committers pile up meanwhile); writing during an fsync, in
  // batches of half the last one, is the committer threads' job (measured:
  // 16 Commit() threads reached ~60 % of the serial store's rate otherwise,
  // from more, smaller batches and more wake-ups).
  struct WaitArgs {
    RocksDbStoreImpl* self;
    Writer* w;
  };
  static bool MayProceed(WaitArgs* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return a->w->done || SyncTurn(a->self) ||
           (!a->self->writers_.empty() && a->self->writers_.front() == a->w &&
            (!a->self->syncing_ || a->self->closing_) &&
            LeaderMayStart(a->self));
  }
  static bool CommitterMayProceed(RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return CommitterDone(self) || SyncTurn(self) ||
           (!self->writers_.empty() && self->writers_.front()->async &&
            LeaderMayStart(self));
  }
  static bool CommitterDone(const RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return self->threads_stop_ && self->writers_.empty() &&
           self->unsynced_.empty();
  }
  // Close()'s wait: no group between its leader and its answers.
  static bool Drained(RocksDbStoreImpl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !self->leading_ && self->unsynced_.empty() && !self->syncing_;
  }

  // A committer thread: leads the groups whose front commit is asynchronous
  // and takes the sync role when it is due. There are two, so that one can
  // write the next group while the other fsyncs; each is woken about once
  // per group, not per commit.
  void CommitterLoop() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      mu_.Await(absl::Condition(&CommitterMayProceed, this));
      if (SyncTurn(this)) {
        SyncRoundLocked();
      } else if (!writers_.empty() && writers_.front()->async &&
                 LeaderMayStart(this)) {
        LeadOneGroupLocked();
      } else {
        return;  // Stopping and drained.
      }
    }
  }

  // The sync role (with sync on): makes the written groups durable with one
  // WAL fsync (DB::SyncWAL, which covers everything written before it) and
  // answers their commits in order. Called when SyncTurn.
  void SyncRoundLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<Group> batch;
    batch.swap(unsynced_);
    syncing_ = true;
    last_sync_commits_ = 0;
    for (const Group& g : batch) last_sync_commits_ += g.writers.size();
    const uint64_t failed_generation = failed_generation_;
    mu_.Unlock();
    const bool synced = SyncBatch(batch, failed_generation);
    mu_.Lock();
    if (!synced) {
      // Every group written after a failed fsync was checked against the
      // failed groups' writes: it fails too, until the database recovers.
      for (const Group& g : batch) {
        failed_generation_ = std::max(failed_generation_, g.generation);
      }
    }
    // Still "syncing" while the answers run: a later group that wrote
    // nothing is answered directly only when every earlier one has been.
    AnswerLocked(batch);
    syncing_ = false;
    drain_to_ = enqueued_;
  }

  void StopThreads() ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::thread> committers;
    {
      absl::MutexLock lock(&mu_);
      threads_stop_ = true;
      committers.swap(committers_);
    }
    for (std::thread& t : committers) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();  // Close() from a commit callback: the loop ends itself.
      } else {
        t.join();
      }
    }
  }

  // Takes the queued commits from the front (up to the group limits), checks
  // and writes them as one group without holding mu_, then answers them, or,
  // with sync on, leaves the group for the next fsync (unsynced_). Called
  // with mu_ held, when LeaderMayStart, by the thread whose commit is at the
  // front or by a committer thread.
  void LeadOneGroupLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    leading_ = true;
    Group group;
    size_t group_bytes = 0;
    while (!writers_.empty()) {
      Writer* next = writers_.front();
      if (!group.writers.empty() &&
          (group.writers.size() >= options_.max_group_commits ||
           group_bytes + next->bytes > options_.max_group_bytes)) {
        break;
      }
      group.writers.push_back(next);
      group_bytes += next->bytes;
      taken_ = next->seq;
      writers_.pop_front();
    }
    group.id = ++last_group_id_;
    const uint64_t base_revision = revision_;
    const bool closing = closing_;

    // Only the leader checks and writes, so the group can be checked and
    // written without mu_: other commits keep queueing meanwhile.
    mu_.Unlock();
    groups_.fetch_add(1, std::memory_order_relaxed);
    if (closing) {
      const absl::Status closed = ClosedError();
      for (Writer* w : group.writers) w->result = closed;
      group.revision = base_revision;
    } else {
      RunGroup(&group, base_revision, group_bytes);
    }
    mu_.Lock();

    revision_ = std::max(revision_, group.revision);
    leading_ = false;
    // Answered now: without sync (written = acknowledged), a group that
    // failed as a whole, or one that wrote nothing while nothing before it
    // awaits an fsync. Everything else waits for the next fsync, in order.
    const bool failed = closing || (!group.wrote && AllFailed(group));
    if (!options_.sync || failed ||
        (!group.wrote && unsynced_.empty() && !syncing_ &&
         group.generation > failed_generation_)) {
      std::vector<Group> one;
      one.push_back(std::move(group));
      AnswerLocked(one);
      return;
    }
    unsynced_.push_back(std::move(group));
  }

  // True when no commit of `group` succeeded or conflicted: it failed as a
  // whole (closed store, failed write), so its answers need no order.
  static bool AllFailed(const Group& group) {
    for (const Writer* w : group.writers) {
      if (w->result.ok() || IsConflict(w->result.status())) return false;
    }
    return true;
  }

  // Answers every commit of `groups`: wakes the synchronous ones, runs the
  // callbacks of the asynchronous ones (without mu_).
  void AnswerLocked(std::vector<Group>& groups)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<AsyncWriter*> callbacks;
    for (Group& g : groups) {
      for (Writer* w : g.writers) {
        if (w->result.ok()) {
          durable_revision_ = std::max(durable_revision_, *w->result);
        }
        if (w->async) {
          callbacks.push_back(static_cast<AsyncWriter*>(w));
        } else {
          w->done = true;
        }
      }
    }
    if (callbacks.empty()) return;
    mu_.Unlock();
    const RocksDbStoreImpl* outer = answering_store;
    answering_store = this;
    for (AsyncWriter* a : callbacks) FinishAsync(a);
    answering_store = outer;
    mu_.Lock();
  }

  // Checks, merges and writes one group; sets every writer's result and the
  // group's revision (base_revision if nothing was written), generation and
  // `wrote`. With sync on the batch is written without an fsync and a
  // snapshot of the state after it is kept, to publish once it is durable.
  void RunGroup(Group* group, uint64_t base_revision, size_t group_bytes)
      ABSL_LOCKS_EXCLUDED(mu_, db_mu_) {
    group->revision = base_revision;
    absl::Status health = Recover(&group->revision);
    if (!health.ok()) {
      for (Writer* w : group->writers) w->result = health;
      return;
    }
    base_revision = group->revision;

    absl::ReaderMutexLock db_lock(&db_mu_);
    group->generation = generation_;
    if (db_ == nullptr) {
      absl::Status s = NotOpenLocked();
      for (Writer* w : group->writers) w->result = s;
      return;
    }

    // Versions written by commits accepted earlier in this group (0:
    // deleted) shadow the database for the conditions of later commits. The
    // keys point into the commits' own writes, which outlive the group.
    absl::flat_hash_map<std::string_view, uint64_t> overlay;
    const bool needs_overlay = group->writers.size() > 1;
    std::vector<GroupWrite> accepted;
    uint64_t revision = base_revision;
    for (Writer* w : group->writers) {
      absl::Status check = CheckConditions(*w->conditions, overlay);
      if (!check.ok()) {
        w->result = std::move(check);
        continue;
      }
      if (w->writes->empty()) {
        w->result = revision;
        continue;
      }
      ++revision;
      for (const Write& write : *w->writes) {
        accepted.push_back(
            {&write, revision, static_cast<uint32_t>(accepted.size())});
        if (needs_overlay) {
          overlay[write.key] =
              write.kind == Write::Kind::kPut ? revision : uint64_t{0};
        }
      }
      w->result = revision;
    }
    if (revision == base_revision) return;

    // In key order, and only the last write of a key: RocksDB inserts a
    // batch into the memtable (a skip list) record by record, and a record
    // next to the previous one is found from the previous insert's position
    // instead of from the top, so sorted keys with a common prefix (the
    // framework's time-ordered index entries, one client's records) are
    // cheap to insert. A key written twice in one group is read by nobody in
    // between (reads see whole groups), so its first write is dropped. Equal
    // keys stay in commit order (the position breaks ties).
    std::sort(accepted.begin(), accepted.end(),
              [](const GroupWrite& a, const GroupWrite& b) {
                const int c = a.write->key.compare(b.write->key);
                return c != 0 ? c < 0 : a.position < b.position;
              });
    // Each record: a tag, the column family, two lengths (varints) and the
    // key and value; plus the header and the revision record.
    rocksdb::WriteBatch batch(group_bytes + 16 * accepted.size() + 64);
    char version[kVersionBytes];
    for (size_t i = 0; i < accepted.size(); ++i) {
      const Write& write = *accepted[i].write;
      if (i + 1 < accepted.size() && accepted[i + 1].write->key == write.key) {
        continue;  // A later commit of the group writes it again.
      }
      const rocksdb::Slice key(write.key);
      if (write.kind == Write::Kind::kPut) {
        // Version and value as two parts: one copy, into the batch.
        EncodeFixed64To(accepted[i].revision, version);
        const rocksdb::Slice parts[2] = {rocksdb::Slice(version, kVersionBytes),
                                         rocksdb::Slice(write.value)};
        batch.Put(data_cf_, rocksdb::SliceParts(&key, 1),
                  rocksdb::SliceParts(parts, 2));
      } else {
        batch.Delete(data_cf_, key);
      }
    }

    EncodeFixed64To(revision, version);
    batch.Put(meta_cf_, kRevisionKey, rocksdb::Slice(version, kVersionBytes));
    // Never an fsync here: with sync on, the sync role makes the batch
    // durable (SyncWAL), while the next group may be checked and written.
    rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
    batches_written_.fetch_add(1, std::memory_order_relaxed);
    if (!s.ok()) {
      // The batch is atomic: none of the group's commits was applied, so each
      // one fails, also those that only checked conditions against it.
      absl::Status failed = FromRocksDb(s, "commit (nothing was written)");
      if (!needs_recovery_.exchange(true)) {
        spdlog::error("rocksdb store {}: {}", options_.path,
                      failed.ToString());
      }
      for (Writer* w : group->writers) w->result = failed;
      return;
    }
    group->revision = revision;
    group->wrote = true;
    if (options_.sync) {
      // The state after this group, which reads see once it is durable.
      // Taken before the next group is written (only the leader writes).
      const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
      absl::MutexLock lock(&snap_mu_);
      pending_snapshots_.emplace_back(group->id, snapshot);
    }
  }

  // Makes the groups of `batch` durable, in order: one SyncWAL when any of
  // them wrote. On success publishes the state after the last one to
  // readers; otherwise sets every success in the batch to the error. A group
  // checked against a database that failed an fsync (generation <=
  // failed_generation) or that was closed since fails too. Returns false when
  // the batch failed.
  bool SyncBatch(std::vector<Group>& batch, uint64_t failed_generation)
      ABSL_LOCKS_EXCLUDED(mu_, db_mu_) {
    absl::ReaderMutexLock db_lock(&db_mu_);
    absl::Status failure;
    uint64_t last_written = 0;
    for (const Group& g : batch) {
      if (g.generation <= failed_generation || g.generation != generation_) {
        failure = absl::UnavailableError(absl::StrCat(
            "rocksdb store ", options_.path,
            ": commit not acknowledged: an earlier WAL fsync failed or the "
            "store was reopened (the commit may or may not be on disk)"));
      }
      if (g.wrote) last_written = g.id;
    }
    if (db_ == nullptr) failure = NotOpenLocked();
    if (failure.ok() && last_written != 0) {
      rocksdb::Status s = db_->SyncWAL();
      wal_syncs_.fetch_add(1, std::memory_order_relaxed);
      if (!s.ok()) {
        failure = FromRocksDb(
            s, "commit (WAL fsync failed; it may or may not be on disk)");
        if (!needs_recovery_.exchange(true)) {
          spdlog::error("rocksdb store {}: {}", options_.path,
                        failure.ToString());
        }
      }
    }
    if (db_ != nullptr && last_written != 0) {
      absl::MutexLock lock(&snap_mu_);
      while (!pending_snapshots_.empty() &&
             pending_snapshots_.front().first <= last_written) {
        const auto [id, snapshot] = pending_snapshots_.front();
        pending_snapshots_.pop_front();
        if (failure.ok() && id == last_written) {
          durable_ = std::make_shared<const SnapshotRef>(db_.get(), snapshot);
        } else {
          db_->ReleaseSnapshot(snapshot);
        }
      }
    }
    if (failure.ok()) return true;
    for (Group& g : batch) {
      for (Writer* w : g.writers) {
        if (w->result.ok()) w->result = failure;
      }
    }
    return false;
  }

  // OK when every condition holds against the latest state (every group
  // written so far, durable or not) as shadowed by `overlay`; otherwise the
  // conflict (or the read error).
  absl::Status CheckConditions(
      const std::vector<Condition>& conditions,
      const absl::flat_hash_map<std::string_view, uint64_t>& overlay)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    for (const Condition& c : conditions) {
      uint64_t version = 0;
      auto it = overlay.find(c.key);
      if (it != overlay.end()) {
        version = it->second;
      } else {
        rocksdb::PinnableSlice stored;
        rocksdb::Status s =
            db_->Get(rocksdb::ReadOptions(), data_cf_, c.key, &stored);
        if (!s.ok() && !s.IsNotFound()) return FromRocksDb(s, "commit read");
        if (s.ok()) {
          absl::StatusOr<uint64_t> v = DecodeVersion(c.key, stored.ToStringView());
          if (!v.ok()) return v.status();
          version = *v;
        }
      }
      if (version != c.expected_version) return ConflictError(c.key);
    }
    return absl::OkStatus();
  }

  // Called by the leader only, before a group, after a write or an fsync
  // failed (then no group waits for an fsync: see LeaderMayStart): tries
  // DB::Resume() (clears a recoverable background error such as a full
  // disk), then a close and reopen (needed after errors RocksDB treats as
  // fatal, e.g. a failed WAL write). On success raises *revision to what the
  // database holds (a failed fsync may still have persisted its batch).
  absl::Status Recover(uint64_t* revision) ABSL_LOCKS_EXCLUDED(db_mu_) {
    if (!needs_recovery_.load()) return absl::OkStatus();
    absl::WriterMutexLock db_lock(&db_mu_);
    if (closed_) return NotOpenLocked();
    if (db_ != nullptr) {
      rocksdb::Status s = db_->Resume();
      if (s.ok()) {
        absl::StatusOr<uint64_t> stored = ReadRevisionLocked();
        if (stored.ok()) {
          *revision = std::max(*revision, *stored);
          ++generation_;
          return RecoveredLocked("resumed");
        }
      }
      spdlog::warn("rocksdb store {}: resume failed ({}); reopening",
                   options_.path, s.ToString());
    }
    CloseDbLocked();
    absl::Status s = OpenDbLocked();
    if (!s.ok()) {
      reopen_error_ = s;
      return s;
    }
    *revision = std::max(*revision, loaded_revision_);
    return RecoveredLocked("reopened");
  }

  absl::Status RecoveredLocked(std::string_view how)
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    needs_recovery_.store(false);
    spdlog::info("rocksdb store {}: {} after a write error", options_.path,
                 how);
    recoveries_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> ReadRevisionLocked()
      ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    std::string stored;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), meta_cf_, kRevisionKey, &stored);
    if (s.IsNotFound()) return uint64_t{0};
    if (!s.ok()) return FromRocksDb(s, "read revision");
    if (stored.size() != kVersionBytes) {
      return absl::DataLossError("stored revision has a bad size");
    }
    return DecodeFixed64(stored);
  }

  absl::Status OpenDbLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_) {
    rocksdb::Options options;
    options.create_if_missing = options_.create_if_missing;
    options.create_missing_column_families = true;
    if (env_ != nullptr) options.env = env_;
    options.write_buffer_size = options_.write_buffer_bytes;
    options.max_background_jobs = 2;
    options.info_log = std::make_shared<SpdlogRocksDbLogger>();
    // Most point reads miss: a request's completion record is looked up
    // before it exists, and a commit's "record absent" condition is checked
    // again by the group leader, which is the serial part of group commit.
    // A memtable bloom filter answers those misses without a skip-list
    // search, and SST bloom filters without reading blocks.
    options.memtable_prefix_bloom_size_ratio = 0.05;
    options.memtable_whole_key_filtering = true;
    options.memtable_insert_with_hint_prefix_extractor =
        std::make_shared<ReservedKeyFamilies>();
    rocksdb::BlockBasedTableOptions table_options;
    table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    // Debian's RocksDB is built without SSE4.2, so its CRC32C is computed in
    // software; XXH3 is fast without it (flushes and compactions checksum
    // every block). Files written with CRC32C before still read: the type is
    // recorded per file. The WAL's record checksum is CRC32C in every
    // RocksDB version and cannot be chosen.
    table_options.checksum = rocksdb::kXXH3;
    options.table_factory.reset(
        rocksdb::NewBlockBasedTableFactory(table_options));

    if (options_.create_if_missing) {
      // Made here rather than by RocksDB, which logs a misleading error for a
      // missing directory on every first open.
      std::error_code ec;
      std::filesystem::create_directory(options_.path, ec);
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName,
         rocksdb::ColumnFamilyOptions(options)},
        {kMetaColumnFamily, rocksdb::ColumnFamilyOptions(options)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(options),
                                          options_.path, families, &handles,
                                          &db);
    if (!s.ok()) {
      return FromRocksDb(s, absl::StrCat("open ", options_.path));
    }
    db_.reset(db);
    data_cf_ = handles[0];
    meta_cf_ = handles[1];
    ++generation_;

    std::string format;
    s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kFormatKey, &format);
    absl::Status checked;
    if (s.IsNotFound()) {
      // A new store, or one created by a crash between RocksDB's creation and
      // the format's write; either way nothing of ours is in it yet.
      rocksdb::WriteOptions write_options;
      write_options.sync = options_.sync;
      checked = FromRocksDb(
          db_->Put(write_options, meta_cf_, kFormatKey, kFormat),
          absl::StrCat("initialize ", options_.path));
    } else if (!s.ok()) {
      checked = FromRocksDb(s, absl::StrCat("open ", options_.path));
    } else if (format != kFormat) {
      checked = absl::FailedPreconditionError(
          absl::StrCat(options_.path, " holds format \"",
                       absl::CHexEscape(format), "\", expected \"", kFormat,
                       "\""));
    }
    absl::StatusOr<uint64_t> revision = uint64_t{0};
    if (checked.ok()) revision = ReadRevisionLocked();
    if (!revision.ok()) checked = revision.status();
    if (!checked.ok()) {
      CloseDbLocked();
      return checked;
    }
    loaded_revision_ = *revision;
    if (options_.sync) {
      // Everything in the database now is durable (replayed from the WAL or
      // synced on open); reads stay at this state until the next durable
      // group is published, whatever is written meanwhile.
      absl::MutexLock lock(&snap_mu_);
      durable_ = std::make_shared<const SnapshotRef>(db_.get(),
                                                     db_->GetSnapshot());
    }
    spdlog::info("rocksdb store {}: open at revision {}", options_.path,
                 loaded_revision_);
    return absl::OkStatus();
  }

  void CloseDbLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_) {
    if (db_ == nullptr) return;
    {
      // RocksDB refuses to close with snapshots held. No reader holds one
      // (readers hold db_mu_); groups still waiting for their fsync fail
      // (their generation is gone).
      absl::MutexLock lock(&snap_mu_);
      durable_.reset();
      for (const auto& [id, snapshot] : pending_snapshots_) {
        db_->ReleaseSnapshot(snapshot);
      }
      pending_snapshots_.clear();
    }
    for (rocksdb::ColumnFamilyHandle* h : {data_cf_, meta_cf_}) {
      rocksdb::Status s = db_->DestroyColumnFamilyHandle(h);
      if (!s.ok()) spdlog::warn("rocksdb store: {}", s.ToString());
    }
    data_cf_ = meta_cf_ = nullptr;
    rocksdb::Status s = db_->Close();
    if (!s.ok()) {
      spdlog::warn("rocksdb store {}: close: {}", options_.path, s.ToString());
    }
    db_.reset();
    ++generation_;
  }

  const RocksDbOptions options_;
  rocksdb::Env* const env_;

  // Guards the database handle. Readers (Get, Scan, a group's leader, the
  // sync role) share it; Close() and recovery take it exclusively.
  mutable absl::Mutex db_mu_ ABSL_ACQUIRED_BEFORE(snap_mu_);
  std::unique_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  rocksdb::ColumnFamilyHandle* data_cf_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  bool closed_ ABSL_GUARDED_BY(db_mu_) = false;
  absl::Status reopen_error_ ABSL_GUARDED_BY(db_mu_);
  // The revision read by the last OpenDbLocked().
  uint64_t loaded_revision_ ABSL_GUARDED_BY(db_mu_) = 0;
  // Changes with every open, close and Resume(): a group checked against an
  // older generation is never acknowledged.
  uint64_t generation_ ABSL_GUARDED_BY(db_mu_) = 0;

  // Snapshots of the database (taken with db_mu_ held, shared suffices):
  // one per group written and not yet durable, oldest first, and the one
  // readers use. Reads never see a commit before it is durable.
  mutable absl::Mutex snap_mu_;
  std::deque<std::pair<uint64_t, const rocksdb::Snapshot*>> pending_snapshots_
      ABSL_GUARDED_BY(snap_mu_);
  std::shared_ptr<const SnapshotRef> durable_ ABSL_GUARDED_BY(snap_mu_);

  // Set by a failed write or fsync, cleared by Recover(); read without locks.
  std::atomic<bool> needs_recovery_{false};

  // Guards the commit queue and the groups in flight. Never held together
  // with db_mu_.
  mutable absl::Mutex mu_;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  // The revision after the last group written (the next group's base), and
  // after the last one acknowledged.
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_group_id_ ABSL_GUARDED_BY(mu_) = 0;
  // A thread is checking and writing a group (at most one at a time).
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  // Written groups waiting for their fsync, in order; a thread holds the
  // sync role (fsyncing, then answering a batch of them).
  std::vector<Group> unsynced_ ABSL_GUARDED_BY(mu_);
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  // Commits in the current (or last) fsync's batch.
  size_t last_sync_commits_ ABSL_GUARDED_BY(mu_) = 0;
  // Commits ever queued; the queue position of the last one taken into a
  // group; enqueued_ when the last fsync's answers ended.
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t drain_to_ ABSL_GUARDED_BY(mu_) = 0;
  // The newest database generation in which an fsync failed (0: none).
  uint64_t failed_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // The committer threads (see CommitterLoop), started by the first
  // CommitAsync.
  static constexpr size_t kCommitters = 2;
  std::vector<std::thread> committers_ ABSL_GUARDED_BY(mu_);
  bool threads_stop_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> commits_ok_{0};
  std::atomic<uint64_t> commits_conflict_{0};
  std::atomic<uint64_t> commits_failed_{0};
  std::atomic<uint64_t> groups_{0};
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> wal_syncs_{0};
  std::atomic<uint64_t> recoveries_{0};
};

}  // namespace

namespace rocksdb_internal {

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenRocksDbOnEnv(
    const RocksDbOptions& options, rocksdb::Env* env) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("RocksDbOptions.path is empty");
  }
  if (options.max_group_commits == 0 || options.max_group_bytes == 0) {
    return absl::InvalidArgumentError(
        "RocksDbOptions.max_group_commits and max_group_bytes must be > 0");
  }
  auto store = std::make_unique<RocksDbStoreImpl>(options, env);
  absl::Status s = store->Open();
  if (!s.ok()) return s;
  return std::unique_ptr<RocksDbStore>(std::move(store));
}

}  // namespace rocksdb_internal

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenRocksDb(
    const RocksDbOptions& options) {
  return rocksdb_internal::OpenRocksDbOnEnv(options, nullptr);
}

absl::StatusOr<std::unique_ptr<StableStore>> OpenRocksDbStore(
    const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = OpenRocksDb(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<StableStore>(std::move(*store));
}

}  // namespace baton::storage
