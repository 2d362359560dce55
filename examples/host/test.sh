#!/bin/sh
# The plugin host, end to end: install corio into a fresh prefix, build the host
# against it with pkg-config, load the two sample plugins, reload one, unload the
# other, stop with SIGTERM, and check what it printed.
#
#   sh examples/host/test.sh [build-dir]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corio-host.XXXXXX")
PID=
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "examples/host: FAIL ($1)"; [ ! -f "$TMP/out" ] || sed 's/^/  | /' "$TMP/out"; exit 1; }

cmake --install "$BUILD" --prefix "$TMP/prefix" > "$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "install"; }
PKG_CONFIG_PATH=$(dirname "$(find "$TMP/prefix" -name corio.pc | head -n 1)")
export PKG_CONFIG_PATH
LIBDIR=$(pkg-config --variable=libdir corio)
LUADIR=$(pkg-config --variable=luadir corio)
make -s -C "$HERE" -f "$HERE/Makefile" plugin-host CC="${CC:-cc}" \
  CFLAGS="-O1 -g -Wall -Wextra -Werror" > "$TMP/cc.log" 2>&1 || { cat "$TMP/cc.log"; fail "build"; }
mv "$HERE/plugin-host" "$TMP/"


# commands go through a fifo, each once the output shows the state it needs
mkfifo "$TMP/in"
LD_LIBRARY_PATH="$LIBDIR" LUA_PATH="$LUADIR/?.lua;$LUADIR/?/init.lua;;" \
  "$TMP/plugin-host" "$HERE/plugins" < "$TMP/in" > "$TMP/out" 2>&1 &
PID=$!
exec 3> "$TMP/in"
wait_for() {  # wait_for TEXT: until the output has the line
  i=0
  until grep -qF -- "$1" "$TMP/out"; do
    i=$((i + 1)); [ "$i" -lt 400 ] || fail "no '$1'"
    kill -0 "$PID" 2>/dev/null || fail "the host exited before '$1'"
    sleep 0.05
  done
}
wait_for "[ticker] tick 3"
wait_for "[squares] square(7) = 49"
echo "reload ticker" >&3
wait_for "unloaded ticker (cleanup done)"
wait_for "loaded ticker"
echo "unload squares" >&3
wait_for "unloaded squares (cleanup done)"
echo "list" >&3
wait_for "squares unloaded"
kill -TERM "$PID"
st=0; wait "$PID" || st=$?
PID=
exec 3>&-
[ "$st" = 0 ] || fail "exit status $st"
wait_for "shut down"
out=$(cat "$TMP/out")
for line in "loaded squares" "[squares] square(5) = 25" "[squares] square(6) = 36" \
            "[ticker] cleaned up" "error in plugin squares: squares gave up" \
            "signal 15: shutting down" "ticker loaded"; do
  echo "$out" | grep -qF -- "$line" || fail "no '$line'"
done
[ "$(grep -c '^loaded ticker$' "$TMP/out")" = 2 ] || fail "ticker should load twice"
[ "$(grep -c '^unloaded ticker (cleanup done)$' "$TMP/out")" = 2 ] || fail "ticker should unload twice"
[ "$(grep -c 'error in plugin' "$TMP/out")" = 1 ] || fail "one plugin error, once"
echo "examples/host: ok"
