#!/usr/bin/env python3
"""Drives `corio` (no arguments) on a pseudo-terminal, as a person at the
prompt would: a top-level wait, a spawned task printing while the prompt
waits, an error, a multi-line block, Ctrl-C on a running line, Ctrl-D.

    python3 spec/repl_pty.py path/to/corio     exits 0, or 1 with what went wrong
"""
import os
import pty
import select
import sys
import time

corio = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.environ.pop("LUA_INIT", None)
    os.execv(corio, [corio])

seen = b""


def expect(text, timeout=30.0):
    """Read until text has come (after what earlier expects consumed)."""
    global seen
    want = text.encode()
    end = time.time() + timeout
    while want not in seen:
        left = end - time.time()
        if left <= 0:
            fail("no %r in %r" % (text, seen[-400:]))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                fail("the prompt ended before %r; output %r" % (text, seen[-400:]))
            seen += chunk
    seen = seen[seen.index(want) + len(want):]


def send(text):
    os.write(fd, text.encode())


def fail(msg):
    print("repl_pty: FAIL:", msg)
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    sys.exit(1)


expect("> ")
send("corio.sleep(0.05) return 40 + 2\r")
expect("42")
expect("> ")
send("corio.spawn(function() for i = 1, 3 do corio.sleep(0.1) print('tick ' .. i) end end)\r")
expect("> ")
expect("tick 3")                    # printed while the prompt waits
send("error('oops')\r")
expect("oops")
expect("> ")
send("for i = 1, 2 do\r")
expect(">> ")
send("print('row ' .. i * 10)\r")
expect(">> ")
send("end\r")
expect("row 20")
expect("> ")
send("corio.sleep(30)\r")
time.sleep(0.3)
send("\x03")                        # Ctrl-C cancels the running line...
expect("interrupted")
expect("> ")
send("return 'still ' .. 'here'\r")  # ...not the program
expect("still here")
expect("> ")
send("\x03")                        # Ctrl-C at the prompt drops the input
expect("(Ctrl-D exits)")
send("return 7 * 6\r")
expect("42")
expect("> ")
send("\x04")                        # Ctrl-D exits
end = time.time() + 10
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.time() > end:
        fail("Ctrl-D did not end the prompt")
    r, _, _ = select.select([fd], [], [], 0.05)  # never a blocking read: the
    if r:                                         # deadline above must be seen
        try:
            os.read(fd, 4096)
        except OSError:
            time.sleep(0.05)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("exit status %r" % status)
print("repl_pty: ok")
