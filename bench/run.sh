#!/usr/bin/env bash
# corio benchmarks beside the peers (../shared/bench-peers), in ONE run: repetitions are
# interleaved (rep 1 of every row, then rep 2, ...) so that drift on a noisy machine hits
# all rows alike. Measured as the peers' run.sh does: a fresh process per run under
# GNU time (%e %M) and `timeout 180`. Prints one markdown table per workload on stdout;
# progress goes to stderr, raw numbers and program stderr to $OUT.
#
# usage: bench/run.sh          (needs `make build`; `make bench` does both)
# env:   REPS=3  N=1000000  WORKLOADS="w1 w2 w3 w4"
#        PEERS="node luv cqueues asyncio uvloop"  (prefix of a row label; "" = corio only)
#        PEERDIR=../shared/bench-peers  OUT=/tmp/corio-bench
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERDIR=${PEERDIR:-$ROOT/../shared/bench-peers}
REPS=${REPS:-3}
N=${N:-1000000}
WORKLOADS=${WORKLOADS:-w1 w2 w3 w4}
PEERS=${PEERS-node luv cqueues asyncio uvloop}
OUT=${OUT:-/tmp/corio-bench}
mkdir -p "$OUT"
RAW=$OUT/raw-$(date +%Y%m%d-%H%M%S).tsv
LOG=${RAW%.tsv}.log

LUA=lua5.4
PY=/usr/bin/python3.11; [ -x "$PY" ] || PY=/usr/bin/python3   # Debian python: has python3-uvloop
GNU_TIME=/usr/bin/time

[ -f "$ROOT/build/corio/core.so" ] || { echo "no build/corio/core.so: run make build" >&2; exit 1; }
[ -x "$GNU_TIME" ] || { echo "$GNU_TIME missing (apt-get install time)" >&2; exit 1; }
if [ -n "$PEERS" ] && [ ! -d "$PEERDIR" ]; then
  echo "no peers at $PEERDIR: corio rows only" >&2; PEERS=
fi
# corio from this tree; lua5.4 reads the _5_4 variables before LUA_PATH/LUA_CPATH.
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH_5_4="$ROOT/build/?.so;;"

# ---- rows: "workload|label|command"; the label's first word (before "-") is the runtime,
# whose "empty" row is the RSS baseline for bytes/task.
CORIO="$LUA $ROOT/bench/bench_corio.lua"  FLOOR="$LUA $ROOT/bench/coroutines_floor.lua"
ASYNCIO="$PY $PEERDIR/bench_asyncio.py"  NODE="node $PEERDIR/bench_node.js"
LUV="$LUA $PEERDIR/bench_luv.lua"        CQ="$LUA $PEERDIR/bench_cqueues.lua"
ROWS=(
  "empty|corio|$CORIO empty"  "w1|corio|$CORIO w1 {N}"  "w2|corio|$CORIO w2 {N}"  "w3|corio|$CORIO w3 {N}"
  "w4|corio|$CORIO w4 {N}"
  "empty|lua|$FLOOR 0"        "w2|lua-coroutines|$FLOOR {N}"
  "empty|asyncio|$ASYNCIO empty"         "w1|asyncio|$ASYNCIO w1 {N}"
  "w2|asyncio|$ASYNCIO w2 {N}"           "w3|asyncio|$ASYNCIO w3 {N}"
  "w4|asyncio|$ASYNCIO w4 {N}"
  "empty|uvloop|$ASYNCIO empty --uvloop" "w1|uvloop|$ASYNCIO w1 {N} --uvloop"
  "w2|uvloop|$ASYNCIO w2 {N} --uvloop"   "w3|uvloop|$ASYNCIO w3 {N} --uvloop"
  "w4|uvloop|$ASYNCIO w4 {N} --uvloop"
  "empty|node|$NODE empty"  "w1|node|$NODE w1 {N}"  "w2|node|$NODE w2 {N}"
  "w3|node-immediate|$NODE w3 {N}"       "w3|node-awaitnull|$NODE w3null {N}"
  "w4|node|$NODE w4 {N}"
  "empty|luv|$LUV empty"    "w1|luv-co|$LUV w1 {N}"  "w2|luv-co|$LUV w2 {N}"  "w2|luv-cb|$LUV w2cb {N}"
  "w3|luv-co|$LUV w3 {N}"                "w4|luv-co|$LUV w4 {N}"
  "empty|cqueues|$CQ empty" "w1|cqueues|$CQ w1 {N}"  "w2|cqueues|$CQ w2 {N}"  "w3|cqueues|$CQ w3 {N}"
  "w4|cqueues|$CQ w4 {N}"
)

want() { # want LABEL: corio's own rows always, peers by prefix
  case $1 in corio|lua|lua-*) return 0 ;; esac
  local p
  for p in $PEERS; do case $1 in "$p"*) return 0 ;; esac; done
  return 1
}

emit() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RAW"; }  # workload label rep metric value
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }

run_one() { # run_one WORKLOAD LABEL REP COMMAND
  local w=$1 p=$2 r=$3 cmd=$4 tf out rc line el rss rate
  tf=$(mktemp)
  echo "== [$w $p rep$r] $cmd" >> "$LOG"
  # shellcheck disable=SC2086  # the command is split into words on purpose
  out=$($GNU_TIME -f "%e %M" -o "$tf" timeout 180 $cmd 2>>"$LOG")
  rc=$?
  line=$(grep '^RESULT' <<< "$out" | tail -1)
  read -r el rss < <(tail -1 "$tf")
  rm -f "$tf"
  echo "[$w $p rep$r rc=$rc] $line elapsed=$el maxrss_kb=$rss" | tee -a "$LOG" >&2
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then emit "$w" "$p" "$r" fail "rc=$rc"; return; fi
  emit "$w" "$p" "$r" n "$(field n "$line")"
  emit "$w" "$p" "$r" secs "$(field secs "$line")"
  emit "$w" "$p" "$r" elapsed "$el"
  emit "$w" "$p" "$r" rss_kb "$rss"
  rate=$(field rate "$line")
  if [ -n "$rate" ]; then emit "$w" "$p" "$r" rate "$rate"; fi
}

# W1/W2 need each runtime's empty run for bytes/task.
case " $WORKLOADS " in *" w1 "*|*" w2 "*) WL="empty $WORKLOADS" ;; *) WL=$WORKLOADS ;; esac
echo "# raw -> $RAW ; log -> $LOG ; REPS=$REPS N=$N WORKLOADS=$WL PEERS=$PEERS" >&2
for r in $(seq 1 "$REPS"); do
  for w in $WL; do
    for row in "${ROWS[@]}"; do
      IFS='|' read -r rw label cmd <<< "$row"
      if [ "$rw" != "$w" ] || ! want "$label"; then continue; fi
      run_one "$w" "$label" "$r" "${cmd//\{N\}/$N}"
    done
  done
done

echo "corio benchmarks, $(date -u +%Y-%m-%d), $(nproc) CPU, $($LUA -v 2>&1 | cut -d' ' -f1-2), REPS=$REPS"
python3 "$ROOT/bench/summarize.py" "$RAW"
if grep -q 'looks stale' "$LOG"; then echo; echo "WARNING: the corio clock looked stale (see $LOG)"; fi
# a corio row that failed its own check fails the run (peers' failures are only reported)
if awk -F'\t' '$2 == "corio" && $4 == "fail" { f = 1 } END { exit !f }' "$RAW"; then
  echo "corio rows FAILED (see $LOG)"; exit 1
fi
