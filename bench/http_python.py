#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""http_python.py - make bench-http's Python row: F1, F2 and F3 of
sbbench_http's http case through the Python module's
StreamBuffer.from_url(url, headers=None, **options), against the C times
(sb_open_url, the "ours" medians) of the same run, read from its CSV.

    http_python.py --url URL --c-csv build/bench/http-run-K.csv
                   [--reps N] [--csv OUT] [--http-log FILE] [--http-file FILE]
                   [--tmp-dir DIR]

  F1  from_url(mem_limit=4 MiB), then read(900/1024 of the length, 4096):
      open to return;
  F2  from_url(mem_limit=4 MiB, read_ahead=1 MiB, max_parts=8), 8 threads
      x 32 random 64 KiB reads, the same offsets as the C case (splitmix64,
      seed rep + 1): the first thread's start to the last one's end;
  F3  from_url(mem_limit=4 MiB, max_parts=4) .. wait_end().

Each row: the Python median, the C median, their ratio, the spread of one
Python rep over the C median (lowest-highest), the target (<= 1.50).  With
--http-log, the server's requests and bytes of each measurement too.
Without the module, or a module without from_url, it says so and exits 0.
"""
import argparse
import csv
import errno
import math
import os
import statistics
import sys
import threading
import time
import urllib.request

KIB = 1024
MIB = 1024 * 1024
F2_THREADS = 8
F2_READS = 32
F2_SIZE = 64 * KIB
F1_SIZE = 4096
TARGET = 1.5
MASK = (1 << 64) - 1


def splitmix64(state):
    """(value, new state): bench/util.c's splitmix64."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31), state


def f2_offsets(length, seed, idx):
    x = (seed * 64 + idx) & MASK
    offs = []
    for _ in range(F2_READS):
        v, x = splitmix64(x)
        offs.append(v % (length - F2_SIZE))
    return offs


class Server:
    """The object as the server has it (--http-file) and its log."""

    def __init__(self, log, path):
        self.log = log
        self.fd = os.open(path, os.O_RDONLY) if path else -1

    def check(self, data, off):
        if self.fd < 0:
            return
        if data != os.pread(self.fd, len(data), off):
            sys.exit("python: wrong bytes at %d" % off)

    def reset(self):
        if self.log:
            os.truncate(self.log, 0)

    def collect(self, want):
        """(requests, bytes sent) once want requests are logged and the log
        has not grown for 100 ms; at most 5 s."""
        if not self.log:
            return (math.nan, math.nan)
        t0 = changed = time.monotonic()
        size = -1
        while True:
            st = os.stat(self.log).st_size
            tn = time.monotonic()
            if st != size:
                size, changed = st, tn
            with open(self.log, "rb") as f:
                lines = [l for l in f.read().split(b"\n")[:-1] if l]
            sent = sum(int(l.split()[1]) for l in lines)
            if (len(lines) >= want and tn - changed >= 0.1) or tn - t0 > 5:
                return (len(lines), sent)
            time.sleep(0.01)


def far(sb_cls, url, length, opts, srv):
    off = length // 1024 * 900
    srv.reset()
    t0 = time.perf_counter()
    buf = sb_cls.from_url(url, mem_limit=4 * MIB, **opts)
    data = buf.read(off, F1_SIZE)
    t = time.perf_counter() - t0
    parts = buf.stats()["parts_opened"]
    buf.close()
    if len(data) != F1_SIZE:
        sys.exit("python: far read: %d bytes" % len(data))
    srv.check(data, off)
    return t, srv.collect(1 + parts)


def rand(sb_cls, url, length, opts, srv, seed):
    srv.reset()
    buf = sb_cls.from_url(url, mem_limit=4 * MIB, read_ahead=MIB, max_parts=8, **opts)
    barrier = threading.Barrier(F2_THREADS)
    stamps = [None] * F2_THREADS
    errors = []

    def body(idx):
        offs = f2_offsets(length, seed, idx)
        barrier.wait()
        start = time.perf_counter()
        try:
            for off in offs:
                data = buf.read(off, F2_SIZE)
                if len(data) != F2_SIZE:
                    raise OSError("read at %d: %d bytes" % (off, len(data)))
                srv.check(data, off)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        stamps[idx] = (start, time.perf_counter())

    threads = [threading.Thread(target=body, args=(i,)) for i in range(F2_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        sys.exit("python: random reads failed: %r" % errors[0])
    t = max(e for _, e in stamps) - min(s for s, _ in stamps)
    parts = buf.stats()["parts_opened"]
    buf.close()
    return t, srv.collect(1 + parts)


def drain(sb_cls, url, length, opts, srv):
    srv.reset()
    t0 = time.perf_counter()
    buf = sb_cls.from_url(url, mem_limit=4 * MIB, max_parts=4, **opts)
    n = buf.wait_end()
    t = time.perf_counter() - t0
    if n != length:
        sys.exit("python: drain: %d bytes, want %d" % (n, length))
    for k in range(16):
        off = (length - 4096) // 15 * k
        srv.check(buf.read(off, 4096), off)
    parts = buf.stats()["parts_opened"]
    buf.close()
    return t, srv.collect(1 + parts)


def c_medians(path):
    """The C case's time rows with a target (ms): F1, F2, F3 -> (variant,
    ours median)."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["case"] == "http" and row["unit"] == "ms" and row["target"]:
                out.setdefault(row["variant"][:2], (row["variant"], float(row["ours"])))
    return out


def fmt_val(v, unit):
    a = abs(v)
    prec = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return "%.*f %s" % (prec, v, unit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--c-csv", required=True, help="sbbench_http's CSV of this run")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--csv", help="write the rows here, as sbbench's CSV")
    ap.add_argument("--http-log")
    ap.add_argument("--http-file")
    ap.add_argument("--tmp-dir")
    args = ap.parse_args()

    try:
        import streambuffer
        from streambuffer import StreamBuffer
    except ImportError as e:
        print("python: the streambuffer module is missing (%s), skipped" % e)
        return 0
    if not hasattr(StreamBuffer, "from_url"):
        print("python: from_url missing, skipped")
        return 0
    try:
        StreamBuffer.from_url(args.url, mem_limit=MIB, read_ahead=1).close()
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        print("python: from_url not built in (no libcurl), skipped")
        return 0

    c = c_medians(args.c_csv)
    if set(c) != {"F1", "F2", "F3"}:
        sys.exit("python: %s has no F1, F2, F3 time rows" % args.c_csv)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(args.url, method="HEAD")) as r:
        length = int(r.headers["Content-Length"])
    opts = {"tmp_dir": args.tmp_dir} if args.tmp_dir else {}
    srv = Server(args.http_log, args.http_file)
    print("python: streambuffer %s, StreamBuffer.from_url vs sb_open_url (C medians"
          " of %s), %d reps" % (streambuffer.__version__, os.path.basename(args.c_csv),
                                args.reps))
    sys.stdout.flush()

    out = open(args.csv, "w", newline="") if args.csv else None
    if out:
        out.write("case,variant,threads,ours,base,unit,ratio,lo,hi,target,"
                  "faults_per_mib,base_faults_per_mib\n")
    cases = (("F1", lambda k: far(StreamBuffer, args.url, length, opts, srv)),
             ("F2", lambda k: rand(StreamBuffer, args.url, length, opts, srv, k + 1)),
             ("F3", lambda k: drain(StreamBuffer, args.url, length, opts, srv)))
    for tag, fn in cases:
        times, reqs, sent = [], [], []
        for k in range(args.reps):
            t, (n, b) = fn(k)
            times.append(t * 1000)
            reqs.append(n)
            sent.append(b)
        variant, cms = c[tag]
        py = statistics.median(times)
        ratio = py / cms
        lo, hi = min(times) / cms, max(times) / cms
        print("%-10s %-30s %3s %15s %15s %9.3f %11s %7s %9s %13s" % (
            "python", variant, "-", fmt_val(py, "ms"), fmt_val(cms, "ms"), ratio,
            "%.2f-%.2f" % (lo, hi), "<=%.2f" % TARGET, "", "-"))
        if args.http_log:
            print("           %s python: requests %.0f, server %.2f MiB (medians)" % (
                tag, statistics.median(reqs), statistics.median(sent) / MIB))
        sys.stdout.flush()
        if out:
            w = csv.writer(out, lineterminator="\n")
            w.writerow(["python", variant, 0, "%.6g" % py, "%.6g" % cms, "ms",
                        "%.4f" % ratio, "%.4f" % lo, "%.4f" % hi,
                        "<=%.2f" % TARGET, "", ""])
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
