#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/model/run.sh: checks the spin models of tests/model (parker.pml, wait_loop.pml)
# exhaustively, one configuration at a time (spin -a, gcc, pan: full state space, assertions
# + invalid end states). Fails on any error or incomplete search, printing the
# counterexample trail, and on a negative control (a seeded bug) that finds no error.
#
#   tests/model/run.sh [--all] [CONFIG...]
#
# Without arguments the quick configurations and the negative controls run (about a minute
# and a half of CPU in all; a list of configuration names runs those); --all adds the
# big ones (tens of minutes, several GB of memory). Needs spin (Debian package `spin`) and
# gcc; exits 77 without them. Work files go to $WEFT_MODEL_DIR (default: a new temporary dir).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${WEFT_MODEL_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/weft_model.XXXXXX")}

# name | model | spin -D flags | quick (1), big (0), or xfail (quick, and must find an error:
# a seeded bug, the negative control that shows the configuration can fail).
# parker.pml: the Parker word, futex, WordLock and stop_callback layer under an Event.
# ABSTRACT_LOCK: the list lock is an atomic mutex (the WordLock's futex protocol is kept in
# the *_wordlock configurations).
# wait_loop.pml: the one wait loop over word- and flag-announced sources, select, pass_on,
# Position::front, the Lock, and Condition's wait morphing (its header lists what mirrors what).
configs=(
  # CPython 13502 and lost wake-ups: two untimed waiters, set() and clear() racing them.
  "event_13502|parker|-DNW=2 -DTIMED=0 -DCANCEL=0 -DCLEARER=1 -DSPURIOUS=0 -DABSTRACT_LOCK|1"
  # The same with the futex WordLock guarding the list (15M states: --all).
  "event_13502_wordlock|parker|-DNW=2 -DTIMED=0 -DCANCEL=0 -DCLEARER=1 -DSPURIOUS=0|0"
  # A timed waiter whose deadline races the claim; spurious wake-ups.
  "event_timeout|parker|-DNW=2 -DTIMED=2 -DCANCEL=0 -DCLEARER=0 -DSPURIOUS=1 -DABSTRACT_LOCK|1"
  # A cancellable waiter whose stop request races the claim.
  "event_cancel|parker|-DNW=2 -DTIMED=0 -DCANCEL=2 -DCLEARER=0 -DSPURIOUS=0 -DABSTRACT_LOCK|1"
  # One park, three deciders: the claim, the deadline and the stop callback; and clear(); the
  # futex WordLock.
  "event_three_deciders|parker|-DNW=1 -DTIMED=1 -DCANCEL=1 -DCLEARER=1 -DSPURIOUS=1|1"
  # Bigger (--all): the WordLock everywhere, more deciders together, three waiters.
  "event_timeout_clear_wordlock|parker|-DNW=2 -DTIMED=2 -DCANCEL=0 -DCLEARER=1 -DSPURIOUS=1|0"
  "event_cancel_wordlock|parker|-DNW=2 -DTIMED=0 -DCANCEL=2 -DCLEARER=0 -DSPURIOUS=0|0"
  "event_three_waiters|parker|-DNW=3 -DTIMED=4 -DCANCEL=2 -DCLEARER=1 -DSPURIOUS=0 -DABSTRACT_LOCK|0"
  # A queue's getters (flag source): two getters, one item; the retry after a claim throws
  # once (pass_on); getter 1's deadline races the claim.
  "queue_pass_on|wait_loop|-DCONFIG=C_QUEUE -DTHROWS=1 -DTIMED=2|1"
  # The same with a stop request racing the claim of getter 0.
  "queue_cancel|wait_loop|-DCONFIG=C_QUEUE -DTHROWS=1 -DCANCEL=1|1"
  # select over two queues (one waiter, two nodes) against a plain getter: two claimers race
  # for the selector, whose deadline races them; the claimed retry throws once.
  "select_two|wait_loop|-DCONFIG=C_SELECT -DTIMED=1 -DTHROWS=1|1"
  "select_cancel|wait_loop|-DCONFIG=C_SELECT -DCANCEL=3 -DTHROWS=1|1"
  # The Lock (word source): three threads, one twice (a woken waiter is beaten and
  # re-registers in front), a timed and a cancellable acquirer; mutual exclusion.
  "lock|wait_loop|-DCONFIG=C_LOCK -DTIMED=2 -DCANCEL=4|1"
  # Condition over the Lock: wait morphing (notify defers the wake to the release), a timed
  # waiter, a cancellable third thread contending for the Lock.
  "condition_morph|wait_loop|-DCONFIG=C_CONDITION -DTIMED=1 -DCANCEL=4|1"
  # A cancellable Condition waiter.
  "condition_cancel|wait_loop|-DCONFIG=C_CONDITION -DCANCEL=1|1"
  # Negative controls: each seeded bug must be found.
  "bug_no_recheck|wait_loop|-DCONFIG=C_QUEUE -DBUG_NO_RECHECK|xfail"
  "bug_no_pass_on|wait_loop|-DCONFIG=C_QUEUE -DTHROWS=1 -DBUG_NO_PASS_ON|xfail"
  "bug_morph_lost|wait_loop|-DCONFIG=C_CONDITION -DBUG_MORPH_LOST|xfail"
  "bug_claim_decided|wait_loop|-DCONFIG=C_LOCK -DTIMED=2 -DCANCEL=4 -DBUG_CLAIM_DECIDED=1|xfail"
  "bug_word_split_check|wait_loop|-DCONFIG=C_LOCK -DBUG_WORD_SPLIT_CHECK|xfail"
  "bug_release_blind|wait_loop|-DCONFIG=C_LOCK -DTIMED=2 -DBUG_RELEASE_BLIND|xfail"
)

all=0
selected=()
for a in "$@"; do
  case "$a" in
    --all) all=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) selected+=("$a") ;;
  esac
done

# 77: ctest's SKIP_RETURN_CODE for this test (see docs/reliability.md).
command -v spin >/dev/null || { echo "run.sh: spin not found (apt-get install spin)"; exit 77; }
command -v gcc >/dev/null || { echo "run.sh: gcc not found"; exit 77; }
mkdir -p "$work"
failed=0
total_states=0
ran=0
for c in "${configs[@]}"; do
  IFS='|' read -r name model defs quick <<<"$c"
  if ((${#selected[@]})); then
    [[ " ${selected[*]} " == *" $name "* ]] || continue
  elif [[ $quick == 0 && $all != 1 ]]; then
    continue
  fi
  ran=$((ran + 1))
  dir="$work/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/$model.pml" "$dir/"
  start=$(date +%s)
  # shellcheck disable=SC2086  # defs is a list of flags
  (cd "$dir" && spin $defs -a "$model.pml" >spin.log 2>&1) || {
    echo "model $name: spin -a failed"; cat "$dir/spin.log"; failed=1; continue; }
  # -O0: most configurations compile longer at -O2 than pan runs.
  (cd "$dir" && gcc -O0 -DSAFETY -DCOLLAPSE -DMEMLIM=6144 -o pan pan.c >gcc.log 2>&1) || {
    echo "model $name: gcc failed"; cat "$dir/gcc.log"; failed=1; continue; }
  (cd "$dir" && ./pan -m500000 -w24 >pan.log 2>&1) || true
  secs=$(($(date +%s) - start))
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log" | tail -1)
  states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' "$dir/pan.log" | tail -1)
  trans=$(sed -n 's/^ *\([0-9e.+]*\) transitions.*/\1/p' "$dir/pan.log" | tail -1)
  depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$dir/pan.log" | tail -1)
  if [[ $quick == xfail ]]; then
    if [[ "$errors" != "0" && -n "$errors" ]] && ls "$dir"/*.trail >/dev/null 2>&1; then
      printf 'model %-24s ok: counterexample found, as expected (%s)\n' "$name" \
        "$(grep -m1 -E 'assertion violated|invalid end state' "$dir/pan.log" | sed 's/^pan:1: //')"
    else
      echo "model $name: FAILED (the seeded bug was not found; flags: $defs)"
      failed=1
    fi
    continue
  fi
  if [[ "$errors" != "0" ]] || grep -qE "Search not completed|max search depth too small|out of memory" "$dir/pan.log"; then
    echo "model $name: FAILED (errors: ${errors:-?}; flags: $defs)"
    grep -E "pan:|assertion|invalid end|Search not" "$dir/pan.log" | head -5
    if ls "$dir"/*.trail >/dev/null 2>&1; then
      echo "  counterexample (spin -t -p in $dir):"
      # shellcheck disable=SC2086
      (cd "$dir" && spin $defs -t -p -g "$model.pml" | tail -60)
    fi
    failed=1
  else
    total_states=$((total_states + ${states%%.*}))
    printf 'model %-24s ok: %10s states, %11s transitions, depth %4s, %4ss  (%s)\n' \
      "$name" "$states" "$trans" "$depth" "$secs" "$defs"
  fi
done
if ((ran == 0)); then
  echo "run.sh: no configuration selected"
  exit 2
fi
echo "model: $ran configuration(s), $total_states states explored, $( ((failed)) && echo "FAILED (work files in $work)" || echo 'no errors')"
exit "$failed"
