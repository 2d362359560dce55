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
import termios
import time

corio = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.environ.pop("LUA_INIT", None)
    os.execv(corio, [corio])

seen = b""
transcript = b""  # everything the prompt wrote, for a failure's report


def expect(text, timeout=30.0):
    """Read until text has come (after what earlier expects consumed)."""
    global seen, transcript
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
            transcript += chunk
    seen = seen[seen.index(want) + len(want):]


def line_mode():
    """Whether the terminal is in its own line mode (ICANON) now."""
    return bool(termios.tcgetattr(fd)[3] & termios.ICANON)


def prompt(text="> "):
    """A prompt shows, and the terminal has left line mode before it did:
    keys typed the moment it shows go to the line editor (a Ctrl-D typed in
    the terminal's line mode would be lost)."""
    expect(text)
    if line_mode():
        fail("the prompt %r showed while the terminal was in line mode" % text)


def running():
    """A line runs: the terminal is back in line mode (the user's settings)."""
    end = time.time() + 10
    while not line_mode():
        if time.time() > end:
            fail("the terminal stayed out of line mode while a line ran")
        time.sleep(0.01)


def send(text):
    os.write(fd, text.encode())


def threads():
    """Where each thread of the prompt is waiting, for a failure's report."""
    out = []
    try:
        for tid in sorted(os.listdir("/proc/%d/task" % pid)):
            base = "/proc/%d/task/%s/" % (pid, tid)
            with open(base + "stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(base + "wchan") as f:
                wchan = f.read()
            with open(base + "comm") as f:
                comm = f.read().strip()
            out.append("%s %s %s %s" % (tid, comm, state, wchan))
    except OSError as e:
        out.append(str(e))
    try:
        lflag = termios.tcgetattr(fd)[3]
        out.append("ICANON %d ECHO %d ISIG %d" % (bool(lflag & termios.ICANON), bool(lflag & termios.ECHO), bool(lflag & termios.ISIG)))
    except termios.error as e:
        out.append(str(e))
    return "; ".join(out)


def fail(msg):
    print("repl_pty: FAIL:", msg)
    print("repl_pty: threads:", threads())
    print("repl_pty: transcript:", repr(transcript[-600:]))
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    sys.exit(1)


prompt()
send("corio.sleep(0.05) return 40 + 2\r")
expect("42")
prompt()
send("corio.spawn(function() for i = 1, 3 do corio.sleep(0.1) print('tick ' .. i) end end)\r")
prompt()
expect("tick 3")                    # printed while the prompt waits
send("error('oops')\r")
expect("oops")
prompt()
send("for i = 1, 2 do\r")
prompt(">> ")
send("print('row ' .. i * 10)\r")
prompt(">> ")
send("end\r")
expect("row 20")
prompt()
send("print('start' .. 'ed') corio.sleep(30)\r")
expect("started")                   # (the echo of the line says 'start' .. 'ed')
running()
send("\x03")                        # Ctrl-C cancels the running line...
expect("interrupted")
prompt()
send("return 'still ' .. 'here'\r")  # ...not the program
expect("still here")
prompt()
send("\x03")                        # Ctrl-C at the prompt drops the input
expect("(Ctrl-D exits)")
send("return 7 * 6\r")
expect("42")
prompt()
send("\x04")                        # Ctrl-D exits
end = time.time() + 10
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.time() > end:
        fail("Ctrl-D did not end the prompt; output after it %r" % seen[-400:])
    r, _, _ = select.select([fd], [], [], 0.05)  # never a blocking read: the
    if r:                                         # deadline above must be seen
        try:
            chunk = os.read(fd, 4096)
            seen += chunk
            transcript += chunk
        except OSError:
            time.sleep(0.05)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("exit status %r" % status)
print("repl_pty: ok")
