#!/bin/sh
# run.sh CORIO: every soak script in spec/soak/ with the corio command CORIO.
# Sizes and durations come from the environment (defaults in each script):
# SOAK_CONNS, SOAK_SECS (tcp_frames), SOAK_FD_CONNS (fd_limit), SOAK_TIMERS,
# SOAK_TIMER_SECS (timers), SOAK_PROCS, SOAK_PROC_PAR (spawn_storm), SOAK_SEED.
set -eu
CORIO=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
ulimit -n 8192 2>/dev/null || true   # 1000 connections are 2000 fds in one process
export CORIO_BIN="$CORIO"
for s in tcp_frames fd_limit timers spawn_storm; do
  timeout 600 "$CORIO" "$s.lua"
done
