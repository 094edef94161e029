# SPDX-License-Identifier: MIT
# Options and helpers for weft's own build. Included from the top-level CMakeLists.txt.
#
#   WEFT_BUILD_TESTS       tests/ (GoogleTest)              default: ON when top-level
#   WEFT_BUILD_EXAMPLES    examples/                        default: ON when top-level
#   WEFT_BUILD_BENCHMARKS  bench/ (if it has a CMakeLists)  default: OFF
#   WEFT_INSTALL           install rules + package config   default: ON
#   WEFT_WERROR            -Werror on weft's own targets    default: ON when top-level
#   WEFT_SANITIZE          "" | thread | address,undefined  (any of address, undefined,
#                          leak, thread, comma-separated; thread excludes address/leak)
#   WEFT_TEST_TIMEOUT      per-test ctest timeout, seconds  default: 300
#   WEFT_PYTHON            the Python package (python/, tests/python/)  default: OFF;
#                          scripts/test.sh turns it on (see python/CMakeLists.txt)
#   WEFT_PORTABLE_FUTEX    sleep on the portable mutex/condition-variable table instead
#                          of Linux futexes (src/futex.cpp), to test it  default: OFF
#   WEFT_TEST_PORTABLE_FUTEX  also link the conformance and stress tests, from the same
#                          objects, with src/futex.cpp's portable half: the fallback tested
#                          without compiling the tests twice (the release preset)  default: OFF
#   WEFT_USDT              USDT probes (weft/detail/probes.hpp) when <sys/sdt.h> is found
#                          (Debian: systemtap-sdt-dev)                  default: ON
#
# Warnings are PRIVATE to weft's own targets and never reach a consumer. Sanitizer flags are
# directory-wide from here down, so GoogleTest (built from source in that case) is
# instrumented too.

include_guard(GLOBAL)

option(WEFT_BUILD_TESTS "Build weft's tests" ${PROJECT_IS_TOP_LEVEL})
option(WEFT_BUILD_EXAMPLES "Build weft's examples" ${PROJECT_IS_TOP_LEVEL})
option(WEFT_BUILD_BENCHMARKS "Build weft's benchmarks (bench/)" OFF)
option(WEFT_INSTALL "Generate weft's install rules" ON)
option(WEFT_WERROR "Treat warnings in weft's own targets as errors" ${PROJECT_IS_TOP_LEVEL})
set(WEFT_SANITIZE "" CACHE STRING
  "Sanitizers for the whole weft build: empty, thread, or address,undefined")
set_property(CACHE WEFT_SANITIZE PROPERTY STRINGS "" "thread" "address,undefined")
set(WEFT_TEST_TIMEOUT 300 CACHE STRING "Per-test timeout in seconds")
option(WEFT_PYTHON "Build the Python package weft (python/) and its tests" OFF)
option(WEFT_USDT "USDT probes for bpftrace/perf/SystemTap, if <sys/sdt.h> is found" ON)
option(WEFT_PORTABLE_FUTEX
  "Use the portable futex fallback (std::mutex/std::condition_variable) even on Linux" OFF)
option(WEFT_TEST_PORTABLE_FUTEX
  "Also link the conformance and stress tests with the portable futex fallback" OFF)

# ---------------------------------------------------------------------------
# Warnings: weft_target_warnings(<target>) -- PRIVATE, our targets only.
# ---------------------------------------------------------------------------
function(weft_target_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(WEFT_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive-)
    if(WEFT_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  endif()
endfunction()

# ---------------------------------------------------------------------------
# Sanitizers
# ---------------------------------------------------------------------------
set(WEFT_SANITIZE_FLAGS "")
if(WEFT_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "WEFT_SANITIZE needs GCC or Clang (have ${CMAKE_CXX_COMPILER_ID})")
  endif()
  string(REPLACE "," ";" _weft_san_list "${WEFT_SANITIZE}")
  foreach(_san IN LISTS _weft_san_list)
    if(NOT _san MATCHES "^(address|undefined|leak|thread)$")
      message(FATAL_ERROR "WEFT_SANITIZE: unknown sanitizer '${_san}' in '${WEFT_SANITIZE}'")
    endif()
  endforeach()
  if("thread" IN_LIST _weft_san_list AND
     ("address" IN_LIST _weft_san_list OR "leak" IN_LIST _weft_san_list))
    message(FATAL_ERROR "WEFT_SANITIZE: thread cannot be combined with address/leak")
  endif()

  list(JOIN _weft_san_list "," _weft_san_joined)
  set(WEFT_SANITIZE_FLAGS "-fsanitize=${_weft_san_joined}" -fno-omit-frame-pointer)
  if("undefined" IN_LIST _weft_san_list)
    # UB aborts the test instead of printing and carrying on.
    list(APPEND WEFT_SANITIZE_FLAGS -fno-sanitize-recover=all)
  endif()

  # Everything below this directory: weft, tests, examples, GoogleTest.
  add_compile_options(${WEFT_SANITIZE_FLAGS})
  add_link_options("-fsanitize=${_weft_san_joined}")
  message(STATUS "weft: sanitizers: ${WEFT_SANITIZE_FLAGS}")
endif()

# When weft is built with sanitizers inside somebody else's project (add_subdirectory),
# their executables must link the sanitizer runtime too. Never exported on install.
function(weft_target_sanitizer_interface target)
  if(WEFT_SANITIZE AND NOT PROJECT_IS_TOP_LEVEL)
    string(REPLACE "," ";" _list "${WEFT_SANITIZE}")
    list(JOIN _list "," _joined)
    target_link_options(${target} INTERFACE "$<BUILD_INTERFACE:-fsanitize=${_joined}>")
  endif()
endfunction()
