// Helpers shared by the RocksDB store's tests: a temporary directory, and a
// rocksdb::FileSystem wrapper through which a test sees and steers the
// store's WAL files (hold or fail an fsync, record how much of each WAL was
// synced, to simulate a power loss afterwards).
#ifndef BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_
#define BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_

#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace baton::storage::testing {

// A directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "baton-storage-XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// RocksDB's WAL files are <number>.log.
inline bool IsWalFile(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0;
}

// What happens to WAL files, decided by the test. Thread-safe: RocksDB's
// threads call the On* hooks.
class WalHooks {
 public:
  virtual ~WalHooks() = default;
  // A WAL file was created; returns a handle passed to the other hooks.
  virtual int OnCreate(const std::string& name) {
    (void)name;
    return 0;
  }
  // `bytes` more were handed to the file (the OS's page cache).
  virtual void OnAppend(int file, uint64_t bytes) {
    (void)file;
    (void)bytes;
  }
  // Before an fsync of the file: a non-OK status fails it without syncing.
  virtual rocksdb::IOStatus BeforeSync(int file) {
    (void)file;
    return rocksdb::IOStatus::OK();
  }
  // After an fsync that succeeded.
  virtual void AfterSync(int file) { (void)file; }
};

// A WAL file whose appends and fsyncs go through WalHooks.
class HookedWalFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  HookedWalFile(std::unique_ptr<rocksdb::FSWritableFile> file, WalHooks* hooks,
                int id)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(file)),
        hooks_(hooks),
        id_(id) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) hooks_->OnAppend(id_, data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) hooks_->OnAppend(id_, data.size());
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    return HookedSync([&] { return target()->Sync(options, dbg); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return HookedSync([&] { return target()->Fsync(options, dbg); });
  }

 private:
  template <class SyncFn>
  rocksdb::IOStatus HookedSync(SyncFn sync) {
    rocksdb::IOStatus s = hooks_->BeforeSync(id_);
    if (!s.ok()) return s;
    s = sync();
    if (s.ok()) hooks_->AfterSync(id_);
    return s;
  }

  WalHooks* const hooks_;
  const int id_;
};

// The default file system, with WAL files wrapped in HookedWalFile.
class HookedFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit HookedFileSystem(WalHooks* hooks)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
        hooks_(hooks) {}

  const char* Name() const override { return "HookedFileSystem"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    return Wrap(name, target()->NewWritableFile(name, options, result, dbg),
                result);
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    return Wrap(name, target()->ReopenWritableFile(name, options, result, dbg),
                result);
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& name, const std::string& old_name,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    return Wrap(name,
                target()->ReuseWritableFile(name, old_name, options, result,
                                            dbg),
                result);
  }

 private:
  rocksdb::IOStatus Wrap(const std::string& name, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (s.ok() && IsWalFile(name)) {
      const int id = hooks_->OnCreate(name);
      *result = std::make_unique<HookedWalFile>(std::move(*result), hooks_, id);
    }
    return s;
  }

  WalHooks* const hooks_;
};

// An Env whose file system is HookedFileSystem over `hooks` (which must
// outlive it).
inline std::unique_ptr<rocksdb::Env> NewHookedEnv(WalHooks* hooks) {
  return rocksdb::NewCompositeEnv(std::make_shared<HookedFileSystem>(hooks));
}

}  // namespace baton::storage::testing

#endif  // BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_
