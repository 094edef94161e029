# SPDX-License-Identifier: MIT
# Run by ctest before the tests (TEST_INCLUDE_FILES, see CMakeLists.txt): asks the explorer
# for the scenarios registered in scenarios.cpp (`weft_dsched --list-names`) and declares
# one test dsched.<name> for each. A scenario added in the code runs without touching a list.
#
# Nothing skips silently: when the explorer is missing (its build failed) or cannot list its
# scenarios, a test dsched.discovery is declared that fails and says why.
#
# Set by the generated include file: WEFT_DSCHED_EXE, WEFT_DSCHED_TIMEOUT, WEFT_CMAKE_COMMAND.

set(_why "")
if(NOT EXISTS "${WEFT_DSCHED_EXE}")
  set(_why "${WEFT_DSCHED_EXE} was not built")
else()
  execute_process(COMMAND "${WEFT_DSCHED_EXE}" --list-names
    OUTPUT_VARIABLE _names ERROR_VARIABLE _err RESULT_VARIABLE _rc TIMEOUT 60)
  string(STRIP "${_names}" _names)
  if(NOT _rc EQUAL 0)
    set(_why "weft_dsched --list-names failed (${_rc}): ${_err}")
  elseif(_names STREQUAL "")
    set(_why "weft_dsched --list-names listed no scenario")
  endif()
endif()

if(NOT _why STREQUAL "")
  # ctest's own add_test: name, then the command, which prints why; the output fails it.
  string(REPLACE "\"" "'" _why "${_why}")
  add_test(dsched.discovery "${WEFT_CMAKE_COMMAND}" -E echo "dsched discovery failed: ${_why}")
  set_tests_properties(dsched.discovery PROPERTIES LABELS dsched
    FAIL_REGULAR_EXPRESSION "discovery failed")
  return()
endif()

string(REPLACE "\n" ";" _names "${_names}")
foreach(_name IN LISTS _names)
  add_test(dsched.${_name} "${WEFT_DSCHED_EXE}" --scenario=${_name})
  set_tests_properties(dsched.${_name} PROPERTIES LABELS dsched TIMEOUT ${WEFT_DSCHED_TIMEOUT})
endforeach()
