# Storage benchmark: StableStore (RocksDB) durable commits/s and CPU per
# commit against raw RocksDB synced Puts in the same run. Run:
# baton-storage-bench --help; instruction counts: bench/storage_instructions.sh.

# The raw RocksDB baseline, reusable by other benchmarks (e.g. the HTTP one).
add_library(baton_bench_raw_rocksdb ${CMAKE_CURRENT_LIST_DIR}/raw_rocksdb.cc)
target_link_libraries(baton_bench_raw_rocksdb
  PUBLIC absl::status absl::statusor
  PRIVATE baton_bench absl::strings RocksDB::rocksdb Threads::Threads)

if(TARGET baton_storage)
  add_executable(baton-storage-bench ${CMAKE_CURRENT_LIST_DIR}/storage_bench.cc)
  target_link_libraries(baton-storage-bench PRIVATE
    baton_storage baton_bench_raw_rocksdb baton_bench CLI11::CLI11
    nlohmann_json::nlohmann_json absl::strings absl::str_format
    absl::synchronization spdlog::spdlog Threads::Threads)
endif()
