# Fail-over benchmark (bench/failover.sh, beside keepalived) and its small lab tools, which the
# take-over lab tests (tests/integration/takeover_*) use as well.
add_executable(baton-udp-responder ${CMAKE_CURRENT_LIST_DIR}/tools/udp_responder.cc)
add_executable(baton-udp-prober ${CMAKE_CURRENT_LIST_DIR}/tools/udp_prober.cc)
