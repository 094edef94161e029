// SPDX-License-Identifier: MIT
// Default sanitizer runtime options for weft's test and example executables.
//
// Linked only into sanitizer builds. Baked into the binaries so that running a test
// directly, through ctest, or under gtest discovery behaves the same; an *SAN_OPTIONS
// environment variable still overrides any of these.

extern "C" {

// Report the stack of the second lock in lock-order inversions; a weft deadlock report is
// useless without it.
const char* __tsan_default_options() {
  return "second_deadlock_stack=1";
}

// weft lets an RLock be destroyed while a thread that has exited still holds it (Python's
// semantics); TSAN's mutex model, which RLock is annotated for, calls that "destroy of a
// locked mutex". The bad-input tests do it on purpose; nowhere else is it silenced.
// weft's own lock-order checking is tested (and shown) by taking weft Locks in opposite
// orders on purpose; TSAN, which sees weft's Locks through their annotations, reports the
// same inversions. Its reports are silenced in those two files only.
const char* __tsan_default_suppressions() {
  return "mutex:*BadInput_ReleasingWhatIsNotHeld_Test*\n"
         "mutex:*BadInput_NaNTimeoutsThrowInvalidArgumentOnEveryTimedForm_Test*\n"
         "deadlock:tests/conformance/diagnostics_hints_test.cpp\n"
         "deadlock:examples/diagnostics_hints.cpp\n";
}

const char* __asan_default_options() {
  return "check_initialization_order=1:strict_init_order=1:detect_leaks=1";
}

// With -fno-sanitize-recover=all the first report is fatal; make it come with a stack.
const char* __ubsan_default_options() {
  return "print_stacktrace=1";
}

}  // extern "C"
