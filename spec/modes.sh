#!/bin/sh
# The specs under one of the runtime's test modes (docs/testing.md, "Test modes"):
#
#   sh spec/modes.sh MODE [SPEC...]
#
#   shuffle       each batch of ready tasks in a shuffled order (CORIO_SHUFFLE),
#                 once per seed: SHUFFLE_SEEDS="1 2 3" names them, else
#                 SHUFFLE_RUNS (default 20) fresh random ones, printed
#   gc            a full collection before every step of a task (CORIO_GC_STRESS=1)
#   generational  the collector in generational mode in every Lua process
#   incremental   or in incremental mode (LUA_INIT_5_4, which lua5.4 and the
#                 corio command run first; lua5.4 itself starts generational,
#                 the corio command incremental)
#
# With no SPEC, the whole suite. spec/modes_spec.lua runs first in every
# run: it checks that the mode is really on. CORIO_BIN is the command the
# specs run (default build/bin/corio); BUSTED_RUN picks a .busted run
# (asan). Every run prints its wall time; a failed run prints how to
# repeat it, and the script exits 1 once every run has been made.
set -u
cd "$(dirname "$0")/.." || exit 2

mode=${1:?usage: spec/modes.sh shuffle|gc|generational|incremental [SPEC...]}
shift
CORIO_BIN=${CORIO_BIN:-$PWD/build/bin/corio}
export CORIO_BIN
run=${BUSTED_RUN:+--run=$BUSTED_RUN}
specs="$*"
[ -n "$specs" ] && specs="spec/modes_spec.lua $specs"
failed=0

# run DESCRIPTION ENV...: busted over $specs (the whole suite when empty)
# with ENV added to its environment
run() {
  what=$1
  shift
  start=$(date +%s)
  # shellcheck disable=SC2086  # $run and $specs are word lists
  if env "$@" busted $run $specs; then
    echo "modes: $what: passed in $(( $(date +%s) - start )) s"
  else
    echo "modes: $what: FAILED after $(( $(date +%s) - start )) s;" \
         "repeat with: env $* busted $run ${specs:-(the whole suite)}"
    failed=1
  fi
}

case $mode in
  shuffle)
    seeds=${SHUFFLE_SEEDS:-}
    if [ -z "$seeds" ]; then
      i=0
      while [ "$i" -lt "${SHUFFLE_RUNS:-20}" ]; do
        seeds="$seeds $(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
        i=$((i + 1))
      done
    fi
    echo "modes: shuffle seeds: $seeds" | tr -s ' '
    total=$(date +%s)
    for seed in $seeds; do
      # the seed is printed here; CORIO_SHUFFLE_SHOWN keeps the runtime quiet,
      # so the specs that compare a process's stderr see only their own
      echo "modes: CORIO_SHUFFLE=$seed"
      run "CORIO_SHUFFLE=$seed" CORIO_SHUFFLE="$seed" CORIO_SHUFFLE_SHOWN=1 \
        CORIO_EXPECT_MODE=shuffle
    done
    echo "modes: shuffle: $(echo "$seeds" | wc -w) seeds in $(( $(date +%s) - total )) s"
    ;;
  gc)
    run "CORIO_GC_STRESS=1" CORIO_GC_STRESS=1 CORIO_EXPECT_MODE=gc
    ;;
  generational|incremental)
    run "$mode collector" LUA_INIT_5_4="collectgarbage(\"$mode\")" CORIO_EXPECT_MODE="$mode"
    ;;
  *)
    echo "spec/modes.sh: unknown mode '$mode' (shuffle, gc, generational or incremental)" >&2
    exit 2
    ;;
esac
exit $failed
