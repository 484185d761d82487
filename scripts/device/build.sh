#!/usr/bin/env bash
# Runs THERE (the device host: Ubuntu 24.04 with Open MPI, OpenBLAS and serial HDF5
# dev packages, but no cJSON, PCRE2, utf8proc or inih headers and no registry):
# unpacks the .debs that fetch_deps.sh downloaded into a prefix with `dpkg -x`
# (never into /), points pkg-config at copies of their .pc files rewritten to the
# prefix, and builds mpillm without tests.
#   scripts/device/build.sh [extra cmake -D options]
# Compiler warnings are not errors in this build (they are listed).
# Environment: MPLDEPS_DEBS (default <repo>/.devwork/debs), MPLDEPS_PREFIX (default
# /opt/mpldeps), MPILLM_BUILD_DIR (default <repo>/build-device), JOBS (default nproc).
# Writes MPILLM_BUILD_DIR/env.sh (source it before running mpillm) and prints the
# versions found (MPLDEPS_PKGCONF=1 uses the kit's pkgconf even where pkg-config exists). The binary finds the prefix's libraries through its RUNPATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
debs=${MPLDEPS_DEBS:-$root/.devwork/debs}
prefix=${MPLDEPS_PREFIX:-/opt/mpldeps}
build=${MPILLM_BUILD_DIR:-$root/build-device}
jobs=${JOBS:-$(nproc)}
say() { echo "build.sh: $*"; }

shopt -s nullglob
kit=("$debs"/*.deb)
[ ${#kit[@]} -gt 0 ] || { say "no .debs in $debs (run scripts/device/fetch_deps.sh here and carry .devwork)" >&2; exit 1; }
rm -rf "$prefix"
mkdir -p "$prefix"
for deb in "${kit[@]}"; do dpkg-deb -x "$deb" "$prefix"; done
libdir=$prefix/usr/lib/x86_64-linux-gnu
pcdir=$libdir/pkgconfig
# the .pc files name /usr literally (libcjson.pc has no prefix= at all): rewrite them
for pc in "$pcdir"/*.pc; do sed -i "s|/usr|$prefix/usr|g" "$pc"; done
say "unpacked ${#kit[@]} .debs into $prefix ($(du -sh "$prefix" | cut -f1))"

# pkg-config: the host's, else pkgconf from the kit behind a wrapper that finds its library
if [ "${MPLDEPS_PKGCONF:-0}" = 1 ] || ! command -v pkg-config >/dev/null 2>&1; then
  if [ -x "$prefix/usr/bin/pkgconf" ]; then
    mkdir -p "$prefix/bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
      "$libdir" "$prefix/usr/bin/pkgconf" >"$prefix/bin/pkg-config"
    chmod +x "$prefix/bin/pkg-config"
    export PATH=$prefix/bin:$PATH
    say "no pkg-config on this host: using pkgconf from the kit"
  else
    say "no pkg-config on this host and none in the kit" >&2; exit 1
  fi
fi
# ours first; PKG_CONFIG_LIBDIR, if the caller set one, stays as it is
export PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
for m in libcjson libpcre2-8 libutf8proc inih; do
  pkg-config --exists "$m" || { say "pkg-config does not find $m in $pcdir" >&2; exit 1; }
done

for tool in cmake mpicc mpiexec; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool not found on PATH" >&2; exit 1; }
done
# no h5pcc: serial HDF5 only, so let FindHDF5's fallback search look in hdf5/serial too
# (the caller's own -D options come later and win)
hdf5_pref=()
command -v h5pcc >/dev/null 2>&1 || hdf5_pref=(-DHDF5_PREFER_PARALLEL=FALSE)
# warnings stay warnings here: that host's compiler is newer than the one CI checks with
mkdir -p "$build"
cmake -S "$root" -B "$build" -DMPILLM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release -DMPILLM_WERROR=OFF \
  -DPKG_CONFIG_EXECUTABLE="$(command -v pkg-config)" "${hdf5_pref[@]}" "$@" >"$build/cmake.log" 2>&1 \
  || { cat "$build/cmake.log" >&2; say "cmake configure failed" >&2; exit 1; }
grep -E 'Found (MPI_C|HDF5|BLAS)|HDF5 .*parallel|Checking for module' "$build/cmake.log" | sed 's/^/  /' | cut -c1-200
cmake --build "$build" -j"$jobs" >"$build/make.log" 2>&1 \
  || { tail -n 60 "$build/make.log" >&2; say "build failed (log: $build/make.log)" >&2; exit 1; }
bin=$build/mpillm
n_warn=$(grep -c 'warning:' "$build/make.log" || true)
if [ "$n_warn" -gt 0 ]; then
  say "$n_warn compiler warnings ($(${CC:-cc} --version | head -n 1)):"
  grep 'warning:' "$build/make.log" | head -n 10 | cut -c1-200 | sed 's/^/  /'
fi

# the binary's RUNPATH names the prefix; if the loader still misses something, say so
# and let env.sh add the prefix to LD_LIBRARY_PATH
{
  echo "# sourced by scripts/device/*.sh after build.sh"
  echo "export MPILLM_BIN=$bin"
  echo "export MPLDEPS_PREFIX=$prefix"
} >"$build/env.sh"
if ldd "$bin" | grep -q 'not found'; then
  say "the loader misses libraries without help; env.sh sets LD_LIBRARY_PATH:"
  ldd "$bin" | grep 'not found' | sed 's/^/  /'
  echo "export LD_LIBRARY_PATH=$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" >>"$build/env.sh"
  export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
ldd "$bin" | grep -E 'cjson|pcre2|utf8proc|inih|hdf5|blas|libmpi' | sed 's/ (0x.*//; s/^\s*/  /'
say "built $bin"
