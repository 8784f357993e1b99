# kv_lab: the whole system on three hosts (scripts/kvlab.sh): baton-kvserver with the embedded
# take-over agent + etcd store on each, baton-kv-driver in the client; holder crashes (one of them
# etcd's leader) and a partition; lost = duplicated = 0, never two holders. Root only (skip
# outside root), never beside another lab test (RESOURCE_LOCK lab); takes about 30 s.
# baton-kv-driver is defined in tools/, which CMake reads before tests/.
if(TARGET baton-kvserver AND TARGET baton-kv-driver)
  add_test(NAME kv_lab COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_lab.sh)
  set_tests_properties(kv_lab PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 240
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>;KV_DRIVER=$<TARGET_FILE:baton-kv-driver>")
endif()

# kv_drain: planned drains that keep-alive clients do not see (issue 14): the drained host closes
# its connections on the address before it hands it over, and the kernel fence answers a SYN for
# an address this host does not hold with a reset; no attempt waits out its timeout and every
# INCR counts once. Root only, lab lock; about 30 s.
if(TARGET baton-kvserver)
  add_test(NAME kv_drain COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_drain.sh)
  set_tests_properties(kv_drain PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 180
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>")
endif()

# kv_grpc_drain: the same drains seen by gRPC clients (kv_drain.sh PROTOCOL=grpc): the drained
# host's listener of the service address sends its connections GOAWAY and lets the running calls
# finish before the address is handed over; no attempt waits out its timeout, every INCR counts
# once. Root only, lab lock; about 30 s.
if(TARGET baton-kvserver AND TARGET baton_kv_client)
  add_executable(kv_grpc_drain_client ${CMAKE_CURRENT_LIST_DIR}/kv_grpc_drain_client.cc)
  target_include_directories(kv_grpc_drain_client PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(kv_grpc_drain_client PRIVATE baton_kv_client CLI11::CLI11
    nlohmann_json::nlohmann_json absl::strings absl::time)
  add_test(NAME kv_grpc_drain COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_drain.sh)
  set_tests_properties(kv_grpc_drain PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 180
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>;PROTOCOL=grpc;KV_GRPC_CLIENT=$<TARGET_FILE:kv_grpc_drain_client>")
  # kv_grpc_sigterm: the same with SIGTERM to the holder's server instead of a drain (the server
  # hands its addresses over through the same release gate on its way out).
  add_test(NAME kv_grpc_sigterm COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_drain.sh)
  set_tests_properties(kv_grpc_sigterm PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 240
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>;PROTOCOL=grpc;DRAIN_BY=sigterm;KV_GRPC_CLIENT=$<TARGET_FILE:kv_grpc_drain_client>")
endif()
