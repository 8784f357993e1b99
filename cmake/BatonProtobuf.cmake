# baton_add_protos(TARGET target PROTOS a.proto ... [IMPORT_DIR dir])
#
# Generates C++ messages and gRPC stubs for `PROTOS` with protoc and
# grpc_cpp_plugin into the build tree and adds them to `target` (a library
# or executable), with the include path and gRPC/protobuf linked. Generated
# code is compiled without warnings. The proto path root is IMPORT_DIR
# (default: the current source dir), so "x.proto" is included as "x.pb.h".
function(baton_add_protos)
  cmake_parse_arguments(P "" "TARGET;IMPORT_DIR" "PROTOS" ${ARGN})
  if(NOT P_TARGET OR NOT P_PROTOS)
    message(FATAL_ERROR "baton_add_protos(TARGET t PROTOS a.proto ...)")
  endif()
  if(NOT P_IMPORT_DIR)
    set(P_IMPORT_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_program(BATON_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  set(gen ${CMAKE_CURRENT_BINARY_DIR}/baton_protos_${P_TARGET})
  file(MAKE_DIRECTORY ${gen})
  set(srcs)
  foreach(proto ${P_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    file(RELATIVE_PATH rel ${P_IMPORT_DIR} ${abs})
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    set(out ${gen}/${stem})
    add_custom_command(
      OUTPUT ${out}.pb.cc ${out}.pb.h ${out}.grpc.pb.cc ${out}.grpc.pb.h
      COMMAND ${Protobuf_PROTOC_EXECUTABLE} --proto_path=${P_IMPORT_DIR}
        --cpp_out=${gen} --grpc_out=${gen}
        --plugin=protoc-gen-grpc=${BATON_GRPC_CPP_PLUGIN} ${abs}
      DEPENDS ${abs}
      COMMENT "protoc: ${rel}"
      VERBATIM)
    list(APPEND srcs ${out}.pb.cc ${out}.grpc.pb.cc)
    set_source_files_properties(${out}.pb.cc ${out}.grpc.pb.cc
      PROPERTIES COMPILE_OPTIONS "-w")
  endforeach()
  target_sources(${P_TARGET} PRIVATE ${srcs})
  target_include_directories(${P_TARGET} SYSTEM PUBLIC $<BUILD_INTERFACE:${gen}>)
  target_link_libraries(${P_TARGET} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
endfunction()
