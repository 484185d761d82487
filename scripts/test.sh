#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit, MPI and end-to-end tests).
#   scripts/test.sh [--sanitize] [ctest options...]
# --sanitize builds in build-sanitize/ with AddressSanitizer and UBSan.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
setup_flags=(--tests)
build_dir="$root/build"
if [ "${1:-}" = "--sanitize" ]; then
  setup_flags=(--sanitize)
  build_dir="$root/build-sanitize"
  shift
  # Open MPI keeps allocations to the end on purpose: leaks inside it are not ours
  # (components stay loaded so that their frames can be named and suppressed)
  export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
  export OMPI_MCA_mca_base_component_disable_dlclose=1
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
"$root/scripts/setup.sh" "${setup_flags[@]}"
cd "$build_dir"
# MPI tests declare their ranks as PROCESSORS, so -j counts cores, not tests
ctest --output-on-failure -j"$(nproc)" "$@"
