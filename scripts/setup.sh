#!/usr/bin/env bash
# Installs the Debian packages mpillm needs (only those missing, saying which) and
# builds it. Idempotent: a second run only rebuilds what changed.
#   scripts/setup.sh [--tests] [--sanitize] [--no-build] [--build-dir DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want_tests=0 sanitize=0 build=1 build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) want_tests=1 ;;
    --sanitize) sanitize=1; want_tests=1 ;;
    --no-build) build=0 ;;
    --build-dir) build_dir=$2; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# the runtime: compiler, CMake, Open MPI, OpenBLAS, parallel HDF5 and the small
# libraries for JSON (cJSON), tokenizer regexes (PCRE2), Unicode (utf8proc), INI configs
packages=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libopenblas-dev
          libhdf5-openmpi-dev hdf5-tools libcjson-dev libpcre2-dev libutf8proc-dev
          libinih-dev zlib1g-dev)
# the tests also need CUnit, the KJV text, and a throw-away Slurm
[ "$want_tests" = 1 ] && packages+=(libcunit1-dev bible-kjv slurm-wlm munge python3)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" != 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

[ "$build" = 1 ] || exit 0
if [ -z "$build_dir" ]; then
  build_dir="$root/build"
  [ "$sanitize" = 1 ] && build_dir="$root/build-sanitize"
fi
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DMPILLM_TESTS=$([ "$want_tests" = 1 ] && echo ON || echo OFF) \
  -DMPILLM_SANITIZE=$([ "$sanitize" = 1 ] && echo ON || echo OFF) >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
echo "setup: built $build_dir/mpillm"
