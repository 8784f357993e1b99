# kv_agent: baton-kvserver with the take-over agent embedded, in one network
# namespace the test creates (etcd on its loopback, a group of one): the
# address follows listening, drain/undo, store health (etcd killed and back)
# and SIGTERM. Root only (skip outside root, fail under CI=true); lab lock.
if(TARGET baton-kvserver AND TARGET baton_framework_agent)
  add_test(NAME kv_agent COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_agent.sh)
  set_tests_properties(kv_agent PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 120
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>")
endif()
