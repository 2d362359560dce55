#!/bin/sh
# run.sh BUILD SECS: each libFuzzer target in BUILD/fuzz/ for SECS seconds, starting
# from its seed corpus in spec/fuzz/corpus/<target>/ (read only: what a run finds goes
# to BUILD/fuzz/corpus/<target>/, crashes to BUILD/fuzz/). Fails on the first finding.
set -eu
BUILD=${1:-build-fuzz}
SECS=${2:-60}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT/$BUILD/fuzz"
for t in fuzz_*; do
  [ -x "$t" ] || continue
  mkdir -p "corpus/$t"
  echo "fuzz: $t for $SECS s"
  ./"$t" -max_total_time="$SECS" -timeout=20 -max_len=4096 -print_final_stats=1 \
    "corpus/$t" "$ROOT/spec/fuzz/corpus/$t" 2>"$t.log" || { tail -60 "$t.log"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$t.log" | tr '\n' ' '; echo
done
