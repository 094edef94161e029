# SPDX-License-Identifier: MIT
# Provides GTest::gtest and GTest::gtest_main for weft's tests.
#
# Sanitizer builds compile GoogleTest from source (WEFT_GOOGLETEST_SOURCE_DIR, Debian's
# `googletest` package installs it in /usr/src/googletest) so that it is instrumented like
# everything else: an uninstrumented gtest gives TSAN false positives and hides ASan reports.
# Plain builds use an installed GoogleTest when there is one, else the same sources.

include_guard(GLOBAL)

set(WEFT_GOOGLETEST_SOURCE_DIR "/usr/src/googletest" CACHE PATH
  "GoogleTest sources, used for sanitizer builds or when no installed GTest is found")

function(_weft_googletest_from_source)
  if(NOT EXISTS "${WEFT_GOOGLETEST_SOURCE_DIR}/CMakeLists.txt")
    message(FATAL_ERROR
      "weft: GoogleTest sources not found in '${WEFT_GOOGLETEST_SOURCE_DIR}'. "
      "Install them (Debian: apt-get install googletest libgtest-dev) or set "
      "WEFT_GOOGLETEST_SOURCE_DIR, or configure with -DWEFT_BUILD_TESTS=OFF.")
  endif()
  # Function scope: these settings stay local to the GoogleTest subproject.
  set(INSTALL_GTEST OFF)
  set(BUILD_GMOCK ON)           # cheap: EXCLUDE_FROM_ALL builds only what tests link
  set(gtest_force_shared_crt ON)
  set(CMAKE_POLICY_DEFAULT_CMP0077 NEW)   # let the set()s above win over option()
  # SYSTEM: gtest's headers never trip our -Werror.
  add_subdirectory("${WEFT_GOOGLETEST_SOURCE_DIR}" "${PROJECT_BINARY_DIR}/_deps/googletest"
    EXCLUDE_FROM_ALL SYSTEM)
  message(STATUS "weft: GoogleTest built from ${WEFT_GOOGLETEST_SOURCE_DIR}")
endfunction()

if(TARGET GTest::gtest_main)
  # Already provided (e.g. by a parent project).
elseif(WEFT_SANITIZE)
  _weft_googletest_from_source()
else()
  find_package(GTest CONFIG QUIET)
  if(NOT TARGET GTest::gtest_main)
    find_package(GTest MODULE QUIET)
  endif()
  if(TARGET GTest::gtest_main)
    message(STATUS "weft: using installed GoogleTest ${GTest_VERSION}")
  else()
    _weft_googletest_from_source()
  endif()
endif()

include(GoogleTest)
