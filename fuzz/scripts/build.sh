#!/usr/bin/env bash
# Builds the libFuzzer binaries of fuzz/ the way `cargo fuzz build` does (same RUSTFLAGS, same
# output folder: fuzz/target/<triple>/release/<target>), without needing cargo-fuzz installed.
# Needs the nightly toolchain (sanitizer and sancov flags) and a C++ compiler (libfuzzer-sys
# builds libFuzzer). Prints the build's wall time.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")/.." && pwd)"
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
  -Clink-dead-code
  -Zsanitizer=address
  -Cllvm-args=-sanitizer-coverage-stack-depth
  -Cdebug-assertions
  -Ccodegen-units=1
)
start=$(date +%s)
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" cargo +nightly build \
  --manifest-path "$fuzz_dir/Cargo.toml" --target "$triple" \
  --release --config profile.release.debug=true --bins "$@"
echo "fuzz build: $(( $(date +%s) - start )) s wall; binaries in $fuzz_dir/target/$triple/release"
echo "fuzz build: CPU time of its processes (user, system):"
times
