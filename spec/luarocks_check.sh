#!/bin/sh
# The rock builds offline against the system libuv, installs into a fresh tree,
# `require "corio"` works from that tree alone, and so does the `corio` command in the
# tree's bin/ (a script, -e, -i, -v, Ctrl-C and exit statuses); the same once the rock is
# packed and installed offline into a second tree.
#
#   sh spec/luarocks_check.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corio-rock.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

fail() { echo "luarocks_check: FAIL ($1)"; exit 1; }

# luarocks builds in the current directory (build.luarocks/). Build from a copy of only
# what the rock needs: the work tree stays clean, and a file the rock forgets to ship
# shows up here rather than on a user's machine.
mkdir "$TMP/src"
cp -R "$ROOT/CMakeLists.txt" "$ROOT/c" "$ROOT/lua" "$ROOT/rockspec" "$TMP/src/"
cd "$TMP/src"
luarocks --lua-version 5.4 make --tree "$TMP/tree" rockspec/corio-scm-1.rockspec \
  > "$TMP/make.log" 2>&1 || { cat "$TMP/make.log"; fail "luarocks make"; }

# The tree's paths only (plus the defaults), from a directory with no corio sources.
cd "$TMP"
unset LUA_PATH_5_4 LUA_CPATH_5_4 || true
LUA_PATH="$(luarocks --lua-version 5.4 --tree "$TMP/tree" path --lr-path);;"
LUA_CPATH="$(luarocks --lua-version 5.4 --tree "$TMP/tree" path --lr-cpath);;"
export LUA_PATH LUA_CPATH
out=$(TREE="$TMP/tree" lua5.4 -e '
  local corio = require "corio"
  for _, m in ipairs { "corio", "corio.core" } do
    local where = package.searchpath(m, m == "corio" and package.path or package.cpath)
    assert(where and where:find(os.getenv("TREE"), 1, true), m .. " not from the tree: " .. tostring(where))
  end
  print(corio.run(function() corio.sleep(0.01); return 42 end))
' 2>&1) || { echo "$out"; fail "require from the tree"; }
[ "$out" = 42 ] || { echo "$out"; fail "expected 42"; }
# With OpenSSL's headers on the machine, the rock has TLS too.
if [ -f /usr/include/openssl/ssl.h ]; then
  out=$(lua5.4 -e 'print((require "corio").tls.available() == true)' 2>&1) || { echo "$out"; fail "corio.tls"; }
  [ "$out" = true ] || { echo "$out"; fail "the rock was built without TLS"; }
fi

# check_command TREE: the tree's bin/corio runs on its own (no LUA_PATH, no source tree)
check_command() {
  bin="$1/bin/corio"
  [ -x "$bin" ] || fail "no $bin"
  (
    unset LUA_PATH LUA_CPATH
    cd "$TMP"
    printf 'local corio = require "corio"\ncorio.sleep(0.01)\nprint(package.searchpath("corio", package.path), ...)\n' > script.lua
    out=$("$bin" script.lua a b 2>&1) || { echo "$out"; fail "$bin script.lua"; }
    case "$out" in "$1"/*"corio/init.lua	a	b") ;; *) echo "$out"; fail "$bin script.lua: $out";; esac
    out=$("$bin" -e 'local c = require "corio"; c.sleep(0.001); print(select("#", ...), ...)' x 2>&1) \
      || { echo "$out"; fail "$bin -e"; }
    [ "$out" = "1	x" ] || fail "$bin -e: $out"
    "$bin" -v | grep -q "^corio " || fail "$bin -v"
    out=$(printf 'corio.sleep(0.001) return 6 * 7\n' | "$bin" -i 2>&1) || fail "$bin -i"
    [ "$out" = "> 42
> " ] || { echo "$out"; fail "$bin -i: $out"; }
    st=0; "$bin" -e 'error("boom")' > out.txt 2>&1 || st=$?
    [ "$st" = 1 ] && grep -q boom out.txt || { cat out.txt; fail "$bin: an error exits 1 (got $st)"; }
    # Ctrl-C cancels the main task: status 130
    "$bin" -e 'local c = require "corio"; print("ready"); io.stdout:flush(); c.sleep(30)' > out.txt 2>&1 &
    pid=$!
    i=0
    while ! grep -q ready out.txt 2>/dev/null; do
      i=$((i + 1)); [ "$i" -lt 200 ] || { kill "$pid"; fail "$bin never started"; }
      sleep 0.05
    done
    kill -INT "$pid"
    st=0; wait "$pid" || st=$?
    [ "$st" = 130 ] || { cat out.txt; fail "$bin: SIGINT exits 130 (got $st)"; }
  )
}
check_command "$TMP/tree"

# packed as a binary rock, installed offline into another tree
mkdir "$TMP/pack"
(cd "$TMP/pack" && luarocks --lua-version 5.4 --tree "$TMP/tree" pack corio > "$TMP/pack.log" 2>&1) \
  || { cat "$TMP/pack.log"; fail "luarocks pack"; }
rm -rf "$TMP/src"  # nothing left to build from
luarocks --lua-version 5.4 --tree "$TMP/tree2" install --deps-mode=none --only-server=/nonexistent \
  "$TMP"/pack/corio-scm-1.*.rock > "$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "install the packed rock"; }
check_command "$TMP/tree2"
echo "luarocks_check: ok"
