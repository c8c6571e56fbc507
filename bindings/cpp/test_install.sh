#!/usr/bin/env bash
# `make test-install`: the installation as a packager and a user see it.
#
# 0. The README's C++ example is bindings/cpp/examples/example.cpp.
# 1. `make install DESTDIR=<tmp>/stage PREFIX=/usr/local`: exactly the expected files, the
#    shared library's real file with the full version and its two links, the soname, headers
#    equal to the checkout's, .pc and CMake files naming /usr/local (never the stage or the
#    checkout), a .pc that `pkg-config --define-prefix` relocates; then `make uninstall`
#    leaves no file.
# 2. `make install PREFIX=<tmp>/prefix`: the C example (examples-c/blocking.c) and the C++
#    example (bindings/cpp/examples/example.cpp), copied out of the checkout, built from that
#    prefix only, once with pkg-config and once with find_package(noxy) (C shared and static,
#    C++ through noxy::cpp), with no path of the checkout on any command line; every program
#    loads the installed libnoxy.so.0 (or none, static) and runs against the development
#    relay; then `make uninstall` leaves no file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
MAKE=${MAKE:-make}
CARGO=${CARGO:-cargo}
CC=${CC:-cc}
CXX=${CXX:-c++}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
# shellcheck source=bindings/cpp/relay.sh
. "$here/relay.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/noxy-install-test.XXXXXX")
cleanup() {
  relay_stop
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

passed=0
failed=0
ok() {
  echo "  ok: $1"
  passed=$((passed + 1))
}
fail() {
  echo "  FAILED: $1" >&2
  failed=$((failed + 1))
}
check() { # description command...: one check
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
# The files and links under a directory, as absolute paths below it, sorted.
listing() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort); }
# Never touch the machine's dynamic linker cache from a test.
install_args=(LDCONFIG=true)

# The README shows the example program verbatim.
readme_example() {
  awk '/^<!-- bindings\/cpp\/examples\/example.cpp -->$/ { found = 1; next }
       found && /^```cpp$/ { inside = 1; next }
       inside && /^```$/ { exit }
       inside { print }' "$root/README.md"
}
if diff <(readme_example) "$here/examples/example.cpp" >"$work/readme.diff"; then
  ok "README.md shows bindings/cpp/examples/example.cpp as it is"
else
  cat "$work/readme.diff" >&2
  fail "README.md shows bindings/cpp/examples/example.cpp as it is"
fi

echo "== building noxy-devrelay (release)"
"$CARGO" build --release -p noxy-devrelay

# ---- 1. staged (DESTDIR) installation ----
echo "== make install DESTDIR=<stage> PREFIX=/usr/local"
stage=$work/stage
"$MAKE" -s -C "$root" install DESTDIR="$stage" PREFIX=/usr/local "${install_args[@]}" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; exit 1; }
expected=$(printf '%s\n' /usr/local/include/noxy.h /usr/local/include/noxy.hpp \
  /usr/local/lib/cmake/noxy/noxy-config-version.cmake /usr/local/lib/cmake/noxy/noxy-config.cmake \
  /usr/local/lib/libnoxy.a /usr/local/lib/libnoxy.so /usr/local/lib/libnoxy.so.0 \
  "/usr/local/lib/libnoxy.so.$version" /usr/local/lib/pkgconfig/noxy.pc \
  /usr/local/lib/pkgconfig/noxy-static.pc | sort)
if [ "$(listing "$stage")" = "$expected" ]; then
  ok "installs exactly the expected files"
else
  fail "installs exactly the expected files"
  diff <(printf '%s\n' "$expected") <(listing "$stage") >&2 || true
fi
lib=$stage/usr/local/lib
check "libnoxy.so.$version is the real file" test -f "$lib/libnoxy.so.$version" -a ! -L "$lib/libnoxy.so.$version"
check "libnoxy.so.0 -> libnoxy.so.$version" test "$(readlink "$lib/libnoxy.so.0")" = "libnoxy.so.$version"
check "libnoxy.so -> libnoxy.so.$version" test "$(readlink "$lib/libnoxy.so")" = "libnoxy.so.$version"
soname=$(readelf -d "$lib/libnoxy.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "soname libnoxy.so.0" test "$soname" = libnoxy.so.0
check "noxy.h is the checkout's" cmp -s "$root/include/noxy.h" "$stage/usr/local/include/noxy.h"
check "noxy.hpp is the checkout's" cmp -s "$root/include/noxy.hpp" "$stage/usr/local/include/noxy.hpp"
check "libnoxy.a is the built one" cmp -s "$release/libnoxy.a" "$lib/libnoxy.a"
names_neither() { ! grep -rqF -e "$stage" -e "$root" "$lib/pkgconfig" "$lib/cmake"; }
check ".pc and CMake files name neither the stage nor the checkout" names_neither
check "noxy.pc: prefix=/usr/local" grep -qx 'prefix=/usr/local' "$lib/pkgconfig/noxy.pc"
# shellcheck disable=SC2016 # a literal ${prefix}
check "noxy.pc: libdir=\${prefix}/lib" grep -qxF 'libdir=${prefix}/lib' "$lib/pkgconfig/noxy.pc"
check "noxy-config.cmake: /usr/local/lib" grep -qF 'set(noxy_LIBRARY_DIR "/usr/local/lib")' "$lib/cmake/noxy/noxy-config.cmake"
check "noxy-config.cmake: /usr/local/include" grep -qF 'set(noxy_INCLUDE_DIR "/usr/local/include")' "$lib/cmake/noxy/noxy-config.cmake"
# (pkg-config ends its output with a space)
relocated=$(PKG_CONFIG_LIBDIR="$lib/pkgconfig" PKG_CONFIG_PATH='' pkg-config --define-prefix --cflags --libs noxy |
  sed 's/ *$//')
check "pkg-config --define-prefix relocates the staged noxy.pc" \
  test "$relocated" = "-I$stage/usr/local/include -L$stage/usr/local/lib -lnoxy"
"$MAKE" -s -C "$root" uninstall DESTDIR="$stage" PREFIX=/usr/local "${install_args[@]}" >/dev/null
check "make uninstall leaves no file in the stage" test -z "$(listing "$stage")"
check "make uninstall removes the cmake/noxy directory" test ! -e "$lib/cmake/noxy"

# ---- 2. installation into a prefix, used from that prefix only ----
prefix=$work/prefix
echo "== make install PREFIX=<tmp>/prefix"
"$MAKE" -s -C "$root" install PREFIX="$prefix" DESTDIR= "${install_args[@]}" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; exit 1; }
src=$work/src
bin=$work/bin
mkdir -p "$src" "$bin"
cp "$root/examples-c/blocking.c" "$here/examples/example.cpp" "$here/examples/CMakeLists.txt" "$src/"
# Nothing from the environment may add an include or library path.
unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH \
  CMAKE_INCLUDE_PATH CMAKE_LIBRARY_PATH noxy_DIR PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig PKG_CONFIG_PATH=

echo "== pkg-config"
flags=$(pkg-config --cflags --libs noxy | sed 's/ *$//')
libdir=$(pkg-config --variable=libdir noxy)
echo "  pkg-config --cflags --libs noxy: $flags"
check "pkg-config names the prefix" test "$flags" = "-I$prefix/include -L$prefix/lib -lnoxy"
check "pkg-config --modversion is $version" test "$(pkg-config --modversion noxy)" = "$version"
# shellcheck disable=SC2086 # the flags are words
if (cd "$src" && "$CC" -std=c99 -Wall -Wextra -Werror blocking.c $flags -Wl,-rpath,"$libdir" \
  -o "$bin/blocking-pc" && "$CXX" -std=c++17 -Wall -Wextra -Werror -pedantic example.cpp $flags \
  -Wl,-rpath,"$libdir" -o "$bin/example-pc") >"$work/pc-build.log" 2>&1; then
  ok "C and C++ examples build with pkg-config"
else
  cat "$work/pc-build.log" >&2
  fail "C and C++ examples build with pkg-config"
fi

static_flags=$(pkg-config --cflags --libs noxy-static | sed 's/ *$//')
# shellcheck disable=SC2086 # the flags are words
if (cd "$src" && "$CC" -std=c99 -Wall -Wextra -Werror blocking.c $static_flags \
  -o "$bin/blocking-pc-static") >"$work/pc-static-build.log" 2>&1 &&
  ! readelf -d "$bin/blocking-pc-static" | grep -q 'NEEDED.*libnoxy'; then
  ok "the C example links statically with pkg-config noxy-static (no libnoxy.so needed)"
else
  cat "$work/pc-static-build.log" >&2
  fail "the C example links statically with pkg-config noxy-static (no libnoxy.so needed)"
fi

echo "== find_package(noxy)"
if cmake -S "$src" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DNOXY_C_EXAMPLE="$src/blocking.c" \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF >"$work/cmake.log" 2>&1 &&
  cmake --build "$work/build" --verbose >>"$work/cmake.log" 2>&1; then
  ok "C (shared, static) and C++ examples build with find_package(noxy)"
  cp "$work/build/blocking" "$bin/blocking-cmake"
  cp "$work/build/blocking-static" "$bin/blocking-static-cmake"
  cp "$work/build/example" "$bin/example-cmake"
else
  cat "$work/cmake.log" >&2
  fail "C (shared, static) and C++ examples build with find_package(noxy)"
fi
grep -E "^-- noxy " "$work/cmake.log" | sed 's/^/  /' || true
check "find_package found the prefix's package" grep -qF "from $prefix/lib/cmake/noxy" "$work/cmake.log"
log_names_no_checkout() { ! grep -qF "$root" "$work/cmake.log"; }
check "no compile or link line names the checkout" log_names_no_checkout

loads_installed() { # binary: needs libnoxy.so.0 and the loader resolves it in the prefix
  # Outputs captured first: `grep -q` closing a pipe early would fail the producer (pipefail).
  local dynamic libraries
  dynamic=$(readelf -d "$1")
  libraries=$(ldd "$1")
  grep -q 'NEEDED.*\[libnoxy.so.0\]' <<<"$dynamic" &&
    grep -qF "libnoxy.so.0 => $prefix/lib/libnoxy.so.0" <<<"$libraries" ||
    { printf '%s\n%s\n' "$dynamic" "$libraries" >&2; return 1; }
}
for program in blocking-pc example-pc blocking-cmake example-cmake; do
  [ -x "$bin/$program" ] || continue
  check "$program loads the installed libnoxy.so.0" loads_installed "$bin/$program"
done
if [ -x "$bin/blocking-static-cmake" ]; then
  needs_no_libnoxy() { ! readelf -d "$1" | grep -q 'NEEDED.*libnoxy'; }
  check "blocking-static-cmake needs no libnoxy.so" needs_no_libnoxy "$bin/blocking-static-cmake"
fi

echo "== the examples against the development relay"
relay_start "$release" "$work/relay" "install-test-token-$$-$RANDOM"
export NOXY_ENDPOINT=$NOXY_TEST_ENDPOINT NOXY_CA_PEM_PATH=$NOXY_TEST_CA_PATH NOXY_APP_TOKEN=$NOXY_TEST_TOKEN
for program in blocking-pc blocking-cmake blocking-static-cmake; do
  [ -x "$bin/$program" ] || { fail "$program runs (not built)"; continue; }
  if NOXY_IDENTITY=alice "$bin/$program" >"$work/$program.out" 2>&1 &&
    grep -q "^decision .*: APPROVED$" "$work/$program.out"; then
    ok "$program: APPROVED"
  else
    cat "$work/$program.out" >&2
    fail "$program: APPROVED"
  fi
done
# steps approves after 300 ms: every step is approved; the roll back, cancelled at once, is not.
for program in example-pc example-cmake; do
  [ -x "$bin/$program" ] || { fail "$program runs (not built)"; continue; }
  out=$work/$program.out
  if NOXY_IDENTITY=steps "$bin/$program" >"$out" 2>&1 &&
    grep -q "^decision .*: APPROVED$" "$out" && grep -q "^  device .*: DELIVERED$" "$out" &&
    [ "$(grep -c "^step: APPROVED$" "$out")" -eq 3 ] && grep -q "^roll back: cancelled$" "$out" &&
    grep -q "^quota of tests: [0-9]* of 10000000 left$" "$out"; then
    ok "$program: approved, 3 steps approved, roll back cancelled, quota"
  else
    cat "$out" >&2
    fail "$program: approved, 3 steps approved, roll back cancelled, quota"
  fi
done
relay_stop

"$MAKE" -s -C "$root" uninstall PREFIX="$prefix" DESTDIR= "${install_args[@]}" >/dev/null
check "make uninstall leaves no file in the prefix" test -z "$(listing "$prefix")"

echo "test-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
