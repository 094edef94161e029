#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft's full test suite: configures, builds and tests three configure presets of
# CMakePresets.json (their compilers, flags and suites are set there; `cmake --list-presets`),
# each in its own build directory, build/<preset>:
#
#   release   every suite: tests, examples, schedule explorer, spin model, packaging; the
#             conformance and stress tests a second time on the futex fallback
#             (std::mutex/condition_variable), linked from the same objects, label "portable"
#             + lint: scripts/lint.sh (clang-format, clang-tidy 14), counted as one test
#   tsan      ThreadSanitizer (clang 14): the tests, ctest under `setarch -R` when needed
#             + the Python package (tests/python/: CPython's own queue and lock suites,
#               weft's, the C++ interop example, pip install .) on 3.11 and 3.13, label "python"
#   asan      AddressSanitizer + UndefinedBehaviorSanitizer (g++): the tests, the Python ones too
#             (the interpreter with libasan preloaded)
#   portable  (only when named) the library and the suites that block built with the fallback
#
# `cmake --workflow --preset <name>` does the same for one preset without this script; the
# script adds what a fresh machine lacks (packages via apt-get), the TSAN probe, lint, a
# build that keeps going past errors, and one summary.
#
# Usage: scripts/test.sh [release|tsan|asan|portable]...   (default: release tsan asan)
#
# Exits non-zero if anything failed to configure, build, lint or pass. The last line is
# "<N> passed, <N> failed" over all configurations (a configuration that does not build
# counts as one failure; lint counts as one test). Extra arguments for ctest can be given in
# WEFT_CTEST_ARGS (e.g. "-R Queue"); WEFT_LINT=0 skips lint. WEFT_BUILD_ROOT puts the build
# directories elsewhere; WEFT_<PRESET>_CXX replaces a preset's compiler (scripts/common.sh).
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

ALL_CONFIGS=(release tsan asan)
configs=()
for arg in "$@"; do
  case "$arg" in
    release|tsan|asan|portable) configs+=("$arg") ;;
    -h|--help) sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) weft_die "unknown argument '$arg' (expected: release, tsan, asan, portable)" ;;
  esac
done
[ "${#configs[@]}" -gt 0 ] || configs=("${ALL_CONFIGS[@]}")

weft_ensure_packages "${configs[@]}"

# --- ThreadSanitizer vs. the kernel -------------------------------------------
# clang 14's TSAN maps its shadow memory at fixed addresses; with a high vm.mmap_rnd_bits
# (> 28 on x86-64, the default on recent kernels/distros) the program can land on them and
# TSAN dies with "FATAL: ThreadSanitizer: unexpected memory mapping". Disabling ASLR for the
# test run (setarch -R) avoids that without touching the system. Probe, then decide.
# Sets TSAN_RUNNER (array) or returns non-zero.
TSAN_RUNNER=()
tsan_probe() {
  local bdir="$1" cxx="$2" dir="$1/tsan-probe"
  mkdir -p "$dir"
  cat >"$dir/probe.cpp" <<'EOF'
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>
int main() {
  std::mutex m;
  std::condition_variable cv;
  int ready = 0;
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      sum += i;
      std::lock_guard<std::mutex> lock(m);
      ++ready;
      cv.notify_all();
    });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return ready == 4; });
  }
  for (auto& t : threads) t.join();
  std::printf("tsan probe ok %d\n", sum.load());
  return sum.load() == 6 ? 0 : 1;
}
EOF
  if ! "$cxx" -std=c++20 -fsanitize=thread -g -O1 -pthread "$dir/probe.cpp" -o "$dir/probe" \
       >"$dir/compile.log" 2>&1; then
    cat "$dir/compile.log" >&2
    weft_log "tsan: cannot build a ThreadSanitizer program with $cxx (sanitizer runtime missing?)"
    return 1
  fi
  local rnd
  rnd="$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?')"
  if [ -z "${WEFT_TSAN_FORCE_SETARCH:-}" ] &&
     timeout 60 "$dir/probe" >"$dir/run.log" 2>&1; then
    weft_log "tsan: ThreadSanitizer works as is (vm.mmap_rnd_bits=$rnd)"
    TSAN_RUNNER=()
    return 0
  fi
  [ -n "${WEFT_TSAN_FORCE_SETARCH:-}" ] || { weft_log "tsan: probe failed without setarch:"; cat "$dir/run.log" >&2; }
  local setarch_cmd=(setarch "$(uname -m)" -R)
  if command -v setarch >/dev/null 2>&1 &&
     timeout 60 "${setarch_cmd[@]}" "$dir/probe" >"$dir/run-setarch.log" 2>&1; then
    weft_log "tsan: ThreadSanitizer needs ASLR off here (vm.mmap_rnd_bits=$rnd): running ctest under '${setarch_cmd[*]}'"
    TSAN_RUNNER=("${setarch_cmd[@]}")
    return 0
  fi
  cat "$dir/run-setarch.log" >&2 2>/dev/null || true
  weft_log "tsan: ThreadSanitizer does not work on this kernel (vm.mmap_rnd_bits=$rnd), not even" \
           "under setarch -R. Try: sysctl -w vm.mmap_rnd_bits=28"
  return 1
}

# --- partial builds ----------------------------------------------------------------
# After a failed `ninja -k 0`: delete the executables whose build failed, so that ctest
# reports them (as "<target>_NOT_BUILT" / "Not Run") instead of running a stale binary from
# an earlier build. Returns non-zero when that is not possible or pointless: not Ninja, the
# build files themselves failed, or a library failed (every executable would be stale).
remove_unbuilt_executables() {
  local bdir="$1" line out target exe
  grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$bdir/CMakeCache.txt" || return 1
  grep -q '^FAILED: ' "$bdir/build.out" || return 1
  while IFS= read -r line; do
    for out in ${line#FAILED: }; do
      case "$out" in
        */CMakeFiles/*.dir/*|CMakeFiles/*.dir/*)
          target="$(sed -E 's|^(.*/)?CMakeFiles/([^/]+)\.dir/.*|\2|' <<<"$out")"
          exe="$(ninja -C "$bdir" -t query "$target" 2>/dev/null |
                 awk '/^  input: phony/ { getline; print $1; exit }')"
          case "$exe" in
            ""|*.a|*.so|*.so.*) return 1 ;;   # a library, or not a known target
          esac
          rm -f "$bdir/$exe" ;;
        *.a|*.so|*.so.*|build.ninja|*.cmake) return 1 ;;
        *) rm -f "$bdir/$out" ;;              # a failed link: the output is the executable
      esac
    done
  done < <(grep '^FAILED: ' "$bdir/build.out")
  return 0
}

# --- one configuration ----------------------------------------------------------
declare -A STATUS PASSED FAILED SKIPPED T_BUILD T_TEST
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

run_config() {
  local cfg="$1" bdir log start rc=0
  bdir="$(weft_build_dir "$cfg")"
  mkdir -p "$bdir"
  log="$bdir/weft-test.log"
  : >"$log"
  rm -f "$bdir/build.out" "$bdir/ctest.out"
  STATUS[$cfg]="" PASSED[$cfg]=0 FAILED[$cfg]=0 SKIPPED[$cfg]=0 T_BUILD[$cfg]=0 T_TEST[$cfg]=0

  weft_log "==== $cfg: configure + build (preset $cfg, ${bdir#"$WEFT_ROOT"/}) ===="
  start=$SECONDS
  # pipefail: each pipeline fails when configure or build does.
  if ! weft_configure "$cfg" "$bdir" 2>&1 | tee -a "$log"; then
    T_BUILD[$cfg]=$((SECONDS - start))
    STATUS[$cfg]="CONFIGURE FAILED"
    FAILED[$cfg]=1
    return
  fi
  local build_ok=1
  if ! weft_build "$bdir" 2>&1 | tee "$bdir/build.out"; then
    build_ok=0
    # The build kept going past the error (ninja -k 0). Run what did build, so one broken
    # test file does not hide every other result.
    if ! remove_unbuilt_executables "$bdir"; then
      cat "$bdir/build.out" >>"$log"
      T_BUILD[$cfg]=$((SECONDS - start))
      STATUS[$cfg]="BUILD FAILED"
      FAILED[$cfg]=1
      return
    fi
  fi
  cat "$bdir/build.out" >>"$log"
  T_BUILD[$cfg]=$((SECONDS - start))

  local runner=()
  if [ "$cfg" = tsan ]; then
    if ! tsan_probe "$bdir" "$(weft_configured_cxx "$bdir")"; then
      STATUS[$cfg]="TSAN UNUSABLE"
      FAILED[$cfg]=1
      return
    fi
    runner=("${TSAN_RUNNER[@]}")
  fi

  weft_log "==== $cfg: ctest -j$WEFT_JOBS ${runner[*]:+(under ${runner[*]})} ===="
  start=$SECONDS
  local ctest_out="$bdir/ctest.out"
  # shellcheck disable=SC2086
  "${runner[@]}" ctest --test-dir "$bdir" -j "$WEFT_JOBS" --output-on-failure --no-tests=error \
      ${WEFT_CTEST_ARGS:-} 2>&1 | tee "$ctest_out" || rc=$?
  cat "$ctest_out" >>"$log"
  T_TEST[$cfg]=$((SECONDS - start))

  # "97% tests passed, 3 tests failed out of 120"; skipped tests count as passed there.
  local summary total failed skipped
  summary="$(grep -E '[0-9]+ tests failed out of [0-9]+' "$ctest_out" | tail -n1 || true)"
  if [ -z "$summary" ]; then
    STATUS[$cfg]="CTEST ERROR (rc=$rc)"
    FAILED[$cfg]=1
    return
  fi
  failed="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$summary")"
  skipped="$(grep -cE '^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$' "$ctest_out" || true)"
  PASSED[$cfg]=$((total - failed - skipped))
  FAILED[$cfg]=$failed
  SKIPPED[$cfg]=$skipped
  if [ "$build_ok" -eq 0 ]; then
    STATUS[$cfg]="BUILD FAILED"
    [ "$failed" -gt 0 ] || FAILED[$cfg]=1
  elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    STATUS[$cfg]="CTEST ERROR (rc=$rc)"
    FAILED[$cfg]=1
  elif [ "$failed" -ne 0 ]; then
    STATUS[$cfg]="FAIL"
  else
    STATUS[$cfg]="PASS"
  fi
}

# --- lint (a step of the release configuration) -----------------------------------
# scripts/lint.sh with release's compile_commands.json; one test, passed or failed.
LINT_STATUS="" T_LINT=0
run_lint() {
  local bdir
  bdir="$(weft_build_dir release)"
  mkdir -p "$bdir"
  weft_log "==== release: lint (scripts/lint.sh) ===="
  local start=$SECONDS
  if bash "$WEFT_ROOT/scripts/lint.sh" 2>&1 | tee "$bdir/lint.out"; then
    LINT_STATUS=PASS
    PASSED[release]=$((PASSED[release] + 1))
  else
    LINT_STATUS=FAIL
    FAILED[release]=$((FAILED[release] + 1))
    [ "${STATUS[release]}" != PASS ] || STATUS[release]="LINT FAILED"
  fi
  T_LINT=$((SECONDS - start))
  cat "$bdir/lint.out" >>"$bdir/weft-test.log"
}

overall_start=$SECONDS
for cfg in "${configs[@]}"; do
  run_config "$cfg"
  [ "$cfg" != release ] || [ "${WEFT_LINT:-1}" = 0 ] || run_lint
  TOTAL_PASSED=$((TOTAL_PASSED + PASSED[$cfg]))
  TOTAL_FAILED=$((TOTAL_FAILED + FAILED[$cfg]))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + SKIPPED[$cfg]))
done

# --- summary ----------------------------------------------------------------------
echo
echo "================================ weft test summary ================================"
for cfg in "${configs[@]}"; do
  bdir="$(weft_build_dir "$cfg")"
  printf '%-8s %-22s %4d passed, %3d failed, %3d skipped   build %s, tests %s   log: %s/weft-test.log\n' \
    "$cfg" "${STATUS[$cfg]}" "${PASSED[$cfg]}" "${FAILED[$cfg]}" "${SKIPPED[$cfg]}" \
    "$(weft_fmt_seconds "${T_BUILD[$cfg]}")" "$(weft_fmt_seconds "${T_TEST[$cfg]}")" "${bdir#"$WEFT_ROOT"/}"
  if [ "$cfg" = release ] && [ -n "$LINT_STATUS" ]; then
    printf '  + lint %-22s (one test of the line above)       lint %s   log: %s/lint.out\n' \
      "$LINT_STATUS" "$(weft_fmt_seconds "$T_LINT")" "${bdir#"$WEFT_ROOT"/}"
    if [ "$LINT_STATUS" = FAIL ]; then
      grep -E '(error|warning): ' "$bdir/lint.out" | sed "s|^$WEFT_ROOT/||" | sort -u |
        head -n 20 | sed 's/^/           /' || true
    fi
  fi
  if [ -f "$(weft_build_dir "$cfg")/build.out" ] && [ "${STATUS[$cfg]}" = "BUILD FAILED" ]; then
    grep -E '^FAILED: ' "$(weft_build_dir "$cfg")/build.out" | sed 's/^/           build /' | head -n 20 || true
  fi
  if [ "${STATUS[$cfg]}" = FAIL ] || [ "${STATUS[$cfg]}" = "BUILD FAILED" ]; then
    if [ -f "$(weft_build_dir "$cfg")/ctest.out" ]; then
      sed -n '/The following tests FAILED:/,/^Errors while running CTest/p' \
        "$(weft_build_dir "$cfg")/ctest.out" | grep -E '^[[:space:]]+[0-9]+ - ' |
        sed 's/^[[:space:]]*/           /' || true
    fi
  fi
done
echo "total time $(weft_fmt_seconds $((SECONDS - overall_start))); $TOTAL_SKIPPED skipped (not counted below)"
echo "==================================================================================="
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"

[ "$TOTAL_FAILED" -eq 0 ]
