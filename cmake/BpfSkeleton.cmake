# Builds BPF programs into libbpf skeleton headers.
#
#   xlb_bpf_skeleton(NAME xlb_sock SOURCE xlb_sock.bpf.c)
#
# compiles SOURCE (relative to the calling directory) to ${NAME}.bpf.o with clang, turns the
# object into ${NAME}.skel.h with `bpftool gen skeleton`, and defines the INTERFACE target
# xlb_bpf_${NAME}: link it to include "${NAME}.skel.h". The skeleton embeds the object, so
# nothing but the program binary is installed and no .o is read at run time.
#
# Programs include uapi headers (linux/bpf.h, ...) rather than a vmlinux.h, so building
# needs no BTF from the build machine's kernel.

find_program(XLB_CLANG NAMES clang clang-14 REQUIRED)
# bpftool lives in /usr/sbin on Debian, which is not on every user's PATH.
find_program(XLB_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

# The kernel's name for the target architecture, for bpf_tracing.h's register macros.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86)$")
  set(XLB_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(XLB_BPF_ARCH arm64)
else()
  set(XLB_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

# With -target bpf clang does not search the multiarch directory, where Debian keeps the
# asm/ headers that linux/types.h includes.
set(XLB_BPF_INCLUDES -I${PROJECT_SOURCE_DIR}/bpf/include -I${PROJECT_SOURCE_DIR}/bpf/lib)
if(CMAKE_LIBRARY_ARCHITECTURE)
  list(APPEND XLB_BPF_INCLUDES -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
endif()
foreach(dir IN LISTS LIBBPF_INCLUDE_DIRS)
  list(APPEND XLB_BPF_INCLUDES -I${dir})
endforeach()

function(xlb_bpf_skeleton)
  cmake_parse_arguments(B "" "NAME;SOURCE" "" ${ARGN})
  if(NOT B_NAME OR NOT B_SOURCE)
    message(FATAL_ERROR "xlb_bpf_skeleton needs NAME and SOURCE")
  endif()

  set(source ${CMAKE_CURRENT_SOURCE_DIR}/${B_SOURCE})
  set(object ${CMAKE_CURRENT_BINARY_DIR}/${B_NAME}.bpf.o)
  set(skeleton ${CMAKE_CURRENT_BINARY_DIR}/${B_NAME}.skel.h)

  # -g keeps BTF in the object: libbpf needs it for the map definitions.
  add_custom_command(
    OUTPUT ${object}
    COMMAND ${XLB_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${XLB_BPF_ARCH} -Wall -Werror
            ${XLB_BPF_INCLUDES} -MD -MF ${object}.d -c ${source} -o ${object}
    DEPENDS ${source}
    DEPFILE ${object}.d
    COMMENT "Compiling BPF program ${B_SOURCE}"
    VERBATIM)

  # Write to a temporary file first: a failed bpftool must not leave an empty header that
  # looks up to date.
  add_custom_command(
    OUTPUT ${skeleton}
    COMMAND sh -c "\"$0\" gen skeleton \"$1\" name \"$2\" > \"$3.tmp\" && mv \"$3.tmp\" \"$3\""
            ${XLB_BPFTOOL} ${object} ${B_NAME} ${skeleton}
    DEPENDS ${object}
    COMMENT "Generating BPF skeleton ${B_NAME}.skel.h"
    VERBATIM)

  add_custom_target(xlb_bpf_${B_NAME}_skeleton DEPENDS ${skeleton})
  add_library(xlb_bpf_${B_NAME} INTERFACE)
  # SYSTEM: the generated code is bpftool's, not ours to hold to our warning flags.
  target_include_directories(xlb_bpf_${B_NAME} SYSTEM INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(xlb_bpf_${B_NAME} INTERFACE PkgConfig::LIBBPF)
  add_dependencies(xlb_bpf_${B_NAME} xlb_bpf_${B_NAME}_skeleton)
endfunction()
