# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by scripts/test.sh, scripts/demos.sh and scripts/lint.sh. Source it; do not run it.
#
# Build configurations: the configure presets of CMakePresets.json (release, tsan, asan,
# portable; `cmake --list-presets` describes them), each in build/<name> (or
# $WEFT_BUILD_ROOT/<name>). Their compilers, flags and options are set there and only there.
#
# Environment overrides: WEFT_RELEASE_CXX, WEFT_TSAN_CXX, WEFT_ASAN_CXX, WEFT_PORTABLE_CXX
# (and *_CC) replace a preset's compiler; WEFT_JOBS (default 2), WEFT_CMAKE_GENERATOR (default
# Ninja when installed), WEFT_BUILD_ROOT (default build/: where the build directories go,
# e.g. to keep experiments apart from build/release).

WEFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEFT_JOBS="${WEFT_JOBS:-2}"

weft_log() { printf '\033[1m[weft]\033[0m %s\n' "$*" >&2; }
weft_die() { printf '\033[1;31m[weft] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Waits until the redis-server on unix socket $1 answers PING ($2 tries 0.1 s apart, default
# 100); dies otherwise.
weft_wait_redis() {
  local i
  for ((i = 0; i < ${2:-100}; i++)); do
    [ "$(redis-cli -s "$1" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  weft_die "redis-server on $1 did not answer PING"
}
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

# True when pyenv has a 3.11 and a 3.13 (python/CMakeLists.txt builds for both).
_weft_have_pyenv_pythons() {
  local root
  root="$(pyenv root 2>/dev/null)" || return 1
  compgen -G "$root/versions/3.11.*/bin/python3.11" >/dev/null &&
    compgen -G "$root/versions/3.13.*/bin/python3.13" >/dev/null
}

# weft_ensure_packages <config>...  installs whatever the given configurations need.
weft_ensure_packages() {
  local need=() cfg
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v ctest >/dev/null 2>&1 || need+=(cmake)
  command -v make >/dev/null 2>&1 || command -v ninja >/dev/null 2>&1 || need+=(make)
  for cfg in "$@"; do
    case "$cfg" in
      release|asan)
        command -v g++ >/dev/null 2>&1 || need+=(g++)
        if [ "$cfg" = release ]; then
          # The packaging suite: the strict consumer is built by clang++ too, and through
          # pkg-config; the model suite checks tests/model with spin.
          command -v clang++-14 >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 || need+=(clang-14)
          command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
          command -v spin >/dev/null 2>&1 || need+=(spin)
        fi
        # The Python package (release and asan) builds for the pyenv 3.11 and 3.13 when
        # present (they carry their headers), else for Debian's python3, which needs these.
        if ! _weft_have_pyenv_pythons &&
           ! { command -v dpkg-query >/dev/null 2>&1 && _weft_pkg_installed python3-dev; }; then
          need+=(python3 python3-dev)
        fi ;;
      portable)
        command -v g++ >/dev/null 2>&1 || need+=(g++) ;;
      tsan)
        command -v "${WEFT_TSAN_CXX:-clang++-14}" >/dev/null 2>&1 || need+=(clang-14)
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
  # weft's USDT probes (WEFT_USDT, weft/detail/probes.hpp) need <sys/sdt.h>; every
  # configuration builds them, and tests/trace checks they are in the binaries.
  if command -v dpkg-query >/dev/null 2>&1 && ! _weft_pkg_installed systemtap-sdt-dev; then
    need+=(systemtap-sdt-dev)
  fi
  # weft::asio and its tests (release, tsan, asan): standalone Asio's headers. The presets
  # require it (WEFT_ASIO=ON), so its tests are never skipped for lack of it.
  for cfg in "$@"; do
    case "$cfg" in
      release|tsan|asan) [ -f /usr/include/asio.hpp ] || need+=(libasio-dev) ;;
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

# A compiler override from the environment (WEFT_<CONFIG>_CXX / _CC), or nothing: the preset's.
weft_cxx_override() { local v="WEFT_${1^^}_CXX"; echo "${!v:-}"; }
weft_cc_override() { local v="WEFT_${1^^}_CC"; echo "${!v:-}"; }

weft_build_dir() { echo "${WEFT_BUILD_ROOT:-$WEFT_ROOT/build}/$1"; }

weft_generator() {
  if [ -n "${WEFT_CMAKE_GENERATOR:-}" ]; then echo "$WEFT_CMAKE_GENERATOR"
  elif command -v ninja >/dev/null 2>&1; then echo "Ninja"
  else echo "Unix Makefiles"
  fi
}

# weft_build_bench <dir> <target> [cmake args...]: configures build/<dir> for a benchmark
# (Release, -O2, benchmarks only, no tests or examples) and builds <target> there. A build
# dir made with another generator is started afresh.
weft_build_bench() {
  local bdir="$WEFT_ROOT/build/$1" target="$2" gen
  shift 2
  gen="$(weft_generator)"
  if [ -f "$bdir/CMakeCache.txt" ] && ! grep -qx "CMAKE_GENERATOR:INTERNAL=$gen" "$bdir/CMakeCache.txt"; then
    rm -rf "$bdir"
  fi
  cmake -S "$WEFT_ROOT" -B "$bdir" -G "$gen" \
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DWEFT_BUILD_BENCHMARKS=ON -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
    -DWEFT_INSTALL=OFF -DWEFT_SANITIZE= "$@" >/dev/null
  cmake --build "$bdir" -j "$WEFT_JOBS" --target "$target" >/dev/null
}

# The C++ compiler a configured build directory uses.
weft_configured_cxx() {
  sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null
}

# weft_configure <preset> [<build dir>] [cmake args...]: (re)configure with that configure
# preset of CMakePresets.json, in build/<preset> unless told otherwise.
weft_configure() {
  local cfg="$1" bdir gen cxx cc
  bdir="${2:-$(weft_build_dir "$cfg")}"
  shift $(($# < 2 ? $# : 2))
  gen="$(weft_generator)"
  local args=(--preset "$cfg" -S "$WEFT_ROOT" -B "$bdir" -G "$gen")
  cxx="$(weft_cxx_override "$cfg")"
  cc="$(weft_cc_override "$cfg")"
  if [ -n "$cxx" ]; then
    cxx="$(command -v "$cxx")" || weft_die "compiler $(weft_cxx_override "$cfg") not found"
    args+=("-DCMAKE_CXX_COMPILER=$cxx")
  fi
  [ -z "$cc" ] || args+=("-DCMAKE_C_COMPILER=$(command -v "$cc" || echo "$cc")")
  # A build dir made with another generator or compiler cannot be reused.
  if [ -f "$bdir/CMakeCache.txt" ]; then
    if ! grep -qx "CMAKE_GENERATOR:INTERNAL=$gen" "$bdir/CMakeCache.txt" ||
       { [ -n "$cxx" ] && [ "$(weft_configured_cxx "$bdir")" != "$cxx" ]; }; then
      weft_log "${bdir#"$WEFT_ROOT"/} was configured differently; starting it afresh"
      rm -rf "$bdir"
    fi
  fi
  cmake "${args[@]}" "$@"
}

# weft_build <build dir> [cmake --build args...]
# Keeps going past the first error so that one log shows every file that does not compile.
weft_build() {
  local bdir="$1" keep_going=()
  shift
  if grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$bdir/CMakeCache.txt" 2>/dev/null; then
    keep_going=(-- -k 0)
  elif grep -q '^CMAKE_GENERATOR:INTERNAL=.*Makefiles' "$bdir/CMakeCache.txt" 2>/dev/null; then
    keep_going=(-- -k)
  fi
  cmake --build "$bdir" -j "$WEFT_JOBS" "$@" "${keep_going[@]}"
}
