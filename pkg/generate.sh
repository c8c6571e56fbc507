#!/usr/bin/env bash
# Writes noxy.pc from pkg/noxy.pc.in.
#   pkg/generate.sh OUT PREFIX LIBDIR INCLUDEDIR
# `pkg-config --libs noxy` links the shared library; `pkg-config --static --libs noxy` adds the
# native libraries that the static libnoxy.a needs (rustc --print native-static-libs).
set -euo pipefail
out=${1:?usage: $0 OUT PREFIX LIBDIR INCLUDEDIR}
prefix=${2:?}
libdir=${3:?}
includedir=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../Cargo.toml" | head -1)
static_libs=${NOXY_STATIC_LIBS:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}
mkdir -p "$(dirname "$out")"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
  -e "s|@VERSION@|$version|" -e "s|@STATIC_LIBS@|$static_libs|" "$here/noxy.pc.in" >"$out.tmp"
mv "$out.tmp" "$out"
