#!/bin/sh
# valgrind.sh BUILD: memcheck over the C tests (leak check on) and a representative
# part of the specs under `valgrind lua5.4` (leak check off: Lua's own allocations at
# exit are not ours to report; every other memcheck error counts).
#
# memcheck's verdict is its own exit code (99), kept apart from a test's own failure
# (1): valgrind runs code 20-50 times slower, and a few C tests check timings of a few
# milliseconds that such a slowdown can miss. Those are named in VALGRIND_TIMING; their
# failed checks are reported but only their memcheck verdict decides. Any other failure,
# and any memcheck error anywhere, fails the run.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SPECS=${VALGRIND_SPECS:-"future_spec task_spec queue_spec timeout_spec cancel_spec group_spec sync_spec tcp_shutdown_spec"}
TIMING=${VALGRIND_TIMING:-"test_task"}
VG="valgrind -q --error-exitcode=99 --track-fds=no --num-callers=30"
fail=0
start=$(date +%s)

for t in "$ROOT/$BUILD"/spec-c/*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  $VG --leak-check=full --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite,indirect,possible "$t" >/dev/null 2>"$ROOT/$BUILD/vg-$name.log"
  rc=$?
  case "$rc" in
    0) echo "valgrind ok    $name" ;;
    99) echo "valgrind ERROR $name (memcheck; see $BUILD/vg-$name.log)"; cat "$ROOT/$BUILD/vg-$name.log"; fail=1 ;;
    *) case " $TIMING " in
         *" $name "*) echo "valgrind ok    $name (memcheck clean; timing checks missed under valgrind, rc=$rc)" ;;
         *) echo "valgrind FAIL  $name (rc=$rc; see $BUILD/vg-$name.log)"; cat "$ROOT/$BUILD/vg-$name.log"; fail=1 ;;
       esac ;;
  esac
done

cd "$ROOT" || exit 1
for s in $SPECS; do
  CORIO_BIN="$ROOT/$BUILD/bin/corio" \
    $VG --leak-check=no lua5.4 "$(command -v busted)" --ignore-lua -o utfTerminal \
    "spec/$s.lua" >"$ROOT/$BUILD/vg-$s.log" 2>&1
  rc=$?
  case "$rc" in
    0) echo "valgrind ok    $s" ;;
    *) echo "valgrind FAIL  $s (rc=$rc$( [ "$rc" = 99 ] && echo ', memcheck'))"; cat "$ROOT/$BUILD/vg-$s.log"; fail=1 ;;
  esac
done
echo "valgrind: $(( $(date +%s) - start )) s"
exit $fail
