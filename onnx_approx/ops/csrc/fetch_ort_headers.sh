#!/bin/sh
# Fetch ONNX Runtime's C/C++ API headers into a cache folder and print the include directory.
#
# Why: the onnxruntime pip wheel ships no headers. Debian trixie's `libonnxruntime-dev` (ORT 1.21,
# MIT licence, ORT_API_VERSION 21) has them; a library built against API 21 loads in any
# onnxruntime >= 1.21. The package is downloaded with a temporary apt configuration that lives in
# the cache folder (suite `trixie`, mirror URI read from this system's own apt sources), so nothing
# in /etc is touched and no host name is written in the repository. Headers are never committed.
#
# Usage: fetch_ort_headers.sh CACHE_DIR    (prints CACHE_DIR/.../include/onnxruntime on success)
set -eu

cache=${1:?usage: fetch_ort_headers.sh CACHE_DIR}
include="$cache/root/usr/include/onnxruntime"

if [ -f "$include/onnxruntime_cxx_api.h" ]; then
    echo "$include"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found: cannot fetch ORT headers" >&2; exit 1; }
command -v dpkg-deb >/dev/null 2>&1 || { echo "dpkg-deb not found: cannot fetch ORT headers" >&2; exit 1; }

# The first Debian mirror URI this system already uses (deb822 or one-line format).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | grep -v -- '-security' | head -n 1 || true)
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
             /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt sources: cannot fetch ORT headers" >&2; exit 1; }

work="$cache/apt"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb $mirror trixie main" > "$work/sources.list"
opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null \
      -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o Debug::NoLocking=1 \
      -o APT::Sandbox::User=root"

echo "fetching libonnxruntime-dev (Debian trixie) from $mirror into $cache" >&2
# shellcheck disable=SC2086
apt-get -q $opts update >&2
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get -q $opts download libonnxruntime-dev >&2)

rm -rf "$cache/root.tmp"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$cache/root.tmp"
done
[ -f "$cache/root.tmp/usr/include/onnxruntime/onnxruntime_cxx_api.h" ] \
    || { echo "libonnxruntime-dev did not contain onnxruntime_cxx_api.h" >&2; exit 1; }
rm -rf "$cache/root" "$work"
mv "$cache/root.tmp" "$cache/root"
echo "$include"
