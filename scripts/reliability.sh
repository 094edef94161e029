#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft's reliability figures (docs/reliability.md): builds and runs every reliability suite
# in an optimized build and prints what they checked, all with nothing lost:
#
#   dsched    deterministic schedule exploration (tests/dsched, default budgets)
#   model     the Promela models of the waiting layer (tests/model/run.sh; needs spin)
#   torture   long mixed queue workloads and lost-wake-up hunts (tests/torture)
#   fault     allocation failure sweeps (tests/fault)
#   badinput  the bad-input table and the clock checks (tests/conformance)
#
# Usage: scripts/reliability.sh [--scale K] [SUITE...]     (default: every suite, K = 5)
#
# --scale K runs the torture suite K times longer (WEFT_TORTURE_SCALE=K); CI runs it at 1
# through ctest (scripts/test.sh), in all three configurations. The build goes to
# build/reliability (WEFT_BUILD_ROOT as for test.sh). Exits non-zero if any suite failed.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

scale=5
suites=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --scale=*) scale="${1#--scale=}"; shift ;;
    dsched|model|torture|fault|badinput) suites+=("$1"); shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) weft_die "unknown argument '$1'" ;;
  esac
done
[ "${#suites[@]}" -gt 0 ] || suites=(dsched model torture fault badinput)
want() { local s; for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

weft_ensure_packages release
bdir="$(weft_build_dir reliability)"
logs="$bdir/reliability-logs"
mkdir -p "$logs"

weft_log "configure + build ($bdir)"
weft_configure release "$bdir" -DWEFT_BUILD_EXAMPLES=OFF >"$logs/configure.log" 2>&1 ||
  { cat "$logs/configure.log"; weft_die "configure failed"; }
targets=()
want dsched && targets+=(weft_dsched)
want torture && targets+=(torture_queue_torture_test torture_lost_wakeup_test)
want fault && targets+=(fault_alloc_fault_test)
want badinput && targets+=(conformance_bad_input_test conformance_clock_test)
if [ "${#targets[@]}" -gt 0 ]; then
  cmake --build "$bdir" -j "$WEFT_JOBS" --target "${targets[@]}" >"$logs/build.log" 2>&1 ||
    { tail -50 "$logs/build.log"; weft_die "build failed"; }
fi

failed=0
declare -A figure
declare -A seconds
add_figures() {  # sums the "weft-figure: name=value" lines of a log
  local name value
  while IFS='=' read -r name value; do
    figure[$name]=$(( ${figure[$name]:-0} + value ))
  done < <(sed -n 's/^weft-figure: \([a-z_]*\)=\([0-9]*\)$/\1=\2/p' "$1")
}
run_suite() {  # run_suite <name> <command...>
  local name="$1" start rc=0
  shift
  weft_log "$name: $*"
  start=$SECONDS
  "$@" >"$logs/$name.log" 2>&1 || rc=$?
  seconds[$name]=$((SECONDS - start))
  if [ "$rc" -ne 0 ] && { [ "$name" != model ] || [ "$rc" -ne 77 ]; }; then
    weft_log "$name FAILED (rc=$rc): see $logs/$name.log"
    tail -30 "$logs/$name.log" >&2
    failed=1
  fi
  return 0
}

if want dsched; then
  run_suite dsched "$bdir/tests/dsched/weft_dsched"
  line="$(grep '^dsched:' "$logs/dsched.log" | tail -1 || true)"
  figure[dsched_schedules]="$(sed -n 's/^dsched: \([0-9]*\) schedules.*/\1/p' <<<"$line")"
  figure[dsched_distinct]="$(sed -n 's/.* \([0-9]*\) distinct interleavings.*/\1/p' <<<"$line")"
  figure[dsched_failures]="$(sed -n 's/.*failures \([0-9]*\).*/\1/p' <<<"$line")"
fi
if want model; then
  run_suite model bash tests/model/run.sh
  line="$(grep '^model:' "$logs/model.log" | tail -1 || true)"
  figure[model_configurations]="$(sed -n 's/^model: \([0-9]*\) configuration.*/\1/p' <<<"$line")"
  figure[model_states]="$(sed -n 's/.* \([0-9]*\) states explored.*/\1/p' <<<"$line")"
fi
if want torture; then
  run_suite torture_queue env WEFT_TORTURE_SCALE="$scale" "$bdir/tests/torture/torture_queue_torture_test"
  add_figures "$logs/torture_queue.log"
  run_suite torture_lost_wakeup env WEFT_TORTURE_SCALE="$scale" "$bdir/tests/torture/torture_lost_wakeup_test"
  add_figures "$logs/torture_lost_wakeup.log"
fi
if want fault; then
  run_suite fault "$bdir/tests/fault/fault_alloc_fault_test"
  add_figures "$logs/fault.log"
fi
if want badinput; then
  run_suite badinput "$bdir/tests/conformance/conformance_bad_input_test"
  add_figures "$logs/badinput.log"
  run_suite clock "$bdir/tests/conformance/conformance_clock_test"
  add_figures "$logs/clock.log"
fi

row() { printf '  %-58s %15s\n' "$1" "${2:-n/a}"; }
echo
echo "========================= weft reliability figures (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')) ========================="
if want dsched; then
  row "dsched: schedules explored" "${figure[dsched_schedules]:-}"
  row "dsched: distinct interleavings" "${figure[dsched_distinct]:-}"
  row "dsched: failures" "${figure[dsched_failures]:-}"
fi
if want model; then
  row "model: configurations checked" "${figure[model_configurations]:-}"
  row "model: states explored" "${figure[model_states]:-}"
fi
if want torture; then
  row "torture (scale $scale): items moved, each accounted for" "${figure[torture_items_moved]:-}"
  row "torture: failed puts/gets (item kept / nothing taken)" \
    "$(( ${figure[torture_failed_puts]:-0} + ${figure[torture_failed_gets]:-0} ))"
  row "torture: stop requests fired at workers" "${figure[torture_stops_fired]:-}"
  row "lost-wake-up hunts: racing calls" "${figure[lost_wakeup_rounds]:-}"
fi
if want fault; then
  row "fault: allocation failures injected" "${figure[alloc_faults_injected]:-}"
  row "fault: sweep trials" "${figure[alloc_fault_trials]:-}"
fi
if want badinput; then
  row "bad inputs tried" "${figure[bad_inputs_tried]:-}"
  row "clock forms checked" "${figure[clock_forms_checked]:-}"
fi
for s in "${!seconds[@]}"; do printf '  time %-20s %6ss\n' "$s" "${seconds[$s]}"; done | sort
echo "  result: $( ((failed)) && echo "FAILED (logs in $logs)" || echo 'every suite passed: nothing lost')"
[ "$failed" -eq 0 ]
