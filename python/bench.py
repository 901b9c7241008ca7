# SPDX-License-Identifier: MIT
"""make bench-python: StreamBuffer from Python against the Python-level limit.

rand   Random reads/s of 4 KiB (and of 256 KiB) from 1, 2 and 4 Python
       threads: StreamBuffer.read on a stream held in memory and on one
       spilled to a file (the default max_size, 5 MiB), against io.BytesIO
       seek+read of the same bytes (one BytesIO per thread, since seek+read
       is two calls).  BytesIO is the limit of what Python code can get: no
       lock but the GIL, one copy.  Small copies keep the GIL (see
       COPY_WITH_GIL in src/common.h), so at 4 KiB threads add nothing,
       as with BytesIO; 256 KiB reads let it go and run in parallel.
follow 4 threads each reading a live 256 MiB stream front to back (1 MiB
       reads) while an iterator produces it in 64 KiB chunks, against the
       same reads from BytesIO objects over bytes already in memory.

Every figure is the median of --reps runs, interleaved (each rep measures
every case once, in turn), with the range min-max; ratios are the median
of the per-rep ratios.  A shared machine moves single runs by 10-30 %.

usage: PYTHONPATH=python python3 python/bench.py [--reps 5] [--seconds 0.4]
       [--mib 64] [--follow-mib 256] [--threads 1,2,4] [--read 4096,262144]
"""
import argparse
import io
import os
import random
import statistics
import sys
import threading
import time

import streambuffer
from streambuffer import StreamBuffer

def rand_rate(nthreads, make_reader, size, nbytes, seconds, seed):
    """Total reads/s of nthreads threads, each calling its reader(off)."""
    counts = [0] * nthreads
    start = threading.Barrier(nthreads + 1)
    stop = [False]

    def body(i):
        rnd = random.Random(seed * 100 + i)
        offs = [rnd.randrange(size - nbytes) for _ in range(4096)]
        read = make_reader(nbytes)
        n = 0
        start.wait()
        while not stop[0]:
            for off in offs[:512]:
                read(off)
            n += 512
            offs = offs[512:] + offs[:512]
        counts[i] = n

    threads = [threading.Thread(target=body, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def bytesio_reader(data):
    def make(nbytes):
        f = io.BytesIO(data)
        seek, read = f.seek, f.read

        def r(off):
            seek(off)
            return read(nbytes)
        return r
    return make


def buffer_reader(buf):
    def make(nbytes):
        read = buf.read

        def r(off):
            return read(off, nbytes)
        return r
    return make


def chunks_of(data, n):
    view = memoryview(data)
    for i in range(0, len(data), n):
        yield view[i:i + n]


def follow_run(block, total, nthreads, chunk):
    """Wall time for nthreads to read a live stream of total bytes."""
    def source():
        view = memoryview(block)
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            yield view[:n]
            sent += n

    t0 = time.perf_counter()
    buf = StreamBuffer(source(), total)
    got = [0] * nthreads

    def follower(i):
        off = 0
        while True:
            piece = buf.read(off, 1 << 20)
            if not piece:
                break
            off += len(piece)
        got[i] = off

    threads = [threading.Thread(target=follower, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    spilled = buf.stats()["spilled"]
    buf.close()
    assert got == [total] * nthreads, got
    return wall, spilled


def bytesio_follow_run(whole, nthreads):
    """The same reads of bytes already in memory: each thread its own
    BytesIO, 1 MiB reads front to back."""
    def follower():
        f = io.BytesIO(whole)
        while f.read(1 << 20):
            pass

    threads = [threading.Thread(target=follower) for _ in range(nthreads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def med(xs):
    return statistics.median(xs)


def fmt_rate(x):
    return f"{x / 1e3:8.0f}k/s"


def rand_section(args, counts, cases, size, nbytes):
    rates = {(name, n): [] for name, _ in cases for n in counts}
    for rep in range(args.reps):
        for n in counts:
            for name, make in cases:
                rates[(name, n)].append(
                    rand_rate(n, make, size, nbytes, args.seconds, rep))
    print(f"\nrandom {nbytes >> 10} KiB reads")
    print(f"{'case':8} {'thr':>3} {'reads/s (median)':>17} {'range':>21}"
          f" {'vs BytesIO, 1 thr':>18} {'vs itself, 1 thr':>17}")
    for name, _ in cases:
        for n in counts:
            xs = rates[(name, n)]
            base = [a / b for a, b in zip(xs, rates[("BytesIO", counts[0])])]
            own = [a / b for a, b in zip(xs, rates[(name, counts[0])])]
            print(f"{name:8} {n:3d} {fmt_rate(med(xs)):>17} "
                  f"{fmt_rate(min(xs)).strip():>10}-{fmt_rate(max(xs)).strip():<10}"
                  f" {med(base):8.2f} ({min(base):.2f}-{max(base):.2f})"
                  f" {med(own):6.2f} ({min(own):.2f}-{max(own):.2f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--follow-mib", type=int, default=256)
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--read", default="4096,262144",
                    help="bytes per random read, a list (4096,262144)")
    ap.add_argument("--skip-follow", action="store_true")
    args = ap.parse_args()
    counts = [int(x) for x in args.threads.split(",")]
    size = args.mib << 20

    data = random.Random(1).randbytes(size)
    mem = StreamBuffer(chunks_of(data, 1 << 16), size, max_size=size)
    spill = StreamBuffer(chunks_of(data, 1 << 16), size)
    assert mem.wait_end() == size and spill.wait_end() == size
    assert mem.read(12345, 100) == data[12345:12445] == spill.read(12345, 100)
    print(f"python {sys.version.split()[0]}, streambuffer {streambuffer.library_version}, "
          f"{os.cpu_count()} cpus; a {args.mib} MiB stream held in memory and one "
          f"spilled ({spill.stats()['spilled'] >> 20} MiB in the file); "
          f"{args.reps} interleaved reps of {args.seconds} s")
    cases = [("BytesIO", bytesio_reader(data)), ("memory", buffer_reader(mem)),
             ("spilled", buffer_reader(spill))]
    for nbytes in [int(x) for x in args.read.split(",")]:
        rand_section(args, counts, cases, size, nbytes)
    mem.close()
    spill.close()
    del data

    if args.skip_follow:
        return
    total = args.follow_mib << 20
    block = random.Random(2).randbytes(1 << 20)
    whole = block * args.follow_mib
    walls, bases = [], []
    spilled = 0
    for rep in range(args.reps):
        bases.append(bytesio_follow_run(whole, 4))
        w, spilled = follow_run(block, total, 4, 1 << 16)
        walls.append(w)
    del whole
    gib = total / (1 << 30)
    print(f"\nfollow: 4 threads read a live {args.follow_mib} MiB stream "
          f"(64 KiB chunks, {spilled >> 20} MiB spilled)")
    print(f"  wall time   {med(walls):6.3f} s  ({min(walls):.3f}-{max(walls):.3f})"
          f"   {4 * gib / med(walls):5.2f} GiB/s delivered to the 4 threads")
    print(f"  BytesIO     {med(bases):6.3f} s  ({min(bases):.3f}-{max(bases):.3f})"
          f"   the same reads of bytes already in memory, a BytesIO each")
    ratio = [b / w for b, w in zip(bases, walls)]
    print(f"  BytesIO time / ours: {med(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})")


if __name__ == "__main__":
    main()
