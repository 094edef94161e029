#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the examples (release configuration, build/release) and runs each one with its
# default arguments, one after the other. Fails if any example fails to build or exits
# non-zero (or runs longer than WEFT_DEMO_TIMEOUT seconds, default 600).
#
# Usage: scripts/demos.sh [name...]     (default: every examples/*.cpp, in name order)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

names=("$@")
if [ "${#names[@]}" -eq 0 ]; then
  for src in examples/*.cpp; do
    [ -e "$src" ] || continue
    names+=("$(basename "$src" .cpp)")
  done
fi
[ "${#names[@]}" -gt 0 ] || weft_die "no examples/*.cpp found"

weft_ensure_packages release
bdir="$(weft_build_dir release)"
weft_configure release "$bdir"
weft_build "$bdir" --target weft_examples

passed=0 failed=0 failures=()
for name in "${names[@]}"; do
  exe="$bdir/examples/$name"
  [ -x "$exe" ] || weft_die "example '$name' was not built ($exe)"
  weft_log "==== $name ===="
  start=$SECONDS
  if timeout --foreground "${WEFT_DEMO_TIMEOUT:-600}" "$exe"; then
    weft_log "---- $name: ok ($(weft_fmt_seconds $((SECONDS - start))))"
    passed=$((passed + 1))
  else
    rc=$?
    weft_log "---- $name: FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))"
    failed=$((failed + 1))
    failures+=("$name")
  fi
  echo
done

echo "demos: $passed passed, $failed failed${failures[*]:+ (${failures[*]})}"
[ "$failed" -eq 0 ]
