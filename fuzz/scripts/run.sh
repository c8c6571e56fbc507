#!/usr/bin/env bash
# Runs every fuzz target (or those named after the seconds) for SECONDS each, one after the
# other (the machine is shared: one core at a time), starting from the committed seeds
# (corpus/<target>/, read only) and a working corpus (work/<target>/, not committed). Crashes
# go to artifacts/<target>/ and fail the run. Prints executions and wall time per target.
set -euo pipefail
source "$(dirname "$0")/common.sh"
seconds="${1:-60}"
shift || true
[ "$#" -gt 0 ] && targets=("$@")
if ! nightly_available; then
  echo "make fuzz: needs the nightly toolchain (cargo +nightly): not found" >&2
  exit 1
fi
bins="$(bin_dir)"
status=0
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$fuzz_dir/work/$target" "$fuzz_dir/artifacts/$target"
  log="$fuzz_dir/work/$target.log"
  start=$(date +%s)
  set +e
  "$bins/$target" $(target_options "$target") -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$fuzz_dir/artifacts/$target/" \
    "$fuzz_dir/work/$target" "$fuzz_dir/corpus/$target" >"$log" 2>&1
  rc=$?
  set -e
  wall=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  line="$target: ${execs:-?} executions in ${wall} s, exit $rc"
  summary+=("$line")
  echo "$line"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "--- $target failed; the end of $log:" >&2
    tail -40 "$log" >&2
  fi
done
printf '%s\n' "fuzz summary:" "${summary[@]}"
exit "$status"
