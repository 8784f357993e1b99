# client_crash_test: the retrying client library (HTTP and gRPC) against a
# real baton-kvserver that is kill -9ed and restarted under load.
if(TARGET baton-kvserver AND TARGET baton_kv_client)
  add_executable(client_crash_test ${CMAKE_CURRENT_LIST_DIR}/client_crash_test.cc)
  target_link_libraries(client_crash_test PRIVATE
    baton_kv_client GTest::gtest_main Threads::Threads)
  target_compile_definitions(client_crash_test PRIVATE
    BATON_KVSERVER_PATH="$<TARGET_FILE:baton-kvserver>")
  add_dependencies(client_crash_test baton-kvserver)
  gtest_discover_tests(client_crash_test DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 120 LABELS integration)
endif()
