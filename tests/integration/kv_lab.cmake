# kv_lab: the whole system on three hosts (scripts/kvlab.sh): baton-kvserver with the embedded
# take-over agent + etcd store on each, baton-kv-driver in the client; holder crashes (one of them
# etcd's leader) and a partition; lost = duplicated = 0, never two holders. Root only (skip
# outside root), never beside another lab test (RESOURCE_LOCK lab); takes about 30 s.
# baton-kv-driver is defined in bench/tools/, which CMake reads before tests/.
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
