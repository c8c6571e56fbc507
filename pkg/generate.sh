#!/usr/bin/env bash
# Writes libnoxy's pkg-config file or its CMake package config, with the given paths.
#   pkg/generate.sh OUT PREFIX LIBDIR INCLUDEDIR
#
# OUT ending in .pc: noxy.pc from pkg/noxy.pc.in, and noxy-static.pc beside it from
#   pkg/noxy-static.pc.in. `pkg-config --libs noxy` links the shared library;
#   `pkg-config --libs noxy-static` names libnoxy.a by its path (a `-lnoxy` would pick
#   libnoxy.so whenever both sit in one directory, whatever `--static` says) and the native
#   libraries it needs (rustc --print native-static-libs). LIBDIR and INCLUDEDIR under PREFIX
#   are written as ${prefix}/..., so that `pkg-config --define-prefix` can relocate a staged
#   copy.
# OUT ending in noxy-config.cmake: that file from pkg/noxy-config.cmake.in (imported targets
#   noxy::shared, noxy::static and noxy::cpp), and noxy-config-version.cmake beside it.
#
# The paths are written as given: `make lib` passes the checkout's, `make install` the
# installation's (PREFIX, never DESTDIR).
set -euo pipefail
out=${1:?usage: $0 OUT PREFIX LIBDIR INCLUDEDIR}
prefix=${2:?}
libdir=${3:?}
includedir=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../Cargo.toml" | head -1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
static_libs=${NOXY_STATIC_LIBS:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}
# The same libraries as a CMake list (`-lm;-ldl`): CMake passes `-l` items to the linker as is.
# shellcheck disable=SC2086 # split the list into words on purpose
static_libs_list=$(printf '%s\n' $static_libs | paste -sd ';' -)

# A directory for the .pc file: relative to ${prefix} when it is under PREFIX.
# shellcheck disable=SC2016 # a literal ${prefix}, for pkg-config to expand
pc_dir() {
  case "$1" in
  "$prefix") printf '%s' '${prefix}' ;;
  "$prefix"/*) printf '%s/%s' '${prefix}' "${1#"$prefix"/}" ;;
  *) printf '%s' "$1" ;;
  esac
}
pc_libdir=$(pc_dir "$libdir")
pc_includedir=$(pc_dir "$includedir")

# generate TEMPLATE OUT: substitutes the @...@ placeholders, then renames into place.
generate() {
  mkdir -p "$(dirname "$2")"
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@INCLUDEDIR@|$includedir|g" \
    -e "s|@PC_LIBDIR@|$pc_libdir|g" -e "s|@PC_INCLUDEDIR@|$pc_includedir|g" \
    -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|$major|g" -e "s|@VERSION_MINOR@|$minor|g" \
    -e "s|@STATIC_LIBS@|$static_libs|g" -e "s|@STATIC_LIBS_LIST@|$static_libs_list|g" \
    "$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

case "$out" in
*.pc)
  generate "$here/noxy.pc.in" "$out"
  generate "$here/noxy-static.pc.in" "$(dirname "$out")/noxy-static.pc"
  ;;
*noxy-config.cmake)
  generate "$here/noxy-config.cmake.in" "$out"
  generate "$here/noxy-config-version.cmake.in" "$(dirname "$out")/noxy-config-version.cmake"
  ;;
*)
  echo "$0: OUT must end in .pc or noxy-config.cmake: $out" >&2
  exit 2
  ;;
esac
