# kv_crash_test: kill -9 the real baton-kvserver under load, restart it on the
# same data directory, and check that no acknowledged request was lost or
# executed twice. Needs the RocksDB backend (baton-kvserver).
if(TARGET baton-kvserver)
  add_executable(kv_crash_test ${CMAKE_CURRENT_LIST_DIR}/kv_crash_test.cc)
  target_link_libraries(kv_crash_test PRIVATE
    Boost::system nlohmann_json::nlohmann_json GTest::gtest_main Threads::Threads)
  target_compile_definitions(kv_crash_test PRIVATE
    BATON_KVSERVER_PATH="$<TARGET_FILE:baton-kvserver>")
  add_dependencies(kv_crash_test baton-kvserver)
  gtest_discover_tests(kv_crash_test DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 120 LABELS integration)
endif()
