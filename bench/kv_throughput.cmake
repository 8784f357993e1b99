# baton-kv-throughput: kv PUT/GET/INCR over HTTP and gRPC at 1/16/64 clients
# on the embedded RocksDB store and on a loopback etcd, beside Redis
# (appendfsync always), raw RocksDB synced writes and raw etcd Txns, in one
# run; server CPU per request and peak RSS. Run: baton-kv-throughput --help.
# baton_bench_raw_rocksdb comes from storage.cmake (included after this file);
# link it by name.
if(TARGET baton_kv_client AND TARGET baton_kvservice_grpc AND
   TARGET baton_etcd_store AND TARGET baton_etcd_launcher AND
   TARGET baton_etcd_proto AND TARGET baton_storage)
  add_executable(baton-kv-throughput ${CMAKE_CURRENT_LIST_DIR}/kv_throughput.cc)
  target_link_libraries(baton-kv-throughput PRIVATE
    baton_kv_client baton_kvservice_grpc baton_kvservice baton_framework
    baton_storage baton_etcd_store baton_etcd_launcher baton_etcd_proto
    baton_bench_raw_rocksdb baton_bench CLI11::CLI11 nlohmann_json::nlohmann_json
    absl::strings spdlog::spdlog Threads::Threads)
endif()

# baton-assignment-bench: time of the take-over core's address assignment
# (takeover/core/assignment.h) at 3/16/64 nodes x 6/128/1024 slots, for the
# scaling model in bench/README.md. Run: baton-assignment-bench --help.
if(TARGET baton_takeover_core AND
   EXISTS ${CMAKE_CURRENT_LIST_DIR}/suite/assignment_bench.cc)
  add_executable(baton-assignment-bench
    ${CMAKE_CURRENT_LIST_DIR}/suite/assignment_bench.cc)
  target_link_libraries(baton-assignment-bench PRIVATE
    baton_takeover_core baton_bench nlohmann_json::nlohmann_json)
endif()
