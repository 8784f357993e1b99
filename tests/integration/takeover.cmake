# Take-over lab tests: baton-takeoverd in network namespaces built by scripts/lab.sh, real kernel
# addresses, a client probing every 2 ms. Root only (skip outside root, fail under CI=true), never
# two at once (RESOURCE_LOCK lab). Each takes well under two minutes.
# The lab tools are defined in tools/, which CMake reads before tests/.
if(TARGET baton-takeoverd AND TARGET baton-udp-responder)
  set(_takeover_env
    "TAKEOVERD=$<TARGET_FILE:baton-takeoverd>"
    "RESPONDER=$<TARGET_FILE:baton-udp-responder>"
    "PROBER=$<TARGET_FILE:baton-udp-prober>"
    "INJECT=$<TARGET_FILE:baton-udp-inject>")
  foreach(name crash partition priority forgery handover serial witness lastman shrink_partition)
    if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/takeover_${name}.sh)
      add_test(NAME takeover_${name} COMMAND ${CMAKE_CURRENT_LIST_DIR}/takeover_${name}.sh)
      set_tests_properties(takeover_${name} PROPERTIES
        LABELS "root;lab"
        RESOURCE_LOCK lab
        SKIP_RETURN_CODE 77
        TIMEOUT 120
        ENVIRONMENT "${_takeover_env}")
    endif()
  endforeach()
  # (f) a frozen holder (SIGSTOP) is fenced by the kernel within ms of its lease end.
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/takeover_pause.sh)
    add_test(NAME takeover_pause COMMAND ${CMAKE_CURRENT_LIST_DIR}/takeover_pause.sh)
    set_tests_properties(takeover_pause PROPERTIES
      LABELS "root;lab"
      RESOURCE_LOCK lab
      SKIP_RETURN_CODE 77
      TIMEOUT 120
      ENVIRONMENT "${_takeover_env}")
  endif()
endif()
