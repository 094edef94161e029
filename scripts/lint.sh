#!/usr/bin/env bash
# Style and static checks over the library (include/ and src/); scripts/test.sh runs it as
# the "lint" step of the release configuration.
#   clang-format --dry-run -Werror   (.clang-format)
#   clang-tidy --warnings-as-errors  (.clang-tidy), with build/release/compile_commands.json
#                                    (configured if missing; nothing is built), over
#                                    src/*.cpp (src/futex.cpp also with
#                                    -DWEFT_PORTABLE_FUTEX) and one TU per public header
# Exits non-zero on any formatting difference or clang-tidy warning.
# Usage: scripts/lint.sh [--fix]    (--fix: rewrite files with clang-format instead of checking)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$WEFT_ROOT"

fix=0
[ "${1:-}" = "--fix" ] && fix=1

pick() { local t; for t in "$@"; do command -v "$t" >/dev/null 2>&1 && { echo "$t"; return; }; done; }
CLANG_FORMAT="${CLANG_FORMAT:-$(pick clang-format-14 clang-format)}"
CLANG_TIDY="${CLANG_TIDY:-$(pick clang-tidy-14 clang-tidy)}"
if [ -z "$CLANG_FORMAT" ] || [ -z "$CLANG_TIDY" ]; then
  _weft_apt_install clang-format-14 clang-tidy-14
  CLANG_FORMAT="$(pick clang-format-14 clang-format)"
  CLANG_TIDY="$(pick clang-tidy-14 clang-tidy)"
fi

mapfile -t files < <(find include src -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' \) 2>/dev/null | sort)
[ "${#files[@]}" -gt 0 ] || weft_die "nothing to lint in include/ or src/"

status=0
weft_log "clang-format (${#files[@]} files)"
if [ "$fix" -eq 1 ]; then
  "$CLANG_FORMAT" -i "${files[@]}"
else
  "$CLANG_FORMAT" --dry-run -Werror "${files[@]}" || status=1
fi

bdir="$(weft_build_dir release)"
if [ ! -f "$bdir/compile_commands.json" ]; then
  weft_ensure_packages release
  weft_configure release
fi
# The header-check TUs are generated at configure time; they give clang-tidy every public
# header in isolation (headers are checked through HeaderFilterRegex).
# src/redis/*.cpp (weft::redis) when it is configured (hiredis found).
mapfile -t tus < <(ls src/*.cpp "$bdir"/tests/header_check/*.cpp 2>/dev/null
                   grep -o '"file": "[^"]*src/redis/[^"]*\.cpp"' "$bdir/compile_commands.json" |
                     sed 's/"file": "\(.*\)"/\1/' | sort -u)
weft_log "clang-tidy (${#tus[@]} translation units, -j$WEFT_JOBS)"
tidy=("$CLANG_TIDY" -p "$bdir" --quiet --warnings-as-errors='*')
quiet() { grep -v -E '^[0-9]+ warnings? generated\.$'; }
set +e
printf '%s\n' "${tus[@]}" | xargs -P "$WEFT_JOBS" -n 1 "${tidy[@]}" 2>&1 | quiet
[ "${PIPESTATUS[1]}" -eq 0 ] || status=1
# The portable futex fallback (the other half of src/futex.cpp; the configuration "portable"
# of scripts/test.sh builds it).
weft_log "clang-tidy (src/futex.cpp with -DWEFT_PORTABLE_FUTEX)"
"${tidy[@]}" --extra-arg=-DWEFT_PORTABLE_FUTEX src/futex.cpp 2>&1 | quiet
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

if [ "$status" -eq 0 ]; then weft_log "lint: clean"; else weft_log "lint: problems found"; fi
exit "$status"
