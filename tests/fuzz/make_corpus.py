#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the push target's seed corpus, tests/fuzz/corpus_push/, from the
shapes the cmocka tests use (test_writer.c, test_poll.c, test_release.c,
test_faults.c): each seed is a scenario header and a list of operations in
fuzz_push.c's input layout.

usage: python3 tests/fuzz/make_corpus.py [DIR]   (standard library only)
"""
import hashlib
import os
import struct
import sys

# Operation kinds, in fuzz_push.c's order.
(WRITE, WRITE2, WRITE3, FINISH, CANCEL, PREAD, TIMED0, VIEW, AVAIL, STATS,
 WAIT_END, ROPEN, RREAD, RREAD2, RVIEW, RRELEASE, RCLOSE, POLL, POLL_FD) = range(19)
RELEASE, MMAP, MAXSZ, SEAM, CHUNK64K = 0x01, 0x02, 0x04, 0x08, 0x10
SEAM_CREATE, SEAM_WRITE, SEAM_READ = 0, 1, 2  # added to SB__FAULT_SPILL_CREATE


def header(flags=0, seed=1, mem=4095, chunk=1023, max_=0, sop=0, snth=0, serr=0):
    return struct.pack("<BBHHHBBB", flags, seed, mem, chunk, max_, sop, snth, serr)


def op(kind, a=0, b=0, slot=0, variant=False):
    return struct.pack("<BHH", kind | (0x20 if variant else 0) | (slot << 6), a, b)


def big(n):
    """A write or read size of n bytes (n a multiple of 16, < 64 KiB)."""
    return 0xF000 | (n >> 4)


SEEDS = {
    # the memory part alone, read back every way
    "mem_write_read": header(mem=8191) + op(WRITE, 1000) + op(PREAD, 0, 1000)
    + op(VIEW, 10, 100) + op(AVAIL) + op(STATS) + op(FINISH) + op(PREAD, 0, 4096)
    + op(WAIT_END),
    # a write that straddles memory and file, then reads across the edge
    "straddle": header(mem=1000, chunk=3000) + op(WRITE, big(8000)) + op(PREAD, 990, 20)
    + op(VIEW, 999, 10) + op(TIMED0, 7990, 100) + op(FINISH) + op(PREAD, 7990, 100),
    # spilled with mapped reads
    "spill_mmap": header(MMAP, mem=512, chunk=100) + op(WRITE, big(20000))
    + op(PREAD, 600, 4000) + op(VIEW, 513, 4000) + op(STATS) + op(FINISH),
    # readers follow a stream that is pushed in pieces
    "readers_follow": header(mem=2048, chunk=512) + op(ROPEN, 0, 0, 0) + op(ROPEN, 0, 0, 1)
    + b"".join(op(WRITE, 700) + op(RREAD, i * 700, 700, 0) + op(RREAD2, i * 700, 700, 1)
               for i in range(6)) + op(FINISH) + op(RCLOSE, 0, 0, 0) + op(RCLOSE, 0, 0, 1),
    # release: floors rise, space is given back, ESPIPE below
    "release_floors": header(RELEASE, mem=1024, chunk=256) + op(ROPEN, 0, 0, 0)
    + op(WRITE, big(6000)) + op(RRELEASE, 3000, 0, 0) + op(PREAD, 100, 10)
    + op(RREAD, 3000, 100, 0) + op(RVIEW, 3000, 100, 0) + op(STATS) + op(RCLOSE, 0, 0, 0),
    # non-blocking readers arm, the fd says, the list yields them
    "nonblocking_poll": header(mem=4096) + op(ROPEN, 0, 1, 0) + op(ROPEN, 0, 1, 1)
    + op(RREAD, 100, 10, 0) + op(RREAD, 200, 10, 1) + op(POLL_FD) + op(WRITE, 150)
    + op(POLL_FD) + op(POLL) + op(WRITE, 300) + op(POLL_FD) + op(POLL) + op(POLL_FD),
    # a listed reader closed, and one armed again: the list empties
    "close_listed": header(mem=4096) + op(ROPEN, 0, 1, 0) + op(ROPEN, 0, 1, 1)
    + op(RREAD, 10, 10, 0) + op(RREAD, 10, 10, 1) + op(WRITE, 100) + op(RCLOSE, 0, 0, 0)
    + op(POLL_FD) + op(RREAD, 500, 10, 1) + op(POLL_FD) + op(POLL),
    # cancel and finish with armed readers: all become ready
    "cancel_armed": header(mem=4096) + op(ROPEN, 0, 1, 0) + op(RREAD, 50, 10, 0)
    + op(WRITE, 20) + op(CANCEL) + op(POLL_FD) + op(POLL) + op(RREAD, 50, 10, 0)
    + op(PREAD, 0, 20) + op(WRITE, 5),
    "finish_error": header(mem=4096) + op(ROPEN, 0, 1, 0) + op(RREAD, 50, 10, 0)
    + op(WRITE, 20) + op(FINISH, 0, 3, variant=True) + op(POLL) + op(RREAD, 0, 30, 0)
    + op(WAIT_END) + op(WRITE, 5),
    # max_size: EFBIG past it, the bytes up to it stored
    "max_size": header(MAXSZ, mem=4096, max_=500) + op(WRITE, 800) + op(PREAD, 0, 1001)
    + op(WRITE, 10) + op(STATS),
    # a failing spill: create, the nth write, a read back
    "fault_create": header(SEAM, mem=256, sop=SEAM_CREATE, serr=2) + op(WRITE, 1000)
    + op(PREAD, 0, 256) + op(PREAD, 256, 10) + op(STATS),
    "fault_write": header(SEAM, mem=256, chunk=100, sop=SEAM_WRITE, snth=2, serr=1)
    + op(WRITE, 1000) + op(WRITE, 300) + op(PREAD, 200, 200) + op(WAIT_END),
    "fault_read": header(SEAM, mem=256, sop=SEAM_READ, snth=0, serr=0) + op(WRITE, 1000)
    + op(PREAD, 300, 10) + op(PREAD, 300, 10) + op(FINISH),
    # release with a reader past max_retained-like distance, and the default chunk
    "release_chunk64k": header(RELEASE | CHUNK64K | MMAP, mem=2048) + op(ROPEN, 0, 1, 0)
    + op(WRITE, big(40000)) + op(RRELEASE, 30000, 0, 0) + op(RREAD, 30000, 4096, 0)
    + op(RRELEASE, 39000, 0, 0) + op(FINISH) + op(RREAD, 39000, 4096, 0),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus_push")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        digest = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(out, f"{name}-{digest}"), "wb") as f:
            f.write(data)
    print(f"make_corpus: {len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
