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
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
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
std::string EncodeFixed64(uint64_t v) {
  std::string out(kVersionBytes, '\0');
  for (size_t i = 0; i < kVersionBytes; ++i) {
    out[kVersionBytes - 1 - i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t DecodeFixed64(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < kVersionBytes; ++i) {
    v = (v << 8) | static_cast<unsigned char>(in[i]);
  }
  return v;
}

// A stored value: 8-byte big-endian version, then the value's bytes.
std::string EncodeValue(uint64_t version, std::string_view value) {
  std::string out = EncodeFixed64(version);
  out.append(value);
  return out;
}

absl::StatusOr<Versioned> DecodeValue(std::string_view key,
                                      std::string_view stored) {
  if (stored.size() < kVersionBytes) {
    return absl::DataLossError(
        absl::StrCat("stored value of key \"", absl::CHexEscape(ToAbsl(key)),
                     "\" is shorter than its version (", stored.size(),
                     " bytes)"));
  }
  Versioned v;
  v.version = DecodeFixed64(stored);
  if (v.version == 0) {
    return absl::DataLossError(absl::StrCat(
        "stored value of key \"", absl::CHexEscape(ToAbsl(key)), "\" has version 0"));
  }
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

class RocksDbStoreImpl final : public RocksDbStore {
 public:
  explicit RocksDbStoreImpl(RocksDbOptions options)
      : options_(std::move(options)) {}

  ~RocksDbStoreImpl() override {
    absl::Status s = Close();
    if (!s.ok()) spdlog::warn("rocksdb store: close: {}", s.ToString());
    StopCommitter();
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
    revision_ = revision;
    return absl::OkStatus();
  }

  absl::StatusOr<Versioned> Get(std::string_view key) override {
    if (key.size() > options_.max_key_bytes) return KeyTooLarge(key);
    absl::ReaderMutexLock db_lock(&db_mu_);
    if (db_ == nullptr) return NotOpenLocked();
    rocksdb::PinnableSlice stored;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), data_cf_,
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

    // Bounding the iterator lets RocksDB skip deleted keys beyond the prefix.
    const std::string upper = PrefixSuccessor(options.prefix);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions read_options;
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
      if (!committer_stop_) {
        if (!committer_.joinable()) {
          committer_ = std::thread([this] { CommitterLoop(); });
        }
        writers_.push_back(w);
        // The committer waits on a condition over writers_ and leading_,
        // evaluated by this unlock: no explicit signal, and no wake-up at
        // all while the committer is busy writing the previous group.
        return;
      }
    }
    // Closed: the committer is gone (or going); answer here.
    w->result = absl::UnavailableError(
        absl::StrCat("rocksdb store ", options_.path, " is closed"));
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
      absl::WriterMutexLock db_lock(&db_mu_);
      if (closed_) return absl::OkStatus();
      closed_ = true;
      CloseDbLocked();
    }
    // Queued asynchronous commits fail with kUnavailable (RunGroup sees the
    // closed database); then the committer thread exits.
    StopCommitter();
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
        {"wal_syncs", static_cast<double>(st.batches_written),
         "Write batches written (one WAL fsync each when sync is on).", true},
        {"recoveries", static_cast<double>(st.recoveries),
         "Recoveries after a write error.", true},
    };
  }

  RocksDbStoreStats Stats() const override {
    absl::MutexLock lock(&stats_mu_);
    return stats_;
  }

  uint64_t CurrentRevision() const override {
    absl::MutexLock lock(&mu_);
    return revision_;
  }

 private:
  // One Commit() (or Ping()) waiting in the queue. Lives on its caller's
  // stack; the fields below `bytes` are written by the leader of its group.
  struct Writer {
    Writer(const std::vector<Condition>* c, const std::vector<Write>* w,
           size_t b)
        : conditions(c), writes(w), bytes(b) {}
    virtual ~Writer() = default;
    const std::vector<Condition>* conditions;
    const std::vector<Write>* writes;
    size_t bytes;
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

  absl::Status NotOpenLocked() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    if (closed_) {
      return absl::UnavailableError(
          absl::StrCat("rocksdb store ", options_.path, " is closed"));
    }
    return absl::UnavailableError(
        absl::StrCat("rocksdb store ", options_.path,
                     " is not open (reopen after an error failed: ",
                     reopen_error_.ToString(), ")"));
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
    absl::MutexLock lock(&stats_mu_);
    if (s.ok()) {
      ++stats_.commits_ok;
    } else if (IsConflict(s)) {
      ++stats_.commits_conflict;
    } else {
      ++stats_.commits_failed;
    }
  }

  // Queues `w`; returns its result once a leader (maybe this thread) has
  // processed it. Modeled on LevelDB's DBImpl::Write; the leader is the
  // thread of the commit at the queue's front, or the committer thread when
  // the front is an asynchronous commit (which has no thread of its own).
  absl::StatusOr<uint64_t> RunInQueue(Writer* w) {
    absl::MutexLock lock(&mu_);
    writers_.push_back(w);
    WaitArgs args{this, w};
    mu_.Await(absl::Condition(&MayProceed, &args));
    if (w->done) return std::move(w->result);
    LeadOneGroupLocked();
    return std::move(w->result);
  }

  // RunInQueue's wait: done, or at the front with no group being written.
  // Evaluated by absl::Mutex with mu_ held.
  struct WaitArgs {
    RocksDbStoreImpl* self;
    Writer* w;
  };
  static bool MayProceed(WaitArgs* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return a->w->done ||
           (!a->self->leading_ && a->self->writers_.front() == a->w);
  }
  static bool CommitterMayProceed(RocksDbStoreImpl* self)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return (self->committer_stop_ && self->writers_.empty()) ||
           (!self->leading_ && !self->writers_.empty() &&
            self->writers_.front()->async);
  }

  // The committer thread: leads the groups whose front commit is
  // asynchronous. While it writes a group (fsync), new commits queue up and
  // form the next group, so it never needs waking per commit.
  void CommitterLoop() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      mu_.Await(absl::Condition(&CommitterMayProceed, this));
      if (writers_.empty()) return;  // Stopping and drained.
      LeadOneGroupLocked();
    }
  }

  void StopCommitter() ABSL_LOCKS_EXCLUDED(mu_) {
    std::thread t;
    {
      absl::MutexLock lock(&mu_);
      committer_stop_ = true;
      t = std::move(committer_);
    }
    if (t.joinable()) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();  // Close() from a commit callback: the loop ends itself.
      } else {
        t.join();
      }
    }
  }

  // Takes the queued commits from the front (up to the group limits), writes
  // them as one group without holding mu_, marks them done and runs the
  // callbacks of asynchronous ones (without mu_). Called with mu_ held, by
  // the thread whose commit is at the front or by the committer thread.
  void LeadOneGroupLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    leading_ = true;
    std::vector<Writer*> group;
    size_t group_bytes = 0;
    for (Writer* next : writers_) {
      if (!group.empty() &&
          (group.size() >= options_.max_group_commits ||
           group_bytes + next->bytes > options_.max_group_bytes)) {
        break;
      }
      group.push_back(next);
      group_bytes += next->bytes;
    }
    const uint64_t base_revision = revision_;

    // Only the leader writes, so the group can be checked and written
    // without mu_: other commits keep queueing meanwhile.
    mu_.Unlock();
    const uint64_t new_revision = RunGroup(group, base_revision);
    mu_.Lock();

    revision_ = new_revision;
    std::vector<AsyncWriter*> callbacks;
    for (Writer* done : group) {
      writers_.pop_front();
      if (done->async) {
        callbacks.push_back(static_cast<AsyncWriter*>(done));
      } else {
        done->done = true;
      }
    }
    leading_ = false;
    if (!callbacks.empty()) {
      mu_.Unlock();
      for (AsyncWriter* a : callbacks) FinishAsync(a);
      mu_.Lock();
    }
  }

  // Checks, merges and writes one group; sets every writer's result. Returns
  // the store's revision afterwards (base_revision if nothing was written).
  uint64_t RunGroup(const std::vector<Writer*>& group, uint64_t base_revision)
      ABSL_LOCKS_EXCLUDED(mu_, db_mu_) {
    {
      absl::MutexLock lock(&stats_mu_);
      ++stats_.groups;
    }
    absl::Status health = Recover(&base_revision);
    if (!health.ok()) {
      for (Writer* w : group) w->result = health;
      return base_revision;
    }

    absl::ReaderMutexLock db_lock(&db_mu_);
    if (db_ == nullptr) {
      absl::Status s = NotOpenLocked();
      for (Writer* w : group) w->result = s;
      return base_revision;
    }

    // Versions written by commits accepted earlier in this group (0: deleted)
    // shadow the committed state for the conditions of later commits.
    absl::flat_hash_map<std::string, uint64_t> overlay;
    rocksdb::WriteBatch batch;
    uint64_t revision = base_revision;
    for (Writer* w : group) {
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
        rocksdb::Slice key(write.key);
        if (write.kind == Write::Kind::kPut) {
          std::string stored = EncodeValue(revision, write.value);
          batch.Put(data_cf_, key, stored);
          overlay[write.key] = revision;
        } else {
          batch.Delete(data_cf_, key);
          overlay[write.key] = 0;
        }
      }
      w->result = revision;
    }
    if (revision == base_revision) return base_revision;

    batch.Put(meta_cf_, kRevisionKey, EncodeFixed64(revision));
    rocksdb::WriteOptions write_options;
    write_options.sync = options_.sync;
    rocksdb::Status s = db_->Write(write_options, &batch);
    {
      absl::MutexLock lock(&stats_mu_);
      ++stats_.batches_written;
    }
    if (!s.ok()) {
      // The batch is atomic: none of the group's commits was applied, so each
      // one fails, also those that only checked conditions against it.
      absl::Status failed = FromRocksDb(s, "commit (nothing was written)");
      if (!needs_recovery_.exchange(true)) {
        spdlog::error("rocksdb store {}: {}", options_.path,
                      failed.ToString());
      }
      for (Writer* w : group) w->result = failed;
      return base_revision;
    }
    return revision;
  }

  // OK when every condition holds against the committed state as shadowed
  // by `overlay`; otherwise the conflict (or the read error).
  absl::Status CheckConditions(
      const std::vector<Condition>& conditions,
      const absl::flat_hash_map<std::string, uint64_t>& overlay)
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
          absl::StatusOr<Versioned> v =
              DecodeValue(c.key, stored.ToStringView());
          if (!v.ok()) return v.status();
          version = v->version;
        }
      }
      if (version != c.expected_version) return ConflictError(c.key);
    }
    return absl::OkStatus();
  }

  // Called by the leader only, before a group, after a write failed: tries
  // DB::Resume() (clears a recoverable background error such as a full
  // disk), then a close and reopen (needed after errors RocksDB treats as
  // fatal, e.g. a failed WAL write). On success raises *revision to what the
  // database holds (a failed fsync may still have persisted its batch).
  absl::Status Recover(uint64_t* revision) ABSL_LOCKS_EXCLUDED(db_mu_) {
    if (!needs_recovery_.load()) return absl::OkStatus();
    {
      absl::ReaderMutexLock db_lock(&db_mu_);
      if (closed_) return NotOpenLocked();
      if (db_ != nullptr) {
        rocksdb::Status s = db_->Resume();
        if (s.ok()) {
          absl::StatusOr<uint64_t> stored = ReadRevisionLocked();
          if (stored.ok()) {
            *revision = std::max(*revision, *stored);
            return RecoveredLocked("resumed");
          }
        }
        spdlog::warn("rocksdb store {}: resume failed ({}); reopening",
                     options_.path, s.ToString());
      }
    }
    absl::WriterMutexLock db_lock(&db_mu_);
    if (closed_) return NotOpenLocked();
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
    absl::MutexLock lock(&stats_mu_);
    ++stats_.recoveries;
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
    rocksdb::BlockBasedTableOptions table_options;
    table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
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
    spdlog::info("rocksdb store {}: open at revision {}", options_.path,
                 loaded_revision_);
    return absl::OkStatus();
  }

  void CloseDbLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_) {
    if (db_ == nullptr) return;
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
  }

  const RocksDbOptions options_;

  // Guards the database handle. Readers (Get, Scan, a group's leader) share
  // it; Close() and a reopen take it exclusively.
  mutable absl::Mutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  rocksdb::ColumnFamilyHandle* data_cf_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  bool closed_ ABSL_GUARDED_BY(db_mu_) = false;
  absl::Status reopen_error_ ABSL_GUARDED_BY(db_mu_);
  // The revision read by the last OpenDbLocked().
  uint64_t loaded_revision_ ABSL_GUARDED_BY(db_mu_) = 0;

  // Set by a failed write, cleared by Recover(); read without locks by Ping.
  std::atomic<bool> needs_recovery_{false};

  // Guards the commit queue. Never held together with db_mu_.
  mutable absl::Mutex mu_;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // A thread is writing a group (at most one at a time).
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  // Leads groups whose front commit is asynchronous; started by the first
  // CommitAsync().
  std::thread committer_ ABSL_GUARDED_BY(mu_);
  bool committer_stop_ ABSL_GUARDED_BY(mu_) = false;

  mutable absl::Mutex stats_mu_;
  RocksDbStoreStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenRocksDb(
    const RocksDbOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("RocksDbOptions.path is empty");
  }
  if (options.max_group_commits == 0 || options.max_group_bytes == 0) {
    return absl::InvalidArgumentError(
        "RocksDbOptions.max_group_commits and max_group_bytes must be > 0");
  }
  auto store = std::make_unique<RocksDbStoreImpl>(options);
  absl::Status s = store->Open();
  if (!s.ok()) return s;
  return std::unique_ptr<RocksDbStore>(std::move(store));
}

absl::StatusOr<std::unique_ptr<StableStore>> OpenRocksDbStore(
    const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = OpenRocksDb(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<StableStore>(std::move(*store));
}

}  // namespace baton::storage
