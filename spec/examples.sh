#!/bin/sh
# Run every example under the corio command, with small time scales, and
# check what each one prints.
#
#   sh spec/examples.sh build/bin/corio
#
# Prints one line per example (ok / FAIL / skip), the output of each failure,
# then "examples: N passed, N failed"; exits non-zero if any failed.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: sh spec/examples.sh PATH_TO_CORIO_COMMAND" >&2
  exit 2
fi
CORIO=$1
case $CORIO in
  /*) ;;
  */*) CORIO=$(cd "$(dirname "$CORIO")" && pwd)/$(basename "$CORIO") ;;
esac
cd "$(dirname "$0")/.."

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
OUT=
ERR=
reasons=

# ---- helpers used by the checks ---------------------------------------------

verdict() {  # STATUS: judge the example $name that exited with STATUS, print ok / FAIL
  if [ "$1" -eq 124 ]; then
    problem "timed out after 60 s"
  elif [ "$1" -ne 0 ]; then
    problem "exit status $1"
  else
    "check_$name"
    # The examples write only to stdout: anything on stderr (an unhandled
    # task error, a failing callback...) is a failure.
    if [ -s "$ERR" ]; then problem "output on stderr"; fi
  fi
  if [ -z "$reasons" ]; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    printf '%s' "$reasons"
    echo "  --- stdout:"
    sed 's/^/  | /' "$OUT"
    echo "  --- stderr:"
    sed 's/^/  | /' "$ERR"
  fi
}

problem() {  # MESSAGE: record why the current example fails
  reasons="$reasons  - $1
"
}

has() {  # TEXT: the output contains TEXT
  grep -qF -- "$1" "$OUT" || problem "missing: $1"
}

has_count() {  # N TEXT: exactly N output lines contain TEXT
  n=$(grep -cF -- "$2" "$OUT" || true)
  [ "$n" -eq "$1" ] || problem "expected $1 lines with '$2', got $n"
}

lacks() {  # TEXT: the output does not contain TEXT
  if grep -qF -- "$1" "$OUT"; then problem "unexpected: $1"; fi
}

has_line() {  # REGEX: some output line matches the extended REGEX
  grep -qE -- "$1" "$OUT" || problem "no line matches: $1"
}

at_least() {  # N TEXT: at least N output lines contain TEXT
  n=$(grep -cF -- "$2" "$OUT" || true)
  [ "$n" -ge "$1" ] || problem "expected at least $1 lines with '$2', got $n"
}

in_order() {  # TEXT...: each TEXT is on a line after the line of the previous one
  prev=0
  for text in "$@"; do
    n=$(awk -v text="$text" -v prev="$prev" 'NR > prev && index($0, text) { print NR; exit }' "$OUT")
    if [ -z "$n" ]; then problem "missing or out of order: $text"; return 0; fi
    prev=$n
  done
}

num() {  # TEXT INDEX: the first number after TEXT on the INDEX-th line holding TEXT
  awk -v text="$1" -v want="$2" '
    index($0, text) {
      seen++
      if (seen == want) {
        rest = substr($0, index($0, text) + length(text))
        if (match(rest, /[0-9]+(\.[0-9]+)?/)) print substr(rest, RSTART, RLENGTH)
        exit
      }
    }' "$OUT"
}

stamp() {  # TEXT: the first number on the first line holding TEXT (a "[1.23 s]" stamp)
  awk -v text="$1" '
    index($0, text) {
      if (match($0, /[0-9]+(\.[0-9]+)?/)) print substr($0, RSTART, RLENGTH)
      exit
    }' "$OUT"
}

holds() {  # AWK_EXPRESSION MESSAGE: the numeric comparison is true
  awk "BEGIN { exit !($1) }" 2>/dev/null || problem "$2 ($1)"
}

# ---- running one example ----------------------------------------------------

example() {  # NAME ARGS...: run examples/NAME.lua ARGS, then check_NAME
  name=$1
  shift
  OUT=$TMP/$name.out
  ERR=$TMP/$name.err
  reasons=
  status=0
  timeout 60 "$CORIO" "examples/$name.lua" "$@" >"$OUT" 2>"$ERR" || status=$?
  verdict "$status"
}

# ---- the checks, one per example ---------------------------------------------

check_io_latency() {  # run with scale 0.1: delays of 0..0.1 s, then 0..0.01 s
  has "10 tasks, each waiting"
  has "100 tasks, each waiting"
  has_count 20 "finishes at"   # 10 sequential + 10 concurrent
  has_count 2 "completion order follows the delays: yes"
  for i in 1 2; do
    seq=$(num "sequential total:" $i)
    conc=$(num "concurrent total:" $i)
    holds "$conc < $seq" "run $i: the concurrent total is not below the sequential one"
  done
  # Ten tasks: concurrently, about the longest delay; in sequence, the sum.
  conc=$(num "concurrent total:" 1)
  longest=$(num "the longest delay is" 1)
  holds "$conc >= $longest - 0.002 && $conc < $longest + 0.05" \
    "ten concurrent tasks should take about the longest delay"
  holds "$(num "sequential total:" 1) > 2 * $conc" "ten tasks: speedup below 2"
  holds "$(num "sequential total:" 2) > 5 * $(num "concurrent total:" 2)" \
    "a hundred tasks: speedup below 5"
}

check_say_after() {  # run with scale 0.2: units of 0.2 s
  in_order "in sequence: start" "hello" "world" "in sequence: took" \
    "as tasks: start" "both tasks spawned" "hello" "world" "as tasks: took"
  has_line "both tasks spawned, neither started: .*pending.*pending"
  has_count 2 "s] hello"
  has_count 2 "s] world"
  s=$(num "in sequence: took" 1)
  t=$(num "as tasks: took" 1)
  holds "$s / 0.2 >= 2.95 && $s / 0.2 < 3.5" "in sequence should take about 3 units"
  holds "$t / 0.2 >= 1.95 && $t / 0.2 < 2.5" "as tasks should take about 2 units"
}

check_await_twice() {
  has "body ran 1 time(s); task done: true"
  has_count 1 "compute: working"
  has "waiter A got: 42, the answer"
  has "waiter B got: 42, the answer"
  has "main, awaiting again:	42	the answer"
  has "result() (no wait, the task is done):	42	the answer"
}

check_future() {
  has "done before awaiting?	false"
  in_order "helper: setting the result" "awaited:	pong	200"
  has "awaited again:	pong	200"
  has "setting it twice fails:	false	"
  if ! grep -q "setting it twice fails:.*already done" "$OUT"; then
    problem "setting a finished future should fail with 'future already done'"
  fi
  in_order "helper: the operation failed" "await raised:	false	connection refused"
  has "structured error:	ENOENT	/no/such/file"
}

check_gather() {
  has "varargs: A B C  (finished in order: b c a)"
  has "list:    JOB1 JOB2 JOB3 JOB4 JOB5  (finished in order: job5 job4 job3 job2 job1)"
  has "gather raised:	false	could not fetch broken	| slow one cancelled:	true"
  has "settle 1: ok    X"
  has "settle 2: error could not fetch y"
  has "settle 3: ok    Z"
  # Three fetches of at most 0.3 s run together: well under their 0.6 s sum.
  holds "$(num ") after" 1) < 0.45" "the varargs gather should take about 0.3 s"
}

check_task_group() {
  in_order "both spawned; the block now waits" "two done" "one done" "block 1 left"
  in_order "block 1 left" "child 1 done" "child 2 done" "child 3 done" "block 2 left"
  has "downloader: stopped early (cancelled"
  has "uploader: stopped early"
  has "the group raised: ok=false, an ErrorGroup: true, holding 2 errors"
  has ": parser hit a bad record"
  has ": uploader could not remove its temporary file"
  # tostring(eg) shows every error again.
  at_least 2 "parser hit a bad record"
  at_least 2 "uploader could not remove its temporary file"
}

check_as_completed() {
  has_line "^1\. after .*/fast "
  has_line "^2\. after .*/medium "
  has_line "^3\. after .*/slow "
  has "all 3 results handled"
  holds "$(num "1. after" 1) < 0.12" "the first result should arrive after about 0.05 s"
  holds "$(num "all 3 results handled after" 1) < 0.45" "all should be done after about 0.3 s"
}

check_producer_consumer() {  # run with scale 0.2
  has "2 producers, 1 consumer(s): 16 items"
  has "2 producers, 3 consumer(s): 16 items"
  has_count 32 "] consumer"
  one=$(num "2 producers, 1 consumer(s): 16 items (sum" 1)
  three=$(num "2 producers, 3 consumer(s): 16 items (sum" 1)
  holds "$one == $three" "both runs should handle the same items"
  a=$(num ") in" 1)
  b=$(num ") in" 2)
  holds "$b < $a" "three consumers should be faster than one"
  has "three consumers were"
}

check_tour() {
  in_order "1. spawn and await" "2. gather" "3. a task group" "4. cancellation" "tour done"
  has_line "spawned task [0-9]+ \"fetch alpha\" \(pending\) and task [0-9]+ \"fetch beta\" \(pending\)"
  has "awaited: alpha ok, beta ok"
  has "gathered: one ok, two ok, three ok"
  has "quick child: quick ok"
  lacks "slow child:"
  has "block raised a TimeoutError: true"
  has "cancel requested: true"
  has "worker: caught \"cancelled: time to stop\""
  lacks "never printed"
  has "worker cancelled: true, await raised a cancellation: true"
  holds "$(stamp "] tour done") < 3" "the tour should take under 3 s"
}

check_parallel_primes() {  # run with N = 200,000: primes counted twice, the same count
  has "counting the primes below 200000 in 8 ranges"
  has "sequential:  17984 primes in"
  has "on the pool: 17984 primes in"
  has "same count: yes"
  has_line "^speedup: [0-9.]+x$"
  has "the loop stayed free"
}

# ---- servers: started in the background, talked to by real clients -----------

wait_listening() {  # FILE: wait (5 s at most) for "listening on HOST PORT" in FILE
  i=0
  while [ $i -lt 50 ]; do
    if grep -q "^listening on " "$1" 2>/dev/null; then
      sed -n 's/^listening on [^ ]* \([0-9]*\)$/\1/p' "$1" | head -n 1
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

server_example() {  # NAME ARGS...: like example, with the server in the background
  name=$1
  shift
  OUT=$TMP/$name.out
  ERR=$TMP/$name.err
  reasons=
  timeout 60 "$CORIO" "examples/$name.lua" "$@" >"$OUT" 2>"$ERR" &
  pid=$!
  if port=$(wait_listening "$OUT"); then
    "talk_$name" "$port"
  else
    problem "the server did not print 'listening on HOST PORT'"
    kill "$pid" 2>/dev/null || true
  fi
  status=0
  wait "$pid" || status=$?
  verdict "$status"
}

talk_echo_server() {  # PORT: one corio client, then nc
  got=$(timeout 10 "$CORIO" -e "
    local corio = require 'corio'
    local s = assert(corio.connect('127.0.0.1', $1))
    s:write('hello\\n', 'second line\\n')
    print(s:read_line(), s:read_line())
    s:close()" 2>&1) || problem "the corio client failed: $got"
  [ "$got" = "hello	second line" ] || problem "corio client got: $got"
  if command -v nc >/dev/null 2>&1; then
    got=$(printf 'from nc\n' | timeout 10 nc -N 127.0.0.1 "$1" 2>&1) ||
      problem "nc failed: $got"
    [ "$got" = "from nc" ] || problem "nc got: $got"
  else  # no netcat: a second corio client stands in
    timeout 10 "$CORIO" -e "
      local corio = require 'corio'
      local s = assert(corio.connect('127.0.0.1', $1))
      s:close()" || problem "the second client failed"
  fi
}

check_echo_server() {
  has "connection 1 from 127.0.0.1:"
  has "connection 1 closed after 2 lines"
  has "connection 2 closed after"
  has "served 2 connections"
}

check_unix_echo() {  # run with a socket path in $TMP
  in_order "listening on $TMP/unix_echo.sock" "ada: ADA SAYS 1, ADA SAYS 2" \
    "bob: BOB SAYS 1, BOB SAYS 2, BOB SAYS 3" "cy: CY SAYS 1" "closed; socket file removed"
  [ ! -e "$TMP/unix_echo.sock" ] || problem "the socket file is still there"
}

check_wc() {  # run with README.md on stdin (a file), then from a pipe
  set -- $(LC_ALL=C wc -l -w -c <README.md)
  has "$1 lines, $2 words, $3 bytes (from a file)"
  got=$(cat README.md | timeout 60 "$CORIO" examples/wc.lua 2>&1) || problem "from a pipe: $got"
  [ "$got" = "$1 lines, $2 words, $3 bytes (from a pipe)" ] || problem "from a pipe: $got"
}

# The servers below are loaded by the real clients redis-benchmark, wrk and
# curl (test dependencies), and checked by the benchmark suite's protocol
# checker when it and python3 are there.
CHECK_SERVER=../shared/bench-peers/check_server.py

tool() {  # NAME: the tool is installed (else the example fails)
  command -v "$1" >/dev/null 2>&1 || { problem "$1 is not installed"; return 1; }
}

check_protocol() {  # w5|w6 PORT: check_server.py, if it can run here
  if command -v python3 >/dev/null 2>&1 && [ -f "$CHECK_SERVER" ]; then
    got=$(timeout 30 python3 "$CHECK_SERVER" "$1" "$2" 2>&1) || problem "check_server.py: $got"
  fi
}

talk_ping_server() {  # PORT: the checker, redis-benchmark with and without pipelining, SHUTDOWN
  check_protocol w5 "$1"
  if tool redis-benchmark; then
    for depth in 16 1; do
      got=$(timeout 60 redis-benchmark -h 127.0.0.1 -p "$1" -t ping_inline -n 20000 -c 20 \
        -P "$depth" -q 2>&1 | tr '\r' '\n') || true
      rps=$(printf '%s\n' "$got" |
        sed -n 's/^PING_INLINE: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
      if [ -z "$rps" ]; then problem "redis-benchmark -P $depth printed no rate: $got"
      else holds "$rps > 0" "redis-benchmark -P $depth: no requests per second"
      fi
      if printf '%s\n' "$got" | grep -qi '^error'; then
        problem "redis-benchmark -P $depth reported errors: $got"
      fi
    done
  fi
  got=$(timeout 10 "$CORIO" -e "
    local corio = require 'corio'
    local s = assert(corio.connect('127.0.0.1', $1))
    s:write('PING\\r\\nSHUTDOWN\\r\\n')
    print(s:read_line(), s:read_line())
    s:close()" 2>&1) || problem "the corio client failed: $got"
  [ "$got" = "+PONG	nil" ] || problem "PING then SHUTDOWN got: $got"
}

check_ping_server() {
  has_line "^served [0-9]+ connections, [0-9]+ commands$"
  holds "$(num "connections," 1) >= 40000" "fewer commands than the two redis-benchmark runs sent (2 x 20,000)"
}

talk_http_hello() {  # PORT: the checker, curl, wrk, then /quit
  url=http://127.0.0.1:$1/
  check_protocol w6 "$1"
  if tool curl; then
    got=$(timeout 10 curl -s "$url" 2>&1) || problem "curl failed: $got"
    [ "$got" = "hello world" ] || problem "curl got: $got"
    # two requests on one connection: the second makes no new connection
    got=$(timeout 10 curl -s -w ' %{num_connects}\n' "$url" "${url}again" 2>&1) ||
      problem "curl (two requests) failed: $got"
    [ "$got" = "hello world 1
hello world 0" ] || problem "curl (keep-alive pair) got: $got"
    got=$(timeout 10 curl -s -d 'a request body' "${url}form" 2>&1) || problem "curl -d failed: $got"
    [ "$got" = "hello world" ] || problem "curl -d got: $got"
    got=$(timeout 10 curl -s -i -H 'Connection: close' "$url" 2>&1 | tr -d '\r')
    printf '%s\n' "$got" | grep -qx 'Connection: close' ||
      problem "no 'Connection: close' in the answer to one: $got"
  fi
  if tool wrk; then
    got=$(timeout 30 wrk -t1 -c10 -d1s "$url" 2>&1) || problem "wrk failed: $got"
    n=$(printf '%s\n' "$got" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
    if [ -z "$n" ]; then problem "wrk printed no request count: $got"
    else holds "$n > 100" "wrk made only $n requests"
    fi
    if printf '%s\n' "$got" | grep -qE 'Socket errors|Non-2xx'; then problem "wrk: $got"; fi
  fi
  got=$(timeout 10 "$CORIO" -e "
    local corio = require 'corio'
    local s = assert(corio.connect('127.0.0.1', $1))
    s:write('GET /quit HTTP/1.1\\r\\nHost: here\\r\\n\\r\\n')
    local all = s:read_all()
    print(all:match('\\r\\n\\r\\n(.*)'))
    s:close()" 2>&1) || problem "the corio client failed: $got"
  [ "$got" = "hello world" ] || problem "/quit got: $got"
}

check_http_hello() {
  has_line "^served [0-9]+ requests$"
}

ask_prefork() {  # PORT N: N requests, one connection each; prints the answers
  timeout 20 "$CORIO" -e "
    local corio = require 'corio'
    for _ = 1, $2 do
      local s = assert(corio.connect('127.0.0.1', $1))
      s:write('GET / HTTP/1.1\\r\\nHost: here\\r\\nConnection: close\\r\\n\\r\\n')
      print((s:read_all():match('\\r\\n\\r\\n(.*)\\n\$')))
      s:close()
    end" 2>&1
}

talk_prefork() {  # PORT: both workers answer; kill one, see it restarted; SIGTERM
  got=$(ask_prefork "$1" 16) || problem "the corio client failed: $got"
  printf '%s\n' "$got" | grep -qx 'hello from worker 1' || problem "worker 1 never answered: $got"
  printf '%s\n' "$got" | grep -qx 'hello from worker 2' || problem "worker 2 never answered: $got"
  wpid=$(sed -n 's/^worker 1 started (pid \([0-9]*\))$/\1/p' "$OUT" | head -n 1)
  if [ -n "$wpid" ]; then
    kill -KILL "$wpid"
    i=0
    while [ $i -lt 50 ] && [ "$(grep -c '^worker 1 started' "$OUT")" -lt 2 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    got=$(ask_prefork "$1" 16) || problem "the corio client failed after the kill: $got"
    printf '%s\n' "$got" | grep -qx 'hello from worker 1' || problem "worker 1 never answered again: $got"
  else
    problem "no pid for worker 1"
  fi
  kill -TERM "$pid"  # timeout passes it on to the parent
}

check_prefork() {
  has_count 1 "listening on 127.0.0.1"
  has_line "^worker 1 \(pid [0-9]+\) exited: SIGKILL; restarting$"
  has_count 2 "worker 1 started"
  has_count 1 "worker 2 started"
  in_order "exited: SIGKILL" "SIGTERM: stopping 2 workers" "stopped"
}

check_fetch_many() {  # run with scale 0.2: pages take 4 to 20 ms, 0.6 s in all
  has "50 pages from 127.0.0.1:"
  seq=$(num "sequential: 50 pages in" 1)
  conc=$(num "10 at a time: 50 pages in" 1)
  has_line "the server answered at most ([1-9]|10) at once"
  holds "$seq >= 0.55" "in sequence it should take at least the sum of the delays"
  holds "$conc >= 0.055 && $conc < $seq / 3" "ten at a time should be several times faster"
  has "speedup:"
}

check_https_get() {  # fetched from a local corio HTTPS server, verified with a test CA
  [ "$(cat "$OUT")" = "hello over tls" ] || problem "the body differs"
}

# https_get against a corio HTTPS server (certificates made here by openssl,
# the CA passed through SSL_CERT_FILE), verification on; skipped without TLS
https_example() {
  name=https_get
  OUT=$TMP/$name.out
  ERR=$TMP/$name.err
  reasons=
  if ! command -v openssl >/dev/null ||
     ! "$CORIO" -e 'os.exit(require("corio").tls.available() and 0 or 1)' 2>/dev/null; then
    echo "skip $name (no TLS)"
    return 0
  fi
  (
    cd "$TMP"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=examples CA" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out srv.key 2>/dev/null
    openssl req -new -key srv.key -out srv.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > srv.ext
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile srv.ext -out srv.pem 2>/dev/null
  ) || { problem "openssl could not make the certificates"; verdict 1; return 0; }
  timeout 60 "$CORIO" -e "
    local corio = require 'corio'
    local srv = assert(corio.serve('127.0.0.1', 0, function(s)
      repeat local l = s:read_line() until l == '' or l == nil
      s:write('HTTP/1.1 200 OK\\r\\nContent-Length: 15\\r\\n\\r\\nhello over tls\\n')
    end, { tls = { cert = '$TMP/srv.pem', key = '$TMP/srv.key' } }))
    local _, port = srv:address()
    print('listening on 127.0.0.1 ' .. port)
    io.stdout:flush()
    corio.sleep(20)" >"$TMP/https_server.out" 2>&1 &
  spid=$!
  status=0
  if port=$(wait_listening "$TMP/https_server.out"); then
    SSL_CERT_FILE=$TMP/ca.pem timeout 60 "$CORIO" examples/https_get.lua \
      "https://localhost:$port/" >"$OUT" 2>"$ERR" || status=$?
  else
    problem "the HTTPS server did not start"
  fi
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  verdict "$status"
}

# ---- redis: a redis-server of its own, on a free port, in $TMP ----------------

redis_example() {  # NAME ARGS...: example NAME PORT ARGS against a fresh redis-server
  name=$1
  shift
  dir=$TMP/redis-$name
  mkdir -p "$dir"
  # redis-server cannot take port 0: bind one, note it, let it go
  rport=$(timeout 10 "$CORIO" -e "
    local corio = require 'corio'
    local s = assert(corio.serve('127.0.0.1', 0, function() end))
    print((select(2, s:address())))
    s:close()" 2>/dev/null) || rport=0
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --hz 100 --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    >/dev/null 2>&1 || true
  i=0
  until redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  example "$name" "$rport" "$@"
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  i=0
  while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
}

check_redis_fanout() {  # 100 lua-redis clients over corio.socket, then one after another
  has "100 tasks against redis at 127.0.0.1:"
  has_count 2 "counter: 200 (expected 200)"
  has_line "^concurrent: 100 clients, 2700 commands in "
  has_line "^sequential: 100 clients, 2700 commands in "
  conc=$(num "concurrent: 100 clients, 2700 commands in" 1)
  seq=$(num "sequential: 100 clients, 2700 commands in" 1)
  holds "$conc < $seq / 3" "the 100 concurrent clients should be several times faster"
  has_line "^timeout: the blocked BLPOP gave up after 0\.[0-9]+ s \(an error\): .*connection error: timeout"
}

# ---- run them all ---------------------------------------------------------------

example io_latency 0.1
example say_after 0.2
example await_twice
example future
example gather
example task_group
example as_completed
example producer_consumer 0.2
example tour
server_example echo_server 0 2
example unix_echo "$TMP/unix_echo.sock"
example wc <README.md
server_example ping_server 0
server_example http_hello 0
example fetch_many 0.2
example parallel_primes 200000
https_example
redis_example redis_fanout
server_example prefork 0 2

# The guide's examples (docs/guide.md): each must exit with status 0, print
# nothing on stderr, and print every line its "-- expect: TEXT" comments give.
check_guide_file() {
  sed -n 's/^-- expect: //p' "$guide_file" >"$TMP/expect"
  while IFS= read -r line; do has "$line"; done <"$TMP/expect"
}
for guide_file in examples/guide/*.lua; do
  name=guide_$(basename "$guide_file" .lua)
  eval "check_$name() { check_guide_file; }"
  OUT=$TMP/$name.out
  ERR=$TMP/$name.err
  reasons=
  status=0
  timeout 60 "$CORIO" "$guide_file" >"$OUT" 2>"$ERR" || status=$?
  verdict "$status"
done

# README's example, as printed on the front page.
check_readme_example() {
  has "alpha ok	beta ok	gamma ok"
  has_line "^[0-9.]+ s"
}
name=readme_example
OUT=$TMP/$name.out
ERR=$TMP/$name.err
reasons=
status=0
awk '/^## An example/ { on = 1 } on && /^```lua/ { code = 1; next }
     code && /^```/ { exit } code' README.md >"$TMP/readme_example.lua"
timeout 60 "$CORIO" "$TMP/readme_example.lua" >"$OUT" 2>"$ERR" || status=$?
verdict "$status"

echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
