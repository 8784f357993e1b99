# Fail-over benchmark (bench/failover.sh, beside keepalived) and its small lab tools, which the
# take-over lab tests (tests/integration/takeover_*) use as well.
add_executable(baton-udp-responder ${CMAKE_CURRENT_LIST_DIR}/tools/udp_responder.cc)
add_executable(baton-udp-prober ${CMAKE_CURRENT_LIST_DIR}/tools/udp_prober.cc)
# Forged / replayed datagram injector (needs the transport's datagram codec).
if(TARGET baton_takeover_drivers)
  add_executable(baton-udp-inject ${CMAKE_CURRENT_LIST_DIR}/tools/udp_inject.cc)
  target_link_libraries(baton-udp-inject PRIVATE baton_takeover_drivers)
endif()
