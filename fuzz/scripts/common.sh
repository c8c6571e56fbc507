# Shared by run.sh and replay.sh: the targets, where their binaries are, libFuzzer's options.
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every target, in the order they run; each has corpus/<name>/.
targets=(payload answers answers_structured c_abi devrelay_http)
nightly_available() {
  cargo +nightly --version >/dev/null 2>&1 && rustc +nightly -vV >/dev/null 2>&1
}
bin_dir() {
  echo "$fuzz_dir/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
}
# As cargo-fuzz sets them.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
