// The RocksDB store opened on a caller's rocksdb::Env: for tests that need to
// see or change what reaches the file system (hold or fail a WAL fsync,
// record how much of each WAL file was synced). Not for production use: the
// store otherwise always runs on rocksdb::Env::Default().
//
// Thread safety: as OpenRocksDb(); `env` must be thread-safe (RocksDB calls
// it from its own threads) and outlive the store.
#ifndef BATON_STORAGE_ROCKSDB_INTERNAL_ROCKSDB_ENV_H_
#define BATON_STORAGE_ROCKSDB_INTERNAL_ROCKSDB_ENV_H_

#include <memory>

#include "absl/status/statusor.h"
#include "rocksdb/env.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::storage::rocksdb_internal {

// OpenRocksDb() with every file operation (including reopens after a write
// error) going through `env`. Errors: those of OpenRocksDb().
[[nodiscard]] absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenRocksDbOnEnv(
    const RocksDbOptions& options, rocksdb::Env* env);

}  // namespace baton::storage::rocksdb_internal

#endif  // BATON_STORAGE_ROCKSDB_INTERNAL_ROCKSDB_ENV_H_
