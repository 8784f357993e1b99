# baton-client-bench: the retrying client over HTTP and gRPC (throughput at
# 1/16/64 callers), retry after kill -9 of baton-kvserver (outage, attempts,
# lost/duplicate writes) and completion-record GC under load.
# Run: baton-client-bench --help.
if(TARGET baton_storage AND TARGET baton_kv_client AND
   TARGET baton_kvservice_grpc AND TARGET baton-kvserver)
  add_executable(baton-client-bench ${CMAKE_CURRENT_LIST_DIR}/client_bench.cc)
  target_link_libraries(baton-client-bench PRIVATE
    baton_kv_client baton_kvservice_grpc baton_storage baton_bench CLI11::CLI11
    nlohmann_json::nlohmann_json
    absl::strings absl::str_format spdlog::spdlog Threads::Threads)
  target_compile_definitions(baton-client-bench PRIVATE
    BATON_KVSERVER_PATH="$<TARGET_FILE:baton-kvserver>")
  add_dependencies(baton-client-bench baton-kvserver)
endif()
