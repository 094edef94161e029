# SPDX-License-Identifier: MIT
# Compiles tests/consumer/strict.cpp (every public template, used the ways weft's tests use
# them) with a user's strictest flags, and with LIBRARY given, links and runs it. Run by ctest:
#   cmake -DCOMPILER=<c++> -DSTD=<c++20|c++23> -DOPT=<-O0|-O2|-O3> -DSOURCE=<strict.cpp>
#         -DINCLUDES=<dir|dir> -DFLAGS=<strict flags> -DOUT=<path> [-DLIBRARY=<libweft.a>]
#         -P WeftStrictCompile.cmake
# A compiler that names C++23 c++2b (clang 14) gets that spelling.
cmake_minimum_required(VERSION 3.25)

foreach(var COMPILER STD OPT SOURCE INCLUDES FLAGS OUT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "WeftStrictCompile: ${var} is required")
  endif()
endforeach()

set(std "${STD}")
if(std STREQUAL "c++23")
  execute_process(COMMAND "${COMPILER}" -std=c++23 -x c++ -fsyntax-only -
                  INPUT_FILE /dev/null RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    set(std "c++2b")
  endif()
endif()

separate_arguments(flags UNIX_COMMAND "${FLAGS}")
set(args "-std=${std}" ${OPT} ${flags})
string(REPLACE "|" ";" includes "${INCLUDES}")
foreach(dir IN LISTS includes)
  list(APPEND args "-I${dir}")
endforeach()
if(LIBRARY)
  list(APPEND args "${SOURCE}" -o "${OUT}" "${LIBRARY}" -pthread)
else()
  list(APPEND args -c "${SOURCE}" -o "${OUT}.o")
endif()
list(JOIN args " " pretty)
message(STATUS "+ ${COMPILER} ${pretty}")
execute_process(COMMAND "${COMPILER}" ${args} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "WeftStrictCompile: ${COMPILER} -std=${std} ${OPT} failed")
endif()
if(LIBRARY)
  execute_process(COMMAND "${OUT}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "WeftStrictCompile: the program built with ${COMPILER} failed (${rc})")
  endif()
endif()
