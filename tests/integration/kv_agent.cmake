# kv_agent: baton-kvserver with the take-over agent embedded, in one network
# namespace the test creates (etcd on its loopback, a group of one): the
# address follows listening, drain/undo, store health (etcd killed and back)
# and SIGTERM -- with the agent in a supervised child process (kv_agent, the
# default takeover_mode) and on a thread of the server (kv_agent_thread).
# kv_agent_crash: the supervised child turns the server's kill -9 or SIGSTOP
# into a hand-over, and the server survives (and restarts) a dead child.
# Root only (skip outside root, fail under CI=true); lab lock.
if(TARGET baton-kvserver AND TARGET baton_framework_agent AND
   TARGET baton-takeoverd)
  foreach(mode process thread)
    if(mode STREQUAL "process")
      set(name kv_agent)
    else()
      set(name kv_agent_${mode})
    endif()
    add_test(NAME ${name} COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_agent.sh)
    set_tests_properties(${name} PROPERTIES
      LABELS "root;lab"
      RESOURCE_LOCK lab
      SKIP_RETURN_CODE 77
      TIMEOUT 120
      ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>;TAKEOVER_MODE=${mode}")
  endforeach()
  add_test(NAME kv_agent_crash COMMAND ${CMAKE_CURRENT_LIST_DIR}/kv_agent_crash.sh)
  set_tests_properties(kv_agent_crash PROPERTIES
    LABELS "root;lab"
    RESOURCE_LOCK lab
    SKIP_RETURN_CODE 77
    TIMEOUT 120
    ENVIRONMENT "KVSERVER=$<TARGET_FILE:baton-kvserver>")
endif()

# kv_agent_supervisor_test: the server side of the supervised agent
# (AgentSupervisor) against a stand-in agent process (kv_agent_fake_agent.py):
# fences from slot events, release at the child's death, restart with drains
# replayed, keepalive, shutdown. No root, no kernel access.
if(TARGET baton_framework_agent AND TARGET baton_storage)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    add_executable(kv_agent_supervisor_test kv_agent_supervisor_test.cc)
    target_link_libraries(kv_agent_supervisor_test PRIVATE
      baton_framework_agent baton_storage GTest::gtest_main)
    target_compile_definitions(kv_agent_supervisor_test PRIVATE
      BATON_FAKE_AGENT="${CMAKE_CURRENT_LIST_DIR}/kv_agent_fake_agent.py")
    gtest_discover_tests(kv_agent_supervisor_test DISCOVERY_TIMEOUT 60)
  endif()
endif()
