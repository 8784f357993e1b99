// Helpers shared by the RocksDB store's tests: a temporary directory, and a
// rocksdb::FileSystem wrapper through which a test sees and steers the
// store's WAL files (hold or fail an fsync, record how much of each WAL was
// synced, to simulate a power loss afterwards).
#ifndef BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_
#define BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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

// Runs `child(fd)` in a forked process; the child writes fixed-size `Ack`
// records to `fd` (one per acknowledged commit) and never returns. The child
// is killed with SIGKILL `delay` after its first Ack; every Ack it wrote
// before it died is appended to `acks`. A child that acknowledged nothing, or
// that ended before the kill, is a test failure (fatal: check with
// ASSERT_NO_FATAL_FAILURE).
template <typename Ack, typename Child>
void ForkAndKillAfterFirstAck(Child child, std::chrono::milliseconds delay,
                              std::vector<Ack>* acks) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string buffer;
  bool eof = false;
  auto read_some = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return;
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) {
      eof = true;
      return;
    }
    buffer.append(chunk, static_cast<size_t>(n));
    while (buffer.size() >= sizeof(Ack)) {
      Ack ack;
      std::memcpy(&ack, buffer.data(), sizeof(ack));
      acks->push_back(ack);
      buffer.erase(0, sizeof(Ack));
    }
  };
  const size_t before = acks->size();
  for (int i = 0; i < 500 && acks->size() == before && !eof; ++i) read_some(20);
  if (acks->size() == before) ::kill(pid, SIGKILL);
  ASSERT_GT(acks->size(), before) << "the child acknowledged nothing";
  const auto kill_at = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < kill_at && !eof) read_some(5);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  // Acknowledgements written before the kill are still in the pipe.
  while (!eof) read_some(1000);
  ::close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
      << "child ended before the kill, status " << wstatus;
}

}  // namespace baton::storage::testing

#endif  // BATON_TESTS_STORAGE_ROCKSDB_TEST_UTIL_H_
