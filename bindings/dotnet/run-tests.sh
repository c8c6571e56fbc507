#!/usr/bin/env bash
# The C# binding's tests (`make test-dotnet`): builds libnoxy and the development relay, compiles
# the binding (bindings/dotnet/src/Noxy, C# 6, warnings and missing XML docs are errors) and its
# NUnit tests with Mono's compiler, starts the relay on loopback, runs the tests with NUnit 2.6
# (nunit-console), and always stops the relay.
#
# Needs: mono-mcs, mono-runtime, nunit-console, libnunit-cil-dev (Debian); `.ci/run` installs them.
# The binding finds libnoxy through DllImport("noxy") and LD_LIBRARY_PATH (libnoxy.so).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
release=$target_dir/release
out=$target_dir/dotnet
CARGO=${CARGO:-cargo}

for tool in mcs mono nunit-console pkg-config; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "$tool is missing: apt-get install mono-mcs mono-runtime nunit-console libnunit-cil-dev pkg-config" >&2; exit 1; }
done

echo "== building libnoxy and noxy-devrelay (release)"
"$CARGO" build --release --lib -p noxy
"$CARGO" build --release -p noxy-devrelay

echo "== compiling the binding and its tests (mcs $(mcs --version | sed 's/.* //'))"
rm -rf "$out"
mkdir -p "$out"
mcs -target:library -langversion:6 -warn:4 -warnaserror \
  -doc:"$out/Noxy.xml" -out:"$out/Noxy.dll" bindings/dotnet/src/Noxy/*.cs
# NUnit's assemblies, from libnunit-cil-dev's pkg-config file (nunit.pc).
nunit_refs=$(pkg-config --libs nunit) ||
  { echo "NUnit's nunit.pc is missing: apt-get install libnunit-cil-dev" >&2; exit 1; }
# shellcheck disable=SC2086
mcs -target:library -langversion:6 -warn:4 -warnaserror -r:"$out/Noxy.dll" -r:System.Core.dll $nunit_refs \
  -out:"$out/Noxy.Tests.dll" bindings/dotnet/tests/*.cs
mcs -target:exe -langversion:6 -warn:4 -warnaserror -r:"$out/Noxy.dll" \
  -out:"$out/ExitScenario.exe" bindings/dotnet/tests/exit/ExitScenario.cs
mkdir -p "$out/example"
cp "$out/Noxy.dll" "$out/example/"
mcs -target:exe -langversion:6 -warn:4 -warnaserror -r:"$out/example/Noxy.dll" \
  -out:"$out/example/Decide.exe" bindings/dotnet/examples/Decide.cs
echo "built $out/Noxy.dll, Noxy.Tests.dll, ExitScenario.exe, example/Decide.exe"

# ---- the development relay ----
state=$(mktemp -d "${TMPDIR:-/tmp}/noxy-dotnet-tests.XXXXXX")
relay_pid=
stop_relay() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  rm -rf "$state"
}
trap stop_relay EXIT INT TERM

app=dotnet
token="dotnet-tests-token-$$-$RANDOM"
"$release/noxy-devrelay" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --state-dir "$state/relay" --ready-file "$state/ready.json" --log-level warn \
  --app "$token:$app:10000000" \
  --identity "$app:alice:approve" --identity "$app:bob:reject" --identity "$app:carol:ignore" \
  --identity "$app:steps:approve-after=300" --identity "$app:team:approve,ignore" \
  >"$state/relay.log" 2>&1 &
relay_pid=$!
# Wait for the relay's ready file (a bounded poll for a condition, not a sleep for timing).
for _ in $(seq 1 600); do
  [ -s "$state/ready.json" ] && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$state/relay.log" >&2; echo "relay died" >&2; exit 1; }
  sleep 0.05
done
[ -s "$state/ready.json" ] || { echo "relay not ready after 30 s" >&2; exit 1; }
json_field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/ready.json"; }
export NOXY_TEST_ENDPOINT NOXY_TEST_CA_PATH NOXY_TEST_TOKEN=$token NOXY_TEST_APP=$app
NOXY_TEST_ENDPOINT=$(json_field endpoint)
NOXY_TEST_CA_PATH=$(json_field ca_path)
echo "relay: $NOXY_TEST_ENDPOINT (CA $NOXY_TEST_CA_PATH)"

# ---- run ----
echo "== NUnit (nunit-console, Mono $(mono --version | sed -n 's/.*version \([0-9.]*\).*/\1/p;q'))"
status=0
(cd "$out" && LD_LIBRARY_PATH="$release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  nunit-console -nologo -labels -noshadow -xml="$out/TestResult.xml" Noxy.Tests.dll) || status=$?

# The totals, from NUnit's XML report.
total=0
bad=1
if [ -s "$out/TestResult.xml" ]; then
  attr() { sed -n "s/.*<test-results [^>]* $1=\"\\([0-9]*\\)\".*/\\1/p" "$out/TestResult.xml" | head -1; }
  total=$(attr total)
  bad=$(($(attr errors) + $(attr failures) + $(attr not-run) + $(attr inconclusive)))
fi
if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
if [ "$total" -eq 0 ]; then bad=1; fi
passed=$((total - bad < 0 ? 0 : total - bad))

# The README's example, as the README runs it: found through LD_LIBRARY_PATH, then through a
# Mono <dllmap> to the soname, without LD_LIBRARY_PATH.
echo "== the README's example (examples/Decide.cs)"
export NOXY_ENDPOINT=$NOXY_TEST_ENDPOINT NOXY_CA_PEM_PATH=$NOXY_TEST_CA_PATH NOXY_APP_TOKEN=$token
example() { # label, then the command
  local label=$1
  shift
  if NOXY_IDENTITY=alice "$@" >"$out/example.out" 2>&1 &&
    grep -q "^decision .*: Approved$" "$out/example.out"; then
    echo "  $label: ok ($(cat "$out/example.out"))"
    passed=$((passed + 1))
  else
    cat "$out/example.out" >&2
    echo "  $label: FAILED" >&2
    bad=$((bad + 1))
  fi
}
example "LD_LIBRARY_PATH" env LD_LIBRARY_PATH="$release" mono "$out/example/Decide.exe"
cat >"$out/example/Noxy.dll.config" <<CONFIG
<configuration>
  <dllmap dll="noxy" target="$release/libnoxy.so.0"/>
</configuration>
CONFIG
example "dllmap" env -u LD_LIBRARY_PATH mono "$out/example/Decide.exe"
rm "$out/example/Noxy.dll.config"
# Without either, the library is not found: the two runs above really used them.
if env -u LD_LIBRARY_PATH mono "$out/example/Decide.exe" >"$out/example.out" 2>&1 ||
  ! grep -q "DllNotFoundException" "$out/example.out"; then
  cat "$out/example.out" >&2
  echo "  without LD_LIBRARY_PATH or a dllmap the example still found libnoxy: FAILED" >&2
  bad=$((bad + 1))
else
  passed=$((passed + 1))
fi

echo "dotnet: $passed passed, $bad failed"
[ "$bad" -eq 0 ]
