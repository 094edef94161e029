# SPDX-License-Identifier: MIT
# Builds and runs tests/consumer against weft, the way a user would, under users' strict
# warning flags (CONSUMER_STRICT_FLAGS). Run by ctest as:
#   cmake -DMODE=<mode> -DWORK_DIR=... [more -D...] -P WeftConsumerTest.cmake
#
#   MODE=install         `cmake --install` of the build under test (WEFT_BINARY_DIR) into a
#                        temporary prefix, then: find_package(weft 0.1 CONFIG REQUIRED); the same
#                        asking for a newer version than installed, which must fail; pkg-config
#                        (weft.pc) with the compiler called directly
#   MODE=install_shared  fresh BUILD_SHARED_LIBS=ON build of WEFT_SOURCE_DIR, installed and
#                        consumed through find_package
#   MODE=subdirectory    add_subdirectory(WEFT_SOURCE_DIR) from the consumer
#   MODE=fetchcontent    FetchContent_Declare(weft SOURCE_DIR WEFT_SOURCE_DIR) + MakeAvailable
#
# CONSUMER_REDIS=ON (weft was built with weft::redis): in the install and subdirectory modes
# the consumer also builds and runs tests/consumer/redis.cpp against weft::redis (installed:
# find_package(weft ... COMPONENTS redis)), and the installed tree must hold weft::redis.
# The other two modes build weft again without it (WEFT_REDIS=OFF): a second compile of
# weft::redis there would test nothing more.
#
# Besides "it builds and runs", checks that the consumer's compile line has C++20 and
# -pthread from weft::weft and none of weft's own warning or sanitizer flags, and that the
# install holds weft and nothing else (no GoogleTest).

cmake_minimum_required(VERSION 3.25)

foreach(var MODE WORK_DIR WEFT_SOURCE_DIR CONSUMER_SOURCE_DIR CONSUMER_GENERATOR
            CONSUMER_CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "WeftConsumerTest: ${var} is required")
  endif()
endforeach()
if(NOT CONSUMER_BUILD_TYPE)
  set(CONSUMER_BUILD_TYPE RelWithDebInfo)
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

set(generator_args -G "${CONSUMER_GENERATOR}")
if(CONSUMER_MAKE_PROGRAM)
  list(APPEND generator_args "-DCMAKE_MAKE_PROGRAM=${CONSUMER_MAKE_PROGRAM}")
endif()
# Same compiler, build type and flags as the build under test; nothing from the user's
# environment or package registry may satisfy find_package(weft).
set(common_args
  ${generator_args}
  "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
# The user's flags: the build's own CMAKE_CXX_FLAGS plus the strict warnings.
string(STRIP "${CONSUMER_CXX_FLAGS} ${CONSUMER_STRICT_FLAGS}" consumer_flags)
list(APPEND common_args "-DCMAKE_CXX_FLAGS=${consumer_flags}")
if(DEFINED CONSUMER_CONFIG_CXX_FLAGS)
  string(TOUPPER "${CONSUMER_BUILD_TYPE}" bt)
  list(APPEND common_args "-DCMAKE_CXX_FLAGS_${bt}=${CONSUMER_CONFIG_CXX_FLAGS}")
endif()

function(run)
  string(REPLACE ";" " " pretty "${ARGN}")
  message(STATUS "+ ${pretty}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "WeftConsumerTest(${MODE}): command failed (${rc}): ${pretty}")
  endif()
endfunction()

function(fail what)
  message(FATAL_ERROR "WeftConsumerTest(${MODE}): ${what}")
endfunction()

function(check_install_tree)
  foreach(f include/weft/weft.hpp include/weft/event.hpp include/weft/version.hpp)
    if(NOT EXISTS "${prefix}/${f}")
      fail("installed tree lacks ${f}")
    endif()
  endforeach()
  file(GLOB_RECURSE config_files "${prefix}/*/weftConfig.cmake")
  file(GLOB_RECURSE version_files "${prefix}/*/weftConfigVersion.cmake")
  file(GLOB_RECURSE targets_files "${prefix}/*/weftTargets.cmake")
  if(CONSUMER_REDIS)
    file(GLOB_RECURSE redis_targets "${prefix}/*/weftRedisTargets.cmake")
    if(NOT redis_targets OR NOT EXISTS "${prefix}/include/weft/redis/queue.hpp")
      fail("installed tree lacks weft::redis (weftRedisTargets.cmake, weft/redis/queue.hpp)")
    endif()
  endif()
  if(NOT config_files OR NOT version_files OR NOT targets_files)
    fail("installed tree lacks weftConfig/weftConfigVersion/weftTargets.cmake")
  endif()
  file(GLOB_RECURSE pc_files "${prefix}/*/pkgconfig/weft.pc")
  if(NOT pc_files)
    fail("installed tree lacks pkgconfig/weft.pc")
  endif()
  if(EXISTS "${prefix}/include/gtest" OR EXISTS "${prefix}/include/gmock")
    fail("GoogleTest was installed along with weft")
  endif()
  # Our warning flags and sanitizer flags must not be part of the exported interface.
  file(GLOB targets_all "${prefix}/*/cmake/weft/weft*Targets*.cmake"
                        "${prefix}/*/*/cmake/weft/weft*Targets*.cmake")
  foreach(f IN LISTS targets_all)
    file(READ "${f}" text)
    if(text MATCHES "-W(all|extra|pedantic|error)|-fsanitize")
      fail("${f} exports build-only flags: ${CMAKE_MATCH_0}")
    endif()
  endforeach()
endfunction()

function(check_consumer_compile_line build_dir)
  set(db "${build_dir}/compile_commands.json")
  if(NOT EXISTS "${db}")
    if(CONSUMER_GENERATOR MATCHES "Makefiles|Ninja")
      fail("no ${db}")
    endif()
    return()   # other generators do not write compile_commands.json
  endif()
  file(READ "${db}" json)
  string(JSON n LENGTH "${json}")
  math(EXPR last "${n} - 1")
  set(cmd "")
  foreach(i RANGE ${last})
    string(JSON file GET "${json}" ${i} file)
    if(file MATCHES "consumer/smoke\\.cpp$")
      string(JSON cmd GET "${json}" ${i} command)
    endif()
  endforeach()
  if(cmd STREQUAL "")
    fail("smoke.cpp not found in ${db}")
  endif()
  message(STATUS "consumer compile line: ${cmd}")
  if(NOT cmd MATCHES "-std=(gnu|c)\\+\\+(20|2a)")
    fail("C++20 did not come with weft::weft")
  endif()
  if(NOT cmd MATCHES "(^| )-pthread( |$)")
    fail("-pthread did not come with weft::weft")
  endif()
  # The consumer's own strict flags are there once; anything more came from weft.
  if(NOT "${CONSUMER_STRICT_FLAGS}" STREQUAL "")
    string(FIND "${cmd}" "${CONSUMER_STRICT_FLAGS}" at)
    if(at EQUAL -1)
      fail("the consumer's strict flags are missing from its compile line")
    endif()
    string(REPLACE "${CONSUMER_STRICT_FLAGS}" "" cmd "${cmd}")
  endif()
  if(cmd MATCHES "-W(all|extra|pedantic|error|shadow|conversion)|-fsanitize")
    fail("weft leaked a build-only flag to its consumer: ${CMAKE_MATCH_0}")
  endif()
endfunction()

function(build_and_run_consumer)
  set(build "${WORK_DIR}/consumer-build")
  set(redis_args -DWEFT_REDIS=OFF)  # for a weft built inside the consumer's build
  if(CONSUMER_REDIS)
    set(redis_args -DWEFT_CONSUMER_REDIS=ON)
  endif()
  run("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${build}" ${common_args}
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON ${redis_args} ${ARGN})
  run("${CMAKE_COMMAND}" --build "${build}" --config "${CONSUMER_BUILD_TYPE}" -j 2)
  check_consumer_compile_line("${build}")
  if(EXISTS "${prefix}")
    file(STRINGS "${build}/CMakeCache.txt" weft_dir REGEX "^weft_DIR:")
    string(FIND "${weft_dir}" "=${prefix}/" at)
    if(at EQUAL -1)
      fail("find_package(weft) did not pick the test prefix: ${weft_dir}")
    endif()
  endif()
  file(GLOB_RECURSE exe LIST_DIRECTORIES false
       "${build}/consumer" "${build}/consumer.exe" "${build}/*/consumer" "${build}/*/consumer.exe")
  if(NOT exe)
    fail("consumer executable not found under ${build}")
  endif()
  list(GET exe 0 exe)
  run("${exe}")
  if(CONSUMER_REDIS)
    file(GLOB_RECURSE redis_exe LIST_DIRECTORIES false
         "${build}/consumer_redis" "${build}/consumer_redis.exe"
         "${build}/*/consumer_redis" "${build}/*/consumer_redis.exe")
    if(NOT redis_exe)
      fail("consumer_redis executable not found under ${build}")
    endif()
    list(GET redis_exe 0 redis_exe)
    run("${redis_exe}")
  endif()
  set(consumer_build "${build}" PARENT_SCOPE)
endfunction()

# find_package(weft X.Y) for a version newer than the one installed must fail, and say so:
# the next minor (before 1.0 a minor release may break the API) and the next patch.
function(check_version_too_high)
  file(GLOB_RECURSE version_file "${prefix}/*/weftConfigVersion.cmake")
  file(STRINGS "${version_file}" line REGEX "^set\\(PACKAGE_VERSION \"")
  if(NOT line MATCHES "\"([0-9]+)\\.([0-9]+)\\.([0-9]+)\"")
    fail("no PACKAGE_VERSION in ${version_file}")
  endif()
  set(major ${CMAKE_MATCH_1})
  set(minor ${CMAKE_MATCH_2})
  set(patch ${CMAKE_MATCH_3})
  math(EXPR next_minor "${minor} + 1")
  math(EXPR next_patch "${patch} + 1")
  foreach(asked "${major}.${next_minor}" "${major}.${minor}.${next_patch}")
    set(build "${WORK_DIR}/too-high-${asked}")
    message(STATUS "+ find_package(weft ${asked} CONFIG REQUIRED): must fail")
    execute_process(COMMAND "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${build}"
                            ${common_args} "-DCMAKE_PREFIX_PATH=${prefix}"
                            "-DWEFT_CONSUMER_VERSION=${asked}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(rc EQUAL 0)
      fail("find_package(weft ${asked}) accepted weft ${major}.${minor}.${patch}")
    endif()
    if(NOT err MATCHES "version: ${major}\\.${minor}\\.${patch}")
      fail("find_package(weft ${asked}) failed for another reason than the version:\n${err}")
    endif()
  endforeach()
endfunction()

# pkg-config: the compiler called directly with `pkg-config --cflags --libs weft`.
function(build_and_run_pkgconfig_consumer)
  find_program(pkg_config NAMES pkg-config pkgconf)
  if(NOT pkg_config)
    fail("pkg-config not found (scripts/test.sh installs it)")
  endif()
  file(GLOB_RECURSE pc_file "${prefix}/*/pkgconfig/weft.pc")
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  execute_process(COMMAND "${pkg_config}" --cflags --libs "weft >= 0.1"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE flags ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    fail("pkg-config --cflags --libs weft failed: ${err}")
  endif()
  # weft.pc is relocatable: its paths are relative to its own directory.
  if(NOT flags MATCHES "-I([^ ]+)" OR NOT flags MATCHES "(^| )-lweft( |$)")
    fail("pkg-config gave unexpected flags: ${flags}")
  endif()
  string(REGEX MATCH "-I([^ ]+)" _ "${flags}")
  get_filename_component(incdir "${CMAKE_MATCH_1}" ABSOLUTE)
  if(NOT incdir STREQUAL "${prefix}/include")
    fail("pkg-config's include directory ${incdir} is not ${prefix}/include")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  separate_arguments(strict UNIX_COMMAND "${CONSUMER_STRICT_FLAGS}")
  set(exe "${WORK_DIR}/pkgconfig-consumer")
  run("${CONSUMER_CXX_COMPILER}" -std=c++20 -O2 ${strict} "${CONSUMER_SOURCE_DIR}/smoke.cpp"
      -o "${exe}" ${flags})
  run("${exe}")
endfunction()

if(MODE STREQUAL "install")
  if(NOT WEFT_BINARY_DIR)
    fail("WEFT_BINARY_DIR is required")
  endif()
  run("${CMAKE_COMMAND}" --install "${WEFT_BINARY_DIR}" --prefix "${prefix}"
      --config "${CONSUMER_BUILD_TYPE}")
  check_install_tree()
  build_and_run_consumer("-DCMAKE_PREFIX_PATH=${prefix}")
  check_version_too_high()
  build_and_run_pkgconfig_consumer()

elseif(MODE STREQUAL "install_shared")
  set(CONSUMER_REDIS OFF)
  set(weft_build "${WORK_DIR}/weft-build")
  run("${CMAKE_COMMAND}" -S "${WEFT_SOURCE_DIR}" -B "${weft_build}" ${common_args}
      -DBUILD_SHARED_LIBS=ON -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_REDIS=OFF
      "-DCMAKE_INSTALL_PREFIX=${prefix}")
  run("${CMAKE_COMMAND}" --build "${weft_build}" --config "${CONSUMER_BUILD_TYPE}" -j 2)
  run("${CMAKE_COMMAND}" --install "${weft_build}" --config "${CONSUMER_BUILD_TYPE}")
  check_install_tree()
  file(GLOB_RECURSE shared_libs "${prefix}/*libweft.so*" "${prefix}/*libweft*.dylib"
                                "${prefix}/*weft.dll")
  if(NOT shared_libs)
    fail("BUILD_SHARED_LIBS=ON did not install a shared libweft")
  endif()
  build_and_run_consumer("-DCMAKE_PREFIX_PATH=${prefix}")

elseif(MODE STREQUAL "subdirectory" OR MODE STREQUAL "fetchcontent")
  if(MODE STREQUAL "fetchcontent")
    set(CONSUMER_REDIS OFF)
  endif()
  build_and_run_consumer("-DWEFT_CONSUMER_HOW=${MODE}"
                         "-DWEFT_CONSUMER_WEFT_DIR=${WEFT_SOURCE_DIR}")
  # As a subproject weft must stay out of the way: no tests, no examples, no -Werror.
  if(MODE STREQUAL "subdirectory")
    set(weft_bin "${consumer_build}/weft")
  else()
    set(weft_bin "${consumer_build}/_deps/weft-build")
  endif()
  if(NOT EXISTS "${weft_bin}")
    fail("weft's build directory is not where expected: ${weft_bin}")
  endif()
  foreach(dir tests examples)
    if(EXISTS "${weft_bin}/${dir}")
      fail("weft built its ${dir} as a subproject")
    endif()
  endforeach()
  file(STRINGS "${consumer_build}/CMakeCache.txt" werror REGEX "^WEFT_WERROR:BOOL=")
  if(NOT werror STREQUAL "WEFT_WERROR:BOOL=OFF")
    fail("WEFT_WERROR should default to OFF in a subproject (got '${werror}')")
  endif()

else()
  fail("unknown MODE '${MODE}'")
endif()

message(STATUS "WeftConsumerTest(${MODE}): passed")
