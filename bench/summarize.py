#!/usr/bin/env python3
"""Markdown tables from bench/run.sh's raw TSV (workload, label, rep, metric, value).

One table per workload: median (min..max) over the repetitions of the in-program secs,
process elapsed, peak RSS and rate, bytes/task against the same runtime's empty run,
and corio's median divided by each row's median (below 1: corio is faster / smaller).
Network workloads (w5-P16, w5-P1, w6): req/s and server CPU microseconds per request,
each row's CPU divided by node's, c-uv's and uvloop-proto's, then corio against the targets.
usage: summarize.py RAW.tsv
"""
import collections
import statistics
import sys

data = collections.defaultdict(lambda: collections.defaultdict(list))
fails = collections.defaultdict(list)
order = collections.defaultdict(list)  # workload -> labels, first seen first
with open(sys.argv[1]) as f:
    for line in f:
        wl, label, _rep, metric, value = line.rstrip("\n").split("\t")
        if label not in order[wl]:
            order[wl].append(label)
        if metric == "fail":
            fails[wl, label].append(value)
        elif value:
            data[wl, label][metric].append(float(value))


def med(wl, label, metric):
    vals = data[wl, label].get(metric)
    return statistics.median(vals) if vals else None


def spread(vals, fmt):
    if not vals:
        return "-"
    m = fmt(statistics.median(vals))
    return m if len(vals) == 1 else f"{m} ({fmt(min(vals))}..{fmt(max(vals))})"


def runtime(label):  # "luv-co" -> "luv": the row whose empty run is the baseline
    return label.split("-")[0]


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


secs = lambda v: f"{v:.2f}"  # noqa: E731
count = lambda v: f"{v:,.0f}"  # noqa: E731
mb = lambda kb: f"{kb / 1024:.0f}" if kb >= 100 * 1024 else f"{kb / 1024:.1f}"  # noqa: E731
empty_kb = {runtime(label): med("empty", label, "rss_kb") for label in order.get("empty", [])}
TITLES = {"empty": "empty (start-up, RSS baseline)", "w1": "W1 spawn + gather",
          "w2": "W2 sleepers (1.0 s each)", "w3": "W3 switch (sleep(0)); rate = switches/s",
          "w4": "W4 queue(100), producer -> consumer; rate = items/s",
          "w8spawn": "W8 spawn: /bin/true, 32 at a time; rate = processes/s",
          "w8pipe": "W8 pipe: bytes read from a child's stdout; rate = MB/s",
          "w7cpu": "W7cpu 8 prime-counting jobs on a pool of 2; secs = the pool's",
          "w7rtt": "W7rtt tiny jobs, 64 in flight, pool of 2; rate = jobs/s",
          "w9": "W9 files: 4 KiB each, 64 in flight, written then read back"}

NET = {"w5-P16": "W5 Redis inline PING, redis-benchmark -c 50 -P 16",
       "w5-P1": "W5 Redis inline PING, redis-benchmark -c 50 -P 1",
       "w6": "W6 HTTP/1.1 keep-alive hello, wrk -t1 -c100",
       "w10ka": "W10 HTTPS keep-alive hello (TLS 1.3), wrk -t1 -c100",
       "w10hs": "W10 HTTPS, a new connection (a handshake) per request, wrk -t1 -c100"}
# the targets: corio's CPU/request at most TARGET x the reference's
TARGETS = {"w5-P16": [("node", 1.0), ("c-uv", 1.3)], "w6": [("uvloop-proto", 1.0), ("c-uv", 1.1)],
           "w10ka": [("nginx", 1.1)]}
REFS = ("node", "c-uv", "uvloop-proto", "nginx")
usec = lambda v: f"{v:.2f}"  # noqa: E731


def net_table(wl, labels):
    n = next((med(wl, label, "n") for label in labels if med(wl, label, "n")), 0)
    what = "requests" if wl.startswith("w5") else "requests per run (median)"
    print(f"\n### {NET[wl]}, {n:,.0f} {what}\n")
    print("| server | req/s | server CPU us/req | " + " | ".join(f"cpu / {r}" for r in REFS) + " |")
    print("|---|---|---|" + "---|" * len(REFS))
    for label in labels:
        m = data[wl, label]
        name = label + (f" **FAILED {','.join(fails[wl, label])}**" if fails.get((wl, label)) else "")
        cols = " | ".join(ratio(med(wl, label, "cpu_us"), med(wl, r, "cpu_us")) for r in REFS)
        print(f"| {name} | {spread(m.get('rate'), count)} | {spread(m.get('cpu_us'), usec)} | {cols} |")
    rates = {label: med(wl, label, "rate") for label in labels}
    peers = [r for label, r in rates.items() if r and not label.startswith("corio")]
    for label in [x for x in labels if x.startswith("corio")]:
        notes = [f"cpu {ratio(med(wl, label, 'cpu_us'), med(wl, ref, 'cpu_us'))} x {ref} (target <= {t})"
                 for ref, t in TARGETS.get(wl, []) if med(wl, ref, "cpu_us")]
        if peers and rates[label]:
            notes.append(f"req/s {'not ' if rates[label] >= min(peers) else ''}below the slowest peer")
        if notes:
            print(f"\n{label}: " + "; ".join(notes))


for wl, labels in order.items():
    if wl in NET:
        net_table(wl, labels)
        continue
    n = next((med(wl, label, "n") for label in labels if med(wl, label, "n")), 0)
    print(f"\n### {TITLES.get(wl, wl)}, N={n:,.0f}\n")
    print("| runtime | secs | elapsed | peak RSS MB | bytes/task | rate/s "
          "| corio/this time | corio/this RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for label in labels:
        m = data[wl, label]
        bpt = "-"
        base = empty_kb.get(runtime(label))
        if wl in ("w1", "w2") and base and n and m.get("rss_kb"):
            bpt = spread([(kb - base) * 1024 / n for kb in m["rss_kb"]], count)
        # the bare-coroutine floor's secs is CPU time (plain Lua has no wall clock): RSS only
        t = "-" if runtime(label) == "lua" else ratio(med(wl, "corio", "secs"), med(wl, label, "secs"))
        name = label + (f" **FAILED {','.join(fails[wl, label])}**" if fails.get((wl, label)) else "")
        print(f"| {name} | {spread(m.get('secs'), secs)} | {spread(m.get('elapsed'), secs)} "
              f"| {spread(m.get('rss_kb'), mb)} | {bpt} | {spread(m.get('rate'), count)} "
              f"| {t} "
              f"| {ratio(med(wl, 'corio', 'rss_kb'), med(wl, label, 'rss_kb'))} |")
    if wl == "w7cpu":  # the pool against the same jobs one after the other
        print("\n| runtime | sequential s | speedup |\n|---|---|---|")
        for label in labels:
            m = data[wl, label]
            print(f"| {label} | {spread(m.get('seq_secs'), secs)} | {spread(m.get('speedup'), secs)} |")
    if wl == "w9":  # the two phases, against raw C libuv (target: at least 0.8x in both)
        print("\n| runtime | write files/s | read files/s | write / c-uv | read / c-uv |")
        print("|---|---|---|---|---|")
        for label in labels:
            m = data[wl, label]
            print(f"| {label} | {spread(m.get('write_rate'), count)} | {spread(m.get('read_rate'), count)} "
                  f"| {ratio(med(wl, label, 'write_rate'), med(wl, 'c-uv', 'write_rate'))} "
                  f"| {ratio(med(wl, label, 'read_rate'), med(wl, 'c-uv', 'read_rate'))} |")
    if wl == "w2" and "lua-coroutines" in labels:
        r = ratio(med(wl, "corio", "rss_kb"), med(wl, "lua-coroutines", "rss_kb"))
        print(f"\nW2 memory: corio peak RSS / bare coroutines = {r} (target <= 1.20)")
        for label in [x for x in labels if x.startswith("corio-alloc:")]:
            r = ratio(med(wl, label, "rss_kb"), med(wl, "lua-coroutines", "rss_kb"))
            print(f"W2 memory: {label} peak RSS / bare coroutines = {r}")
        if "lua-coroutines-corio-alloc" in labels:  # the floor on corio's allocator too
            r = ratio(med(wl, "corio", "rss_kb"), med(wl, "lua-coroutines-corio-alloc", "rss_kb"))
            print(f"W2 memory: corio peak RSS / bare coroutines on corio's allocator = {r}")
    gc_rows = [x for x in labels if x.startswith("corio-gc:") or x.startswith("corio-alloc:")]
    if gc_rows and "node" in labels:  # the collector settings against node, same run
        print("\n| corio row | elapsed / node | secs / node | peak RSS / node |\n|---|---|---|---|")
        for label in ["corio"] + gc_rows:
            print(f"| {label} | {ratio(med(wl, label, 'elapsed'), med(wl, 'node', 'elapsed'))} "
                  f"| {ratio(med(wl, label, 'secs'), med(wl, 'node', 'secs'))} "
                  f"| {ratio(med(wl, label, 'rss_kb'), med(wl, 'node', 'rss_kb'))} |")
