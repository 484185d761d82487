#!/usr/bin/env bash
# Runs HERE (Debian 12, with the package registry): downloads the Debian .debs of
# the small libraries mpillm builds against that the device host (Ubuntu 24.04,
# no registry) lacks -- cJSON, PCRE2 (8-bit), utf8proc, inih -- into
# .devwork/debs/ of the main checkout (git-ignored; the device run carries it).
# Not MPI, HDF5 or OpenBLAS: the device host has those.
#   scripts/device/fetch_deps.sh [DIR]      (default: <repo>/.devwork/debs)
# build.sh there unpacks them into a prefix with `dpkg -x`; nothing is installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/.devwork/debs}
# libpcre2-8-0 comes along because libpcre2-dev's libpcre2-8.so links to it inside
# the prefix; libpcre2-8.pc requires nothing else, so the 16/32-bit and POSIX
# libraries (which the -dev package also links to) are left out.
# pkgconf-bin + libpkgconf3 are a fallback for a host without pkg-config.
packages=(libcjson1 libcjson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev
          libinih1 libinih-dev pkgconf-bin libpkgconf3)
mkdir -p "$dir"
rm -f "$dir"/*.deb
# apt's sandbox user cannot write into root-owned folders: download in a temporary
# folder it can write to, then move
tmp=$(mktemp -d)
chmod 755 "$tmp"
chown _apt "$tmp" 2>/dev/null || true
(cd "$tmp" && apt-get download -q "${packages[@]}")
mv "$tmp"/*.deb "$dir"/
rmdir "$tmp"
n=$(ls "$dir"/*.deb | wc -l)
if [ "$n" -ne ${#packages[@]} ]; then
  echo "fetch_deps: expected ${#packages[@]} .debs in $dir, found $n" >&2
  exit 1
fi
echo "fetch_deps: $n .debs, $(du -sh "$dir" | cut -f1) in $dir:"
ls -1 "$dir"
