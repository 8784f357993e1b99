# Take-over transport benchmark: loopback ping-pong through UdpTransport
# (HMAC-SHA256, replay check) against plain UDP sockets in the same run.
# Run: baton-takeover-transport-bench [round_trips] [payload_bytes].
if(TARGET baton_takeover_drivers)
  add_executable(baton-takeover-transport-bench
    ${CMAKE_CURRENT_LIST_DIR}/takeover_transport_bench.cc)
  target_link_libraries(baton-takeover-transport-bench PRIVATE baton_takeover_drivers baton_bench
    spdlog::spdlog)
endif()
