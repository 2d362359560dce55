#!/usr/bin/env bash
# corio benchmarks beside the peers (../shared/bench-peers), in ONE run: repetitions are
# interleaved (rep 1 of every row, then rep 2, ...) so that drift on a noisy machine hits
# all rows alike. Measured as the peers' run.sh does: a fresh process per run under
# GNU time (%e %M) and `timeout 180`. Prints one markdown table per workload on stdout;
# progress goes to stderr, raw numbers and program stderr to $OUT.
#
# Network rows (W5, W6) as the peers' run.sh measures them: every server of a workload
# is started once (on a free 127.0.0.1 port) and must pass check_server.py; after one
# warm-up each, the measured runs go round the servers, one load at a time, REPS times.
# Server CPU per request = utime+stime of the server process (/proc/PID/stat) over the
# run, divided by the requests made. W5: redis-benchmark -t ping_inline -n N_W5 -c 50,
# -P 16 and -P 1; W6: wrk -t1 -c100 -dWRK_SECS. The corio-2proc rows run two worker
# processes on one port (reuse_port); their CPU is the sum over the processes.
# W9 (files) is a task row with its own N (N_W9), run in a fresh directory of W9_TMPDIR
# (tmpfs, as the peers' run.sh) for every row, corio's and the peers'.
#
# usage: bench/run.sh          (needs `make build`; `make bench` does both)
# env:   REPS=3  N=1000000  WORKLOADS="w1 w2 w3 w4 w5 w6 w7cpu w7rtt w8spawn w8pipe w9"
#        REPS_FAST=5 (empty, W3, W4: runs of a fraction of a second, as the peers' run.sh)
#        REPS_W2=5 (W2's time swings with what last used the memory it faults in)
#        N_W5=500000  WRK_SECS=10  N_W7CPU=4000000  N_W7RTT=100000
#        N_W8SPAWN=2000  N_W8PIPE=200000000  (W7, W8: the raw C peer is uv_tasks.c)
#        N_W9=10000  W9_TMPDIR=/dev/shm
#        PEERS="node luv cqueues asyncio uvloop c-uv nginx"  (prefix of a row label; "" = corio only)
#        W10 (TLS): WORKLOADS="w10" runs w10ka (keep-alive) and w10hs (a new connection,
#        so a handshake, per request: wrk -H "Connection: close") against each server
#        CORIO_GC_ROWS="SETTING ..." (rows of W1-W6 under other collector settings, below)
#        CORIO_ALLOC_ROWS=system (rows of W1-W6 on Lua's own allocator, below)
#        BUILD=build (the build whose corio/core.so is measured)
#        PEERDIR=../shared/bench-peers  OUT=/tmp/corio-bench
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERDIR=${PEERDIR:-$ROOT/../shared/bench-peers}
REPS=${REPS:-3}
REPS_FAST=${REPS_FAST:-5}
REPS_W2=${REPS_W2:-5}
N=${N:-1000000}
WORKLOADS=${WORKLOADS:-w1 w2 w3 w4 w5 w6 w7cpu w7rtt w8spawn w8pipe w9}
PEERS=${PEERS-node luv cqueues asyncio uvloop c-uv nginx}
N_W5=${N_W5:-500000}
N_W8SPAWN=${N_W8SPAWN:-2000}
N_W8PIPE=${N_W8PIPE:-200000000}
N_W9=${N_W9:-10000}
W9_TMPDIR=${W9_TMPDIR:-/dev/shm}
WRK_SECS=${WRK_SECS:-10}
N_W7CPU=${N_W7CPU:-4000000}
N_W7RTT=${N_W7RTT:-100000}
BUILD=$(cd "${BUILD:-$ROOT/build}" 2>/dev/null && pwd) || { echo "no build directory ${BUILD:-build}" >&2; exit 1; }
OUT=${OUT:-/tmp/corio-bench}
mkdir -p "$OUT"
RAW=$OUT/raw-$(date +%Y%m%d-%H%M%S).tsv
LOG=${RAW%.tsv}.log

LUA=lua5.4
PY=/usr/bin/python3.11; [ -x "$PY" ] || PY=/usr/bin/python3   # Debian python: has python3-uvloop
GNU_TIME=/usr/bin/time

[ -f "$BUILD/corio/core.so" ] || { echo "no $BUILD/corio/core.so: run make build" >&2; exit 1; }
[ -x "$GNU_TIME" ] || { echo "$GNU_TIME missing (apt-get install time)" >&2; exit 1; }
if [ -n "$PEERS" ] && [ ! -d "$PEERDIR" ]; then
  echo "no peers at $PEERDIR: corio rows only" >&2; PEERS=
fi
# corio from this tree; lua5.4 reads the _5_4 variables before LUA_PATH/LUA_CPATH.
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH_5_4="$BUILD/?.so;;"

# ---- rows: "workload|label|command"; the label's first word (before "-") is the runtime,
# whose "empty" row is the RSS baseline for bytes/task.
CORIO="$LUA $ROOT/bench/bench_corio.lua"  FLOOR="$LUA $ROOT/bench/coroutines_floor.lua"
THREADS="$LUA $ROOT/bench/bench_threads.lua"  UVTASKS=$OUT/uv_tasks  # W7, and W7-W9's raw C
ASYNCIO="$PY $PEERDIR/bench_asyncio.py"  NODE="node $PEERDIR/bench_node.js"
LUV="$LUA $PEERDIR/bench_luv.lua"        CQ="$LUA $PEERDIR/bench_cqueues.lua"
PROC="$LUA $ROOT/bench/bench_process.lua"  # W8
W9ENV="env TMPDIR=$W9_TMPDIR"
ROWS=(
  "empty|corio|$CORIO empty"  "w1|corio|$CORIO w1 {N}"  "w2|corio|$CORIO w2 {N}"  "w3|corio|$CORIO w3 {N}"
  "w4|corio|$CORIO w4 {N}"
  "empty|lua|$FLOOR 0"        "w2|lua-coroutines|$FLOOR {N}"
  "w2|lua-coroutines-corio-alloc|$LUA -l corio.core $ROOT/bench/coroutines_floor.lua {N}"
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
  "w8spawn|corio|$PROC w8spawn $N_W8SPAWN"  "w8spawn|asyncio|$ASYNCIO w8spawn $N_W8SPAWN"
  "w8spawn|uvloop|$ASYNCIO w8spawn $N_W8SPAWN --uvloop"  "w8spawn|node|$NODE w8spawn $N_W8SPAWN"
  "w8spawn|luv-co|$LUV w8spawn $N_W8SPAWN"  "w8spawn|c-uv|$UVTASKS w8spawn $N_W8SPAWN"
  "w8pipe|corio|$PROC w8pipe $N_W8PIPE"     "w8pipe|asyncio|$ASYNCIO w8pipe $N_W8PIPE"
  "w8pipe|uvloop|$ASYNCIO w8pipe $N_W8PIPE --uvloop"     "w8pipe|node|$NODE w8pipe $N_W8PIPE"
  "w8pipe|luv-co|$LUV w8pipe $N_W8PIPE"     "w8pipe|c-uv|$UVTASKS w8pipe $N_W8PIPE"
  "w7cpu|corio|$THREADS w7cpu {N}"  "w7rtt|corio|$THREADS w7rtt {N}"
  "w7cpu|asyncio-thread|$ASYNCIO w7cpu {N}"  "w7cpu|asyncio-process|$ASYNCIO w7cpuproc {N}"
  "w7cpu|node|$NODE w7cpu {N}"  "w7cpu|luv-co|$LUV w7cpu {N}"  "w7cpu|c-uv|$UVTASKS w7cpu {N}"
  "w7rtt|asyncio|$ASYNCIO w7rtt {N}"  "w7rtt|uvloop|$ASYNCIO w7rtt {N} --uvloop"
  "w7rtt|node|$NODE w7rtt {N}"  "w7rtt|luv-co|$LUV w7rtt {N}"  "w7rtt|c-uv|$UVTASKS w7rtt {N}"
  "w9|corio|$W9ENV $LUA $ROOT/bench/bench_fs.lua w9 $N_W9"
  "w9|corio-whole|$W9ENV $LUA $ROOT/bench/bench_fs.lua w9whole $N_W9"
  "w9|node|$W9ENV $NODE w9 $N_W9"  "w9|luv-co|$W9ENV $LUV w9 $N_W9"
  "w9|asyncio|$W9ENV $ASYNCIO w9 $N_W9"  "w9|uvloop|$W9ENV $ASYNCIO w9 $N_W9 --uvloop"
  "w9|c-uv|$W9ENV $UVTASKS w9 $N_W9"
)
# servers (they get --port P); corio's are plain corio code (bench/bench_corio.lua)
UVSERVER=$OUT/uv_server
NET_ROWS=(
  "w5|corio|$CORIO w5"  "w5|corio-buf|$CORIO w5buf"  "w5|corio-2proc|$CORIO w5 --workers 2"
  "w5|node|$NODE w5"  "w5|uvloop-proto|$ASYNCIO w5 --uvloop"  "w5|asyncio-proto|$ASYNCIO w5"
  "w5|luv-cb|$LUV w5"  "w5|cqueues|$CQ w5"  "w5|c-uv|$UVSERVER w5"
  "w6|corio|$CORIO w6"  "w6|corio-until|$CORIO w6until"  "w6|corio-2proc|$CORIO w6 --workers 2"
  "w6|node|$NODE w6"  "w6|uvloop-proto|$ASYNCIO w6 --uvloop"  "w6|asyncio-proto|$ASYNCIO w6"
  "w6|luv-cb|$LUV w6"  "w6|cqueues|$CQ w6"  "w6|c-uv|$UVSERVER w6"
)
# CORIO_GC_ROWS="generational incremental,pause=400,stepmul=200": for each collector setting,
# rows corio-gc:SETTING of W1-W6 under it (bench_corio.lua reads CORIO_BENCH_GC, written as
# the corio command's --gc); the plain corio rows keep corio.run's default
for g in ${CORIO_GC_ROWS:-}; do
  for w in w1 w2 w3 w4; do ROWS+=("$w|corio-gc:$g|env CORIO_BENCH_GC=$g $CORIO $w {N}"); done
  for w in w5 w6; do NET_ROWS+=("$w|corio-gc:$g|env CORIO_BENCH_GC=$g $CORIO $w"); done
done
# CORIO_ALLOC_ROWS=system: rows corio-alloc:system of W1-W6 with Lua's own allocator
# (CORIO_ALLOC=system) beside the plain rows, which run on corio's (docs/reference.md)
for a in ${CORIO_ALLOC_ROWS:-}; do
  for w in w1 w2 w3 w4; do ROWS+=("$w|corio-alloc:$a|env CORIO_ALLOC=$a $CORIO $w {N}"); done
  for w in w5 w6; do NET_ROWS+=("$w|corio-alloc:$a|env CORIO_ALLOC=$a $CORIO $w"); done
done
# W10: W6 over TLS 1.3 with a P-256 certificate made for the run
CERT=$OUT/tls-cert.pem  KEY=$OUT/tls-key.pem
TLSARGS="--cert $CERT --key $KEY"
NET_ROWS+=(
  "w10|corio|$LUA $ROOT/bench/bench_tls.lua w10 $TLSARGS"
  "w10|node|$NODE w10 $TLSARGS"  "w10|node-https|$NODE w10https $TLSARGS"
  "w10|uvloop-proto|$ASYNCIO w10 --uvloop $TLSARGS"  "w10|asyncio-proto|$ASYNCIO w10 $TLSARGS"
  "w10|nginx|$PEERDIR/nginx_tls.sh $TLSARGS --out $OUT"
)

want() { # want LABEL: corio's own rows always, peers by prefix
  case $1 in corio|corio-*|lua|lua-*) return 0 ;; esac
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
  for f in seq_secs speedup; do  # W7cpu
    rate=$(field $f "$line")
    if [ -n "$rate" ]; then emit "$w" "$p" "$r" $f "$rate"; fi
  done
  for k in write_rate read_rate; do  # W9's two phases
    rate=$(field $k "$line")
    if [ -n "$rate" ]; then emit "$w" "$p" "$r" "$k" "$rate"; fi
  done
}

# ---- network rows ------------------------------------------------------------------

SRV_LABELS=() SRV_PIDS=() SRV_PORTS=()   # the servers of the workload under test
free_port() {  # a port nothing listens on now
  local p
  p=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null)
  if [ -z "$p" ]; then  # no python: walk up from PORT_BASE past the ports in use
    p=${PORT_BASE:-16500}
    while ss -Htln "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
    PORT_BASE=$((p + 1))
  fi
  echo "$p"
}
start_server() {  # WORKLOAD LABEL COMMAND: start it, wait for READY, check it, warm it up
  local w=$1 p=$2 cmd=$3 port pid i f
  for _ in 1 2; do  # a second port if another program took the first meanwhile
    port=$(free_port)
    f=$OUT/server-$port.out
    echo "== [$w $p] $cmd --port $port" >> "$LOG"
    # shellcheck disable=SC2086  # the command is split into words on purpose
    timeout 3600 $cmd --port "$port" > "$f" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
      grep -q READY "$f" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q READY "$f" 2>/dev/null; then break; fi
    cat "$f" >> "$LOG"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    pid=
  done
  if [ -z "$pid" ]; then echo "[$w $p] server did not start" | tee -a "$LOG" >&2; emit "$w" "$p" 0 fail start; return; fi
  local ck; ck=$(timeout 30 $PY "$PEERDIR/check_server.py" "$w" "$port" 2>&1)
  echo "[$w $p] $ck" | tee -a "$LOG" >&2
  if ! grep -q "CHECK OK" <<< "$ck"; then
    emit "$w" "$p" 0 fail check; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return
  fi
  if [ "$w" = w5 ]; then
    for i in 16 1; do
      timeout 60 redis-benchmark -p "$port" -t ping_inline -n 50000 -c 50 -P $i -q > /dev/null 2>&1
    done
  elif [ "$w" = w10 ]; then
    timeout 30 wrk -t1 -c100 -d2s "https://127.0.0.1:$port/" > /dev/null 2>&1
  else
    timeout 30 wrk -t1 -c100 -d2s "http://127.0.0.1:$port/" > /dev/null 2>&1
  fi
  SRV_LABELS+=("$p") SRV_PIDS+=("$pid") SRV_PORTS+=("$port")
}
stop_servers() {
  local i
  for i in "${!SRV_PIDS[@]}"; do
    kill "${SRV_PIDS[$i]}" 2>/dev/null; wait "${SRV_PIDS[$i]}" 2>/dev/null
    grep -v READY "$OUT/server-${SRV_PORTS[$i]}.out" >> "$LOG" 2>/dev/null
    rm -f "$OUT/server-${SRV_PORTS[$i]}.out"
  done
  SRV_LABELS=() SRV_PIDS=() SRV_PORTS=()
}
trap stop_servers EXIT
TICKS=$(getconf CLK_TCK)
cpu_ticks() {  # PID of `timeout`: utime+stime (every thread) of the server it runs and
  # of all that server's descendants (the workers of a -2proc row; nginx under its wrapper)
  local top k files=() level next
  top=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null)
  level=${top:-$1}
  while [ -n "$level" ]; do
    next=
    for k in $level; do
      [ -r "/proc/$k/stat" ] && files+=("/proc/$k/stat")
      next="$next $(cat "/proc/$k/task/"*/children 2>/dev/null)"
    done
    level=$(echo $next)
  done
  [ ${#files[@]} -gt 0 ] || { echo 0; return; }
  awk '{s += $14 + $15} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0
}
per_req() { awk -v a="$1" -v b="$2" -v t="$TICKS" -v n="$3" 'BEGIN{printf "%.3f", (b-a)/t*1e6/n}'; }

measure_w5() {  # REP DEPTH INDEX
  local r=$1 P=$2 i=$3 p=${SRV_LABELS[$3]} c0 c1 out rps cpu
  c0=$(cpu_ticks "${SRV_PIDS[$i]}")
  out=$(timeout 300 redis-benchmark -p "${SRV_PORTS[$i]}" -t ping_inline -n "$N_W5" -c 50 -P "$P" -q 2>&1 |
        tr '\r' '\n' | grep 'requests per second' | tail -1)
  c1=$(cpu_ticks "${SRV_PIDS[$i]}")
  rps=$(sed -n 's/.*PING_INLINE: \([0-9.]*\) requests per second.*/\1/p' <<< "$out")
  cpu=$(per_req "$c0" "$c1" "$N_W5")
  echo "[w5-P$P $p rep$r] $out server_cpu_us_per_req=$cpu" | tee -a "$LOG" >&2
  if [ -z "$rps" ]; then emit "w5-P$P" "$p" "$r" fail bench; return; fi
  emit "w5-P$P" "$p" "$r" n "$N_W5"; emit "w5-P$P" "$p" "$r" rate "$rps"; emit "w5-P$P" "$p" "$r" cpu_us "$cpu"
}

measure_w6() {  # REP INDEX [WORKLOAD SCHEME WRK-ARGS...] (W10: w10ka https, w10hs https -H ...)
  local r=$1 i=$2 p=${SRV_LABELS[$2]} c0 c1 out rps nreq cpu errs
  local w6=${3:-w6} scheme=${4:-http}
  shift 4 2>/dev/null || shift $#
  c0=$(cpu_ticks "${SRV_PIDS[$i]}")
  out=$(timeout $((WRK_SECS + 30)) wrk -t1 -c100 -d"${WRK_SECS}s" "$@" "$scheme://127.0.0.1:${SRV_PORTS[$i]}/" 2>&1)
  c1=$(cpu_ticks "${SRV_PIDS[$i]}")
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<< "$out")
  nreq=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<< "$out")
  errs=$(grep -E 'Non-2xx|Socket errors' <<< "$out" | tr '\n' ' ')
  cpu=
  if [ -n "$nreq" ] && [ "$nreq" -gt 0 ]; then cpu=$(per_req "$c0" "$c1" "$nreq"); fi
  echo "[$w6 $p rep$r] rps=$rps requests=$nreq server_cpu_us_per_req=$cpu $errs" | tee -a "$LOG" >&2
  if [ -z "$rps" ] || [ -z "$cpu" ]; then emit "$w6" "$p" "$r" fail bench; return; fi
  emit "$w6" "$p" "$r" n "$nreq"; emit "$w6" "$p" "$r" rate "$rps"; emit "$w6" "$p" "$r" cpu_us "$cpu"
  if [ -n "$errs" ]; then emit "$w6" "$p" "$r" fail "errors: $errs"; fi
}

run_net() {  # WORKLOAD: start every server, then REPS rounds over them
  local w=$1 row rw label cmd r i P
  for row in "${NET_ROWS[@]}"; do
    IFS='|' read -r rw label cmd <<< "$row"
    if [ "$rw" != "$w" ] || ! want "$label"; then continue; fi
    if [ "$label" = c-uv ] && { [ ! -x "$UVSERVER" ] || [ "$PEERDIR/uv_server.c" -nt "$UVSERVER" ]; }; then
      gcc -O2 -Wall -o "$UVSERVER" "$PEERDIR/uv_server.c" -luv 2>>"$LOG" ||
        { echo "build of $UVSERVER failed" >&2; emit "$w" "$label" 0 fail build; continue; }
    fi
    start_server "$w" "$label" "$cmd"
  done
  for r in $(seq 1 "$REPS"); do
    if [ "$w" = w5 ]; then
      for P in 16 1; do
        for i in "${!SRV_PIDS[@]}"; do measure_w5 "$r" "$P" "$i"; done
      done
    elif [ "$w" = w10 ]; then
      for i in "${!SRV_PIDS[@]}"; do
        measure_w6 "$r" "$i" w10ka https
        measure_w6 "$r" "$i" w10hs https -H "Connection: close"
      done
    else
      for i in "${!SRV_PIDS[@]}"; do measure_w6 "$r" "$i"; done
    fi
  done
  stop_servers
}

# the raw C peer of W7-W9 (uv_tasks.c), built when a row needs it
if want c-uv && [[ " $WORKLOADS " == *" w"[789]* ]] &&
   { [ ! -x "$UVTASKS" ] || [ "$PEERDIR/uv_tasks.c" -nt "$UVTASKS" ]; }; then
  gcc -O2 -Wall -o "$UVTASKS" "$PEERDIR/uv_tasks.c" -luv -lm -lpthread 2>>"$LOG" ||
    echo "build of $UVTASKS failed" >&2
fi
# W1/W2 need each runtime's empty run for bytes/task.
case " $WORKLOADS " in *" w1 "*|*" w2 "*) WL="empty $WORKLOADS" ;; *) WL=$WORKLOADS ;; esac
echo "# raw -> $RAW ; log -> $LOG ; REPS=$REPS REPS_FAST=$REPS_FAST REPS_W2=$REPS_W2 N=$N WORKLOADS=$WL PEERS=$PEERS BUILD=$BUILD" >&2
reps_of() {  # WORKLOAD -> how many measured runs it gets
  case $1 in empty|w3|w4) echo "$REPS_FAST" ;; w2) echo "$REPS_W2" ;; *) echo "$REPS" ;; esac
}
maxreps=$REPS
for w in $WL; do [ "$(reps_of "$w")" -gt "$maxreps" ] && maxreps=$(reps_of "$w"); done
for r in $(seq 1 "$maxreps"); do
  for w in $WL; do
    [ "$r" -le "$(reps_of "$w")" ] || continue
    for row in "${ROWS[@]}"; do
      IFS='|' read -r rw label cmd <<< "$row"
      if [ "$rw" != "$w" ] || ! want "$label"; then continue; fi
      case $w in w7cpu) n=$N_W7CPU ;; w7rtt) n=$N_W7RTT ;; *) n=$N ;; esac
      run_one "$w" "$label" "$r" "${cmd//\{N\}/$n}"
    done
  done
done
case " $WL " in *" w10 "*)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -subj /CN=127.0.0.1 -keyout "$KEY" -out "$CERT" 2>>"$LOG" || { echo "openssl req failed" >&2; exit 1; } ;;
esac
for w in $WL; do
  case $w in w5|w6|w10) run_net "$w" ;; esac
done

echo "corio benchmarks, $(date -u +%Y-%m-%d), $(nproc) CPU, $($LUA -v 2>&1 | cut -d' ' -f1-2), REPS=$REPS (REPS_FAST=$REPS_FAST for empty, W3, W4; REPS_W2=$REPS_W2)"
python3 "$ROOT/bench/summarize.py" "$RAW"
if grep -q 'looks stale' "$LOG"; then echo; echo "WARNING: the corio clock looked stale (see $LOG)"; fi
# a corio row that failed its own check fails the run (peers' failures are only reported)
if awk -F'\t' '$2 ~ /^corio/ && $4 == "fail" { f = 1 } END { exit !f }' "$RAW"; then
  echo "corio rows FAILED (see $LOG)"; exit 1
fi
