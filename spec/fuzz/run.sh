#!/bin/sh
# run.sh BUILD SECS [JOBS]: each libFuzzer target in BUILD/fuzz/ for SECS seconds, JOBS
# of them at a time (default 2, one per core), starting from its seed corpus in
# spec/fuzz/corpus/<target>/ (read only: what a run finds goes to
# BUILD/fuzz/corpus/<target>/, crashes to BUILD/fuzz/). Fails if any target finds anything.
set -eu
BUILD=${1:-build-fuzz}
SECS=${2:-60}
JOBS=${3:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT/$BUILD/fuzz"
failed=0
pids=
names=

# wait for the targets started, report each; failed=1 if one found something
finish() {
  set -- $names
  for pid in $pids; do
    t=$1
    shift
    if wait "$pid"; then
      printf 'fuzz: %s: ' "$t"
      grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" \
        "$t.log" | tr -s ' \n' '  '
      echo
    else
      echo "fuzz: $t FAILED:"
      tail -60 "$t.log"
      failed=1
    fi
  done
  pids=
  names=
}

n=0
for t in fuzz_*; do
  [ -x "$t" ] || continue
  mkdir -p "corpus/$t"
  echo "fuzz: $t for $SECS s"
  ./"$t" -max_total_time="$SECS" -timeout=20 -max_len=4096 -print_final_stats=1 \
    "corpus/$t" "$ROOT/spec/fuzz/corpus/$t" >"$t.log" 2>&1 &
  pids="$pids $!"
  names="$names $t"
  n=$((n + 1))
  if [ "$n" -ge "$JOBS" ]; then
    finish
    n=0
  fi
done
finish
exit "$failed"
