#!/usr/bin/env bash
# Builds mpillm here against Debian's SERIAL HDF5 without installing it (the
# accelerator host has only the serial one): downloads libhdf5-dev, hdf5-helpers and
# the serial runtime libraries, unpacks them into a scratch prefix (nothing in / is
# touched, so the parallel build stays the default), points FindHDF5 at that h5cc
# and builds; with --test also runs the suite (except the Slurm test).
#   scripts/device/check_serial_hdf5.sh [--test] [--dir DIR]   (default /tmp/mpillm-serial-hdf5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=/tmp/mpillm-serial-hdf5 test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) test=1 ;;
    --dir) dir=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "check_serial_hdf5.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
prefix=$dir/prefix build=$dir/build
mkdir -p "$dir/debs"
chmod 755 "$dir/debs"
chown _apt "$dir/debs" 2>/dev/null || true
if ! ls "$dir"/debs/libhdf5-dev_*.deb >/dev/null 2>&1; then
  (cd "$dir/debs" && apt-get download -q libhdf5-dev hdf5-helpers libhdf5-103-1 libhdf5-hl-100)
fi
rm -rf "$prefix"
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
# h5cc names its install prefix literally
sed -i "s|^prefix=\"/usr\"|prefix=\"$prefix/usr\"|" "$prefix/usr/bin/h5cc"
tests=OFF
[ "$test" = 1 ] && tests=ON
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPILLM_TESTS=$tests \
  -DHDF5_PREFER_PARALLEL=FALSE -DHDF5_C_COMPILER_EXECUTABLE="$prefix/usr/bin/h5cc" >"$dir/cmake.log"
grep 'parallel:' "$dir/cmake.log"
grep -q 'parallel: FALSE' "$dir/cmake.log" || { echo "check_serial_hdf5: CMake did not take the serial HDF5" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$dir/build.log" 2>&1 || { tail -n 40 "$dir/build.log" >&2; exit 1; }
# the serial runtime library from the prefix where the system has none
export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ldd "$build/mpillm" | grep hdf5
"$build/mpillm" info | grep HDF5
if [ "$test" = 1 ]; then
  (cd "$build" && ctest -E slurm -j"$(nproc)" --output-on-failure | tail -n 15)
fi
echo "check_serial_hdf5: built $build/mpillm against serial HDF5"
