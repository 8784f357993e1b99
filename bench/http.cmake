# HTTP benchmark: durable PUTs/s over keep-alive HTTP through the whole baton
# path, beside raw RocksDB synced Puts and Redis (appendfsync always) measured
# in the same run. Run: baton-http-bench --help.
# baton_bench_raw_rocksdb comes from storage.cmake, included after this file
# (fragments are included in name order); link it by name.
if(TARGET baton_storage AND TARGET baton_kvservice AND
   EXISTS ${CMAKE_CURRENT_LIST_DIR}/raw_rocksdb.cc)
  add_executable(baton-http-bench ${CMAKE_CURRENT_LIST_DIR}/http_put_bench.cc)
  target_link_libraries(baton-http-bench PRIVATE
    baton_kvservice baton_framework baton_storage baton_bench_raw_rocksdb baton_bench
    CLI11::CLI11 nlohmann_json::nlohmann_json absl::strings spdlog::spdlog Threads::Threads)
endif()
