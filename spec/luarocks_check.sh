#!/bin/sh
# The rock builds offline against the system libuv, installs into a fresh tree,
# and `require "corio"` works from that tree alone.
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
echo "luarocks_check: ok"
