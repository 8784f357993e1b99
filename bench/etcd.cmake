# etcd benchmark: StableStore-on-etcd commits/s and p50/p99 against raw etcd
# Txns of the same shape through the same gRPC stubs, in the same run, on a
# loopback etcd it starts itself. Run: baton-etcd-bench --help.
if(TARGET baton_etcd_store AND TARGET baton_etcd_launcher AND TARGET baton_etcd_proto)
  add_executable(baton-etcd-bench ${CMAKE_CURRENT_LIST_DIR}/etcd_bench.cc)
  target_link_libraries(baton-etcd-bench PRIVATE
    baton_etcd_store baton_etcd_launcher baton_etcd_proto baton_bench CLI11::CLI11
    nlohmann_json::nlohmann_json
    absl::strings spdlog::spdlog Threads::Threads)
endif()
