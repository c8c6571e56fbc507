# Shared by run.sh and replay.sh: the targets, where their binaries are, libFuzzer's options.
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every target, in the order they run; each has corpus/<name>/.
targets=(payload answers answers_structured c_abi devrelay_http)
nightly_available() {
  cargo +nightly --version >/dev/null 2>&1 && rustc +nightly -vV >/dev/null 2>&1
}
# Where the binaries of FUZZ_PROFILE (release by default) are.
bin_dir() {
  echo "$fuzz_dir/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/${FUZZ_PROFILE:-release}"
}
# As cargo-fuzz sets them.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
# libFuzzer options of one target. devrelay_http: the relay's runtime keeps allocations from one
# input to the next (timers, task slots), so libFuzzer's leak check, which runs whenever an
# input's mallocs and frees differ, scanned the whole heap on nearly every input (29
# executions/s); leaks are not what that target checks, and valgrind and ASan cover the library.
target_options() {
  case "$1" in
    devrelay_http) echo "-detect_leaks=0" ;;
  esac
}
