# Pool-of-addresses lab tests: baton-takeoverd moving three addresses among five hosts in network
# namespaces (the paper's Figure 16, then an operator drain). Root only (skip outside root, fail
# under CI=true), never two lab tests at once (RESOURCE_LOCK lab). About a minute.
# The lab tools are defined in tools/, which CMake reads before tests/.
if(TARGET baton-takeoverd AND TARGET baton-udp-responder)
  foreach(name pool)
    if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/takeover_${name}.sh)
      add_test(NAME takeover_${name} COMMAND ${CMAKE_CURRENT_LIST_DIR}/takeover_${name}.sh)
      set_tests_properties(takeover_${name} PROPERTIES
        LABELS "root;lab"
        RESOURCE_LOCK lab
        SKIP_RETURN_CODE 77
        TIMEOUT 180
        ENVIRONMENT "TAKEOVERD=$<TARGET_FILE:baton-takeoverd>;RESPONDER=$<TARGET_FILE:baton-udp-responder>;PROBER=$<TARGET_FILE:baton-udp-prober>;INJECT=$<TARGET_FILE:baton-udp-inject>")
    endif()
  endforeach()
  # The same with a pool of both families: IP1 IPv4, IP2 and IP3 IPv6 (the client probes IP3
  # over IPv6; unsolicited NA announce it, the kernel fence covers its neighbour discovery).
  add_test(NAME takeover_pool6 COMMAND ${CMAKE_CURRENT_LIST_DIR}/takeover_pool.sh)
  set_tests_properties(takeover_pool6 PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 180
    ENVIRONMENT "POOL_IPV6=1;TEST_TAG=q;TAKEOVERD=$<TARGET_FILE:baton-takeoverd>;RESPONDER=$<TARGET_FILE:baton-udp-responder>;PROBER=$<TARGET_FILE:baton-udp-prober>;INJECT=$<TARGET_FILE:baton-udp-inject>")
endif()
