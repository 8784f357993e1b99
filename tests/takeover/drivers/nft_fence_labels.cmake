# Read by ctest (see CMakeLists.txt): the fence's namespace tests need root and never run
# concurrently with other lab tests.
foreach(t IN LISTS takeover_nft_fence_test_TESTS)
  set_tests_properties("${t}" PROPERTIES LABELS "root;lab" RESOURCE_LOCK lab)
endforeach()
