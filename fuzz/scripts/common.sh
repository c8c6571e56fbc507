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
# libFuzzer options of one target. Leak checking per input is off where work outlives the
# input: the C ABI's operations end on the library's threads, and the relay's runtime keeps
# timers and task slots, so an input's mallocs and frees rarely match, and libFuzzer then
# stops every thread and scans the whole heap (c_abi fell from 2 000 to 210 executions/s,
# devrelay_http ran at 29). Leaks are what valgrind and ASan check in the C tests (make test).
target_options() {
  case "$1" in
    c_abi | devrelay_http) echo "-detect_leaks=0" ;;
  esac
}
