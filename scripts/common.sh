# shellcheck shell=bash
# Shared by scripts/test.sh, scripts/demos.sh and scripts/lint.sh. Source it; do not run it.
#
# Build configurations (each in build/<name>, or $WEFT_BUILD_ROOT/<name>):
#   release  g++,        RelWithDebInfo (-O2 -g1), -Werror
#   tsan     clang++-14, ThreadSanitizer, -O1 -g1, asserts on, -Werror
#   asan     g++,        AddressSanitizer + UndefinedBehaviorSanitizer, -O1 -g1, asserts on,
#            _GLIBCXX_ASSERTIONS; warnings shown but not fatal (GCC's manual advises against
#            -Werror with sanitizers: they cause false -Wmaybe-uninitialized & co.)
#   portable g++,        as release, with -DWEFT_PORTABLE_FUTEX=ON (the mutex/condition-variable
#            fallback of src/futex.cpp instead of Linux futexes); no examples, no dsched
#
# Debug info is line tables only (-g1) everywhere: enough for backtraces and sanitizer
# reports, and it halves the compile time of the template-heavy tests (full -g at -O2
# spends as long in var-tracking/DWARF as in everything else).
#
# Environment overrides: WEFT_RELEASE_CXX, WEFT_TSAN_CXX, WEFT_ASAN_CXX, WEFT_PORTABLE_CXX
# (and *_CC), WEFT_JOBS (default 2), WEFT_CMAKE_GENERATOR, WEFT_BUILD_ROOT (default build/:
# where the build directories go, e.g. to keep experiments apart from build/release).

WEFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEFT_JOBS="${WEFT_JOBS:-2}"

weft_log() { printf '\033[1m[weft]\033[0m %s\n' "$*" >&2; }
weft_die() { printf '\033[1;31m[weft] error:\033[0m %s\n' "$*" >&2; exit 1; }

weft_fmt_seconds() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# --- packages ----------------------------------------------------------------

_weft_pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

_weft_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else weft_die "need root (or sudo) to run: $*"
  fi
}

# apt-get install, non-interactively; `apt-get update` only when the package lists are
# missing or the first attempt fails.
_weft_apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    weft_die "missing packages ($*) and no apt-get to install them"
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    weft_log "apt-get update (no package lists yet)"
    _weft_as_root apt-get update -q
  fi
  weft_log "apt-get install $*"
  if ! _weft_as_root apt-get install -y -q --no-install-recommends "$@"; then
    weft_log "install failed; apt-get update and retry"
    _weft_as_root apt-get update -q
    _weft_as_root apt-get install -y -q --no-install-recommends "$@"
  fi
}

# weft_ensure_packages <config>...  installs whatever the given configurations need.
weft_ensure_packages() {
  local need=() cfg
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v ctest >/dev/null 2>&1 || need+=(cmake)
  command -v make >/dev/null 2>&1 || command -v ninja >/dev/null 2>&1 || need+=(make)
  for cfg in "$@"; do
    case "$cfg" in
      release|asan|portable)
        command -v g++ >/dev/null 2>&1 || need+=(g++) ;;
      tsan)
        command -v "$(weft_cxx tsan)" >/dev/null 2>&1 || need+=(clang-14)
        # Debian ships clang's sanitizer runtimes separately.
        if command -v dpkg-query >/dev/null 2>&1 && ! _weft_pkg_installed libclang-rt-14-dev; then
          need+=(libclang-rt-14-dev)
        fi ;;
    esac
  done
  # GoogleTest: the sources (/usr/src/googletest) serve every configuration; the sanitizer
  # ones require them.
  if [ ! -f /usr/src/googletest/CMakeLists.txt ]; then
    need+=(googletest libgtest-dev)
  fi
  # weft::redis and its tests (release, asan): hiredis to build, redis-server to test
  # against (the tests start their own servers; the package's service is not used).
  for cfg in "$@"; do
    case "$cfg" in
      release|asan)
        command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
        [ -f /usr/include/hiredis/hiredis.h ] || need+=(libhiredis-dev) ;;
    esac
  done
  if [ "${#need[@]}" -gt 0 ]; then
    # shellcheck disable=SC2207
    need=($(printf '%s\n' "${need[@]}" | sort -u))
    _weft_apt_install "${need[@]}"
  fi
  local v
  v="$(cmake --version | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')"
  if [ "$(printf '%s\n3.25\n' "$v" | sort -V | head -n1)" != "3.25" ]; then
    weft_die "CMake >= 3.25 required (have $v)"
  fi
}

# --- configurations ----------------------------------------------------------

weft_cxx() {
  case "$1" in
    release)  echo "${WEFT_RELEASE_CXX:-g++}" ;;
    tsan)     echo "${WEFT_TSAN_CXX:-clang++-14}" ;;
    asan)     echo "${WEFT_ASAN_CXX:-g++}" ;;
    portable) echo "${WEFT_PORTABLE_CXX:-g++}" ;;
  esac
}

weft_cc() {
  case "$1" in
    release)  echo "${WEFT_RELEASE_CC:-gcc}" ;;
    tsan)     echo "${WEFT_TSAN_CC:-clang-14}" ;;
    asan)     echo "${WEFT_ASAN_CC:-gcc}" ;;
    portable) echo "${WEFT_PORTABLE_CC:-gcc}" ;;
  esac
}

weft_build_dir() { echo "${WEFT_BUILD_ROOT:-$WEFT_ROOT/build}/$1"; }

weft_generator() {
  if [ -n "${WEFT_CMAKE_GENERATOR:-}" ]; then echo "$WEFT_CMAKE_GENERATOR"
  elif command -v ninja >/dev/null 2>&1; then echo "Ninja"
  else echo "Unix Makefiles"
  fi
}

# weft_configure <config>: (re)configure build/<config>.
weft_configure() {
  local cfg="$1" bdir gen cxx cc
  bdir="$(weft_build_dir "$cfg")"
  gen="$(weft_generator)"
  cxx="$(command -v "$(weft_cxx "$cfg")")" || weft_die "compiler $(weft_cxx "$cfg") not found"
  cc="$(command -v "$(weft_cc "$cfg")" || true)"
  # A build dir made with another generator or compiler cannot be reused.
  if [ -f "$bdir/CMakeCache.txt" ]; then
    if ! grep -qx "CMAKE_GENERATOR:INTERNAL=$gen" "$bdir/CMakeCache.txt" ||
       ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=$cxx\$" "$bdir/CMakeCache.txt"; then
      weft_log "build/$cfg was configured differently; starting it afresh"
      rm -rf "$bdir"
    fi
  fi
  local args=(-S "$WEFT_ROOT" -B "$bdir" -G "$gen" "-DCMAKE_CXX_COMPILER=$cxx"
              -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_EXAMPLES=ON)
  [ -n "$cc" ] && args+=("-DCMAKE_C_COMPILER=$cc")   # GoogleTest's project() enables C
  # Sanitizer builds: asserts on (no NDEBUG), -O1, line tables only.
  local san_opt="-g1 -O1"
  case "$cfg" in
    release|portable)
      args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
             "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DWEFT_WERROR=ON -DWEFT_SANITIZE=)
      [ "$cfg" = release ] ||
        args+=(-DWEFT_PORTABLE_FUTEX=ON -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_DSCHED=OFF) ;;
    tsan)
      args+=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=$san_opt" "-DCMAKE_C_FLAGS_DEBUG=$san_opt"
             -DWEFT_WERROR=ON -DWEFT_SANITIZE=thread) ;;
    asan)
      args+=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=$san_opt" "-DCMAKE_C_FLAGS_DEBUG=$san_opt"
             -DCMAKE_CXX_FLAGS=-D_GLIBCXX_ASSERTIONS
             -DWEFT_WERROR=OFF "-DWEFT_SANITIZE=address,undefined") ;;
    *) weft_die "unknown configuration '$cfg' (release|tsan|asan|portable)" ;;
  esac
  cmake "${args[@]}"
}

# weft_build <config> [cmake --build args...]
# Keeps going past the first error so that one log shows every file that does not compile.
weft_build() {
  local cfg="$1" bdir keep_going=()
  shift
  bdir="$(weft_build_dir "$cfg")"
  if grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$bdir/CMakeCache.txt" 2>/dev/null; then
    keep_going=(-- -k 0)
  elif grep -q '^CMAKE_GENERATOR:INTERNAL=.*Makefiles' "$bdir/CMakeCache.txt" 2>/dev/null; then
    keep_going=(-- -k)
  fi
  cmake --build "$bdir" -j "$WEFT_JOBS" "$@" "${keep_going[@]}"
}
