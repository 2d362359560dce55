#!/bin/sh
# The library installs for hosts: `cmake --install` into a fresh prefix, then a host
# outside the tree builds against it with pkg-config (shared and static libcorio) and
# with find_package(corio), and runs a plugin.
#
#   sh spec/install_check.sh [build-dir]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corio-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

fail() { echo "install_check: FAIL ($1)"; exit 1; }

cmake --install "$BUILD" --prefix "$TMP/prefix" > "$TMP/install.log" 2>&1 \
  || { cat "$TMP/install.log"; fail "cmake --install"; }
PC=$(find "$TMP/prefix" -name corio.pc | head -n 1)
[ -n "$PC" ] || fail "no corio.pc installed"
LIBDIR=$(cd "$(dirname "$PC")/.." && pwd)
for f in "$TMP/prefix/include/corio.h" "$LIBDIR/libcorio.a" "$LIBDIR/libcorio.so" \
         "$LIBDIR/cmake/corio/corioConfig.cmake"; do
  [ -e "$f" ] || fail "not installed: $f"
done

# from a directory with no corio sources
mkdir "$TMP/host"
cp "$ROOT/spec/install/host.c" "$ROOT/spec/install/plugin.lua" "$ROOT/spec/install/CMakeLists.txt" "$TMP/host/"
cd "$TMP/host"
PKG_CONFIG_PATH="$(dirname "$PC")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
LUADIR=$(pkg-config --variable=luadir corio)
LUA_PATH="$LUADIR/?.lua;$LUADIR/?/init.lua;;"
export LUA_PATH
unset LUA_PATH_5_4 || true

run_host() {  # run_host BINARY: the plugin prints its line, the host exits 0
  out=$(LD_LIBRARY_PATH="$LIBDIR" "$1" plugin.lua 2>&1) || { echo "$out"; fail "$1 exited non-zero"; }
  [ "$out" = "hello world" ] || { echo "$out"; fail "$1: expected 'hello world'"; }
}

# shared, exactly as the README says
# shellcheck disable=SC2046
cc -o host-shared host.c $(pkg-config --cflags --libs corio lua5.4) \
  > "$TMP/cc.log" 2>&1 || { cat "$TMP/cc.log"; fail "cc against the shared library"; }
LD_LIBRARY_PATH="$LIBDIR" ldd ./host-shared | grep -q "$LIBDIR/libcorio.so" || fail "host-shared does not use the installed libcorio.so"
run_host ./host-shared

# static: libcorio.a, then what it needs (libuv, Lua, and OpenSSL when it has TLS)
# shellcheck disable=SC2046
cc -o host-static host.c $(pkg-config --cflags corio lua5.4) "$LIBDIR/libcorio.a" \
  $(pkg-config --libs --static libuv lua5.4 $(pkg-config --print-requires-private corio)) \
  > "$TMP/cc.log" 2>&1 \
  || { cat "$TMP/cc.log"; fail "cc against the static library"; }
run_host ./host-static

# find_package(corio)
cmake -S . -B build -DCMAKE_PREFIX_PATH="$TMP/prefix" > "$TMP/cmake.log" 2>&1 \
  && cmake --build build >> "$TMP/cmake.log" 2>&1 \
  || { cat "$TMP/cmake.log"; fail "find_package(corio)"; }
run_host ./build/host
echo "install_check: ok"
