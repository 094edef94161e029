#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Style and static checks over include/, src/, tests/, bench/ and examples/; scripts/test.sh
# runs it as the "lint" step of the release configuration.
#   clang-format --dry-run -Werror   (.clang-format) over every .hpp/.h/.cpp there
#   clang-tidy --warnings-as-errors  (.clang-tidy; tests/, bench/ and examples/ have their own
#                                    .clang-tidy, the same checks without clang-analyzer-*),
#                                    over src/*.cpp (src/futex.cpp also with
#                                    -DWEFT_PORTABLE_FUTEX), one TU per public header, every
#                                    test and example TU of build/release/compile_commands.json
#                                    (configured if missing; nothing is built), and the bench
#                                    TUs of build/lint-bench (configured with
#                                    -DWEFT_BUILD_BENCHMARKS=ON, nothing built). A bench peer
#                                    whose headers are not installed (scripts/bench.sh installs
#                                    them) cannot be compiled: its file is reported as not
#                                    checked by clang-tidy.
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

dirs=(include src tests bench examples)
mapfile -t files < <(find "${dirs[@]}" -type f \( -name '*.hpp' -o -name '*.h' -o -name '*.cpp' \) 2>/dev/null | sort)
[ "${#files[@]}" -gt 0 ] || weft_die "nothing to lint in ${dirs[*]}"

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
  weft_configure release "$bdir"
fi
# The header-check TUs are generated at configure time; they give clang-tidy every public
# header in isolation (headers are checked through HeaderFilterRegex). Tests and examples:
# every TU of the compile database under tests/ and examples/; src/redis/*.cpp (weft::redis)
# when it is configured (hiredis found).
db_files() {  # db_files <compile_commands.json> <path regex>: its source files, sorted
  sed -n 's/^ *"file": "\(.*\)",\{0,1\}$/\1/p' "$1" | grep -E "$2" | sort -u
}
mapfile -t tus < <(ls src/*.cpp "$bdir"/tests/header_check/*.cpp 2>/dev/null
                   db_files "$bdir/compile_commands.json" "^$WEFT_ROOT/(tests|examples|src/redis)/")
# Benchmarks: a configure-only build directory with them on.
bench_dir="$(weft_build_dir lint-bench)"
if [ ! -f "$bench_dir/compile_commands.json" ] || [ bench/CMakeLists.txt -nt "$bench_dir/compile_commands.json" ]; then
  weft_configure release "$bench_dir" -DWEFT_BUILD_BENCHMARKS=ON -DWEFT_BUILD_TESTS=OFF \
    -DWEFT_BUILD_EXAMPLES=OFF >"$bench_dir.configure.log" 2>&1 ||
    { cat "$bench_dir.configure.log"; weft_die "configuring $bench_dir failed"; }
fi
mapfile -t bench_tus < <(db_files "$bench_dir/compile_commands.json" "^$WEFT_ROOT/bench/")
for f in bench/*.cpp; do
  if ! printf '%s\n' "${bench_tus[@]}" | grep -qx "$WEFT_ROOT/$f"; then
    weft_log "clang-tidy: $f not checked: its peer library is not installed (scripts/bench.sh installs it)"
  fi
done
weft_log "clang-tidy (${#tus[@]} + ${#bench_tus[@]} translation units, -j$WEFT_JOBS)"
# -D_Py_USE_GCC_BUILTIN_ATOMICS: Python 3.13's pyatomic.h asks __has_builtin(__atomic_load),
# which clang 14 answers no, and then has no implementation; GCC's builtins are what g++ uses.
tidy=("$CLANG_TIDY" --quiet --warnings-as-errors='*' --extra-arg=-D_Py_USE_GCC_BUILTIN_ATOMICS=1)
quiet() { grep -v -E '^[0-9]+ warnings? generated\.$'; }
set +e
# "-p <database> <file>" per TU, three arguments to each clang-tidy; the largest files first,
# so that no long TU is left to run alone at the end while the other cores idle.
{ for t in "${tus[@]}"; do printf '%s\t%s\t%s\n' "$(stat -c %s "$t")" "$bdir" "$t"; done
  for t in "${bench_tus[@]}"; do printf '%s\t%s\t%s\n' "$(stat -c %s "$t")" "$bench_dir" "$t"; done; } |
  sort -t $'\t' -k1,1nr | while IFS=$'\t' read -r _ db tu; do printf -- '-p\n%s\n%s\n' "$db" "$tu"; done |
  xargs -d '\n' -P "$WEFT_JOBS" -n 3 "${tidy[@]}" 2>&1 | quiet
[ "${PIPESTATUS[3]}" -eq 0 ] || status=1
# The portable futex fallback (the other half of src/futex.cpp; the configuration "portable"
# of scripts/test.sh builds it).
weft_log "clang-tidy (src/futex.cpp with -DWEFT_PORTABLE_FUTEX)"
"${tidy[@]}" -p "$bdir" --extra-arg=-DWEFT_PORTABLE_FUTEX src/futex.cpp 2>&1 | quiet
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

if [ "$status" -eq 0 ]; then weft_log "lint: clean"; else weft_log "lint: problems found"; fi
exit "$status"
