#!/usr/bin/env bash
# Checks that a libnoxy shared library exports only `noxy_` functions and has its soname.
#   tests/c/check_exports.sh target/release/libnoxy.so
set -euo pipefail
lib=${1:?usage: $0 path/to/libnoxy.so}
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libnoxy.so.0" ]; then
  echo "unexpected soname: '$soname' (expected libnoxy.so.0)" >&2
  exit 1
fi
symbols=$(nm -D --defined-only "$lib" | awk '{print $3}')
others=$(printf '%s\n' "$symbols" | grep -v '^noxy_' | grep -v '^$' || true)
if [ -n "$others" ]; then
  echo "libnoxy.so exports symbols without the noxy_ prefix:" >&2
  printf '%s\n' "$others" >&2
  exit 1
fi
count=$(printf '%s\n' "$symbols" | grep -c '^noxy_')
# Every function the header declares is exported, and nothing else.
header=$(dirname "$0")/../../include/noxy.h
declared=$(grep -oE '\bnoxy_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$symbols" | sort -u))
if [ -n "$missing" ]; then
  echo "declared in noxy.h but not exported:" >&2
  printf '%s\n' "$missing" >&2
  exit 1
fi
echo "soname $soname; $count symbols exported, all noxy_, every declared function present"
