# The installable package: every library a service may link, exported as
# baton::<name> with its include paths and dependencies carried by the target,
# headers under <prefix>/include/baton, binaries under <prefix>/bin, and a
# CMake package config so that an outside project writes
#
#   find_package(baton CONFIG REQUIRED)
#   target_link_libraries(my_service PRIVATE baton::server)
#
# (docs/tutorial.md; samples/reservations/ is such a project). The same
# baton::<name> names exist as aliases in this tree, for add_subdirectory().

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# target -> exported name. Only targets that exist in this build (optional
# dependencies missing at build time leave some out; the package then says
# which components it has, and find_package(baton COMPONENTS x) fails loudly).
set(BATON_EXPORTS
  baton_base:base
  baton_storage_api:storage_api
  baton_storage:store_rocksdb
  baton_etcd_proto:etcd_proto
  baton_etcd_store:store_etcd
  baton_store_memory:store_memory
  baton_takeover_core:takeover_core
  baton_takeover_drivers:takeover_drivers
  baton_takeover_daemon_config:takeover_config
  baton_takeover_metrics:takeover_metrics
  baton_takeover_daemon:takeover_daemon
  baton_framework:framework
  baton_grpc_server:grpc
  baton_client:client
  baton_client_grpc:client_grpc
  baton_framework_agent:agent
  baton_server:server
  baton_testing:testing
)

set(BATON_INSTALLED_TARGETS)
set(BATON_COMPONENTS)
foreach(pair ${BATON_EXPORTS})
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 target)
  list(GET pair 1 name)
  if(NOT TARGET ${target})
    continue()
  endif()
  get_target_property(type ${target} TYPE)
  set(scope PUBLIC)
  if(type STREQUAL "INTERFACE_LIBRARY")
    set(scope INTERFACE)
  endif()
  # Headers are included from the source root in this tree
  # (#include "framework/server.h") and from include/baton once installed.
  target_include_directories(${target} ${scope}
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/baton>)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  add_library(baton::${name} ALIAS ${target})
  list(APPEND BATON_INSTALLED_TARGETS ${target})
  list(APPEND BATON_COMPONENTS ${name})
endforeach()

install(TARGETS ${BATON_INSTALLED_TARGETS}
  EXPORT batonTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

foreach(exe baton-takeoverd baton-kvserver baton-kv)
  if(TARGET ${exe})
    install(TARGETS ${exe} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

install(DIRECTORY
    ${PROJECT_SOURCE_DIR}/base
    ${PROJECT_SOURCE_DIR}/storage
    ${PROJECT_SOURCE_DIR}/framework
    ${PROJECT_SOURCE_DIR}/takeover
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/baton
  FILES_MATCHING PATTERN "*.h")

install(FILES
    ${PROJECT_SOURCE_DIR}/deploy/baton-kvserver.service
    ${PROJECT_SOURCE_DIR}/deploy/baton-takeoverd.service
    ${PROJECT_SOURCE_DIR}/deploy/baton-kvserver.example.yaml
    ${PROJECT_SOURCE_DIR}/deploy/baton-takeoverd.example.yaml
    ${PROJECT_SOURCE_DIR}/deploy/baton-takeoverd-pair.example.yaml
    ${PROJECT_SOURCE_DIR}/deploy/baton-takeoverd-witness.example.yaml
    ${PROJECT_SOURCE_DIR}/deploy/baton-takeoverd-witness.service
  DESTINATION ${CMAKE_INSTALL_DATADIR}/baton/deploy)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/
  DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")

set(BATON_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/baton)
install(EXPORT batonTargets NAMESPACE baton:: DESTINATION ${BATON_CMAKE_DIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/batonConfig.cmake.in
  ${PROJECT_BINARY_DIR}/batonConfig.cmake
  INSTALL_DESTINATION ${BATON_CMAKE_DIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/batonConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/batonConfig.cmake
    ${PROJECT_BINARY_DIR}/batonConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/BatonProtobuf.cmake
  DESTINATION ${BATON_CMAKE_DIR})

# A Debian package of the binaries, headers and libraries:
#   cpack --config build/CPackConfig.cmake -G DEB
set(CPACK_PACKAGE_NAME baton)
set(CPACK_PACKAGE_VENDOR "baton")
set(CPACK_PACKAGE_CONTACT "baton developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "crash-tolerant exactly-once network services with IP take-over")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
include(CPack)
