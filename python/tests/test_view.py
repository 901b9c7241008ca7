# SPDX-License-Identifier: MIT
"""view(): memoryviews of the stream's bytes in place, and the rules that
keep them valid; mmap_reads, the mapped copy of spilled bytes."""
import errno
import gc
import threading

import pytest

from conftest import Gate, chunks, pattern, wait_until
from streambuffer import StreamBuffer

MIB = 1 << 20
DATA = pattern(3 * MIB + 12345)


def whole(obj, start=0):
    """The bytes from start to the end, gathered view by view."""
    out, off = bytearray(), start
    while True:
        with obj.view(off) as m:
            if len(m) == 0:
                return bytes(out)
            out += m
            off += len(m)


@pytest.mark.parametrize("max_size", [64 << 10, MIB, 16 * MIB])
def test_views_are_the_bytes_whatever_the_memory_part(max_size):
    with StreamBuffer(iter(chunks(DATA, 70000)), max_size=max_size) as b:
        assert whole(b) == DATA
        assert whole(b, 123457) == DATA[123457:]
        with b.view(5, 1000) as m:
            assert m.readonly and m.format == "B" and m.nbytes == len(m)
            assert m == DATA[5:1005]
            with pytest.raises(TypeError):
                m[0] = 1


def test_a_view_stops_where_memory_meets_the_file():
    with StreamBuffer(iter(chunks(DATA, 65536)), max_size=MIB) as b:
        with b.view(MIB - 10, 100) as m:
            assert len(m) == 10 and m == DATA[MIB - 10:MIB]
        with b.view(MIB, 100) as m:
            assert m == DATA[MIB:MIB + 100]


def test_views_of_bytes_sources_and_at_the_end():
    with StreamBuffer(DATA) as b:
        with b.view(0) as m:
            assert m == DATA
        assert len(b.view(len(DATA))) == 0
        assert len(b.view(len(DATA) + 10, 5)) == 0
        assert len(b.view(len(DATA) - 3, 10)) == 3
        assert len(b.view(7, 0)) == 0


def test_a_view_waits_for_its_bytes():
    g = Gate(chunks(DATA[:200000], 50000))
    b = StreamBuffer(g)
    try:
        g.allow()
        got, failures = [], []

        def body():
            try:
                with b.view(100000, 50000) as m:
                    got.append(bytes(m))
            except BaseException as e:  # counted, asserted after the join
                failures.append(e)

        t = threading.Thread(target=body)
        t.start()
        wait_until(lambda: b.stats()["waiting"] >= 1, what="the view to wait")
        assert not got
        g.allow_all()
        t.join(10)
        assert not t.is_alive() and not failures
        assert got == [DATA[100000:150000]]
    finally:
        g.close()
        b.close()


def test_views_after_cancel():
    g = Gate([DATA[:1000], DATA[1000:2000]])
    b = StreamBuffer(g)
    try:
        g.allow()
        wait_until(lambda: b.stream_index == 1000, what="the first chunk")
        b.cancel()
        with b.view(10, 100) as m:
            assert m == DATA[10:110]
        with pytest.raises(OSError) as e:
            b.view(1500, 10)
        assert e.value.errno == errno.ECANCELED
    finally:
        g.close()
        b.close()


def test_close_waits_for_the_views():
    b = StreamBuffer(DATA, max_size=MIB)
    m = b.view(100, 10)
    with pytest.raises(BufferError):
        b.close()
    with pytest.raises(BufferError):
        b.__exit__(None, None, None)
    assert not b.closed and b.read(100, 10) == m  # nothing was closed
    m2 = m[2:5]  # a slice is the same export
    m.release()
    with pytest.raises(BufferError):
        b.close()
    del m2
    b.close()
    assert b.closed
    with pytest.raises(ValueError):
        b.view(0, 1)


def test_a_view_keeps_its_buffer_alive():
    m = StreamBuffer(iter(chunks(DATA, 100000)), max_size=MIB).view(2 * MIB, 1000)
    gc.collect()
    assert m == DATA[2 * MIB:2 * MIB + 1000]
    m.release()


def test_release_buffers_lend_views_through_readers():
    b = StreamBuffer(iter(chunks(DATA, 65536)), max_size=MIB, release=True)
    try:
        with pytest.raises(ValueError):
            b.view(0, 10)
        r = b.reader(0)
        m = r.view(2 * MIB, 1000)
        assert m == DATA[2 * MIB:2 * MIB + 1000]
        r.release(2 * MIB)  # up to the view's first byte: allowed
        with pytest.raises(BufferError):
            r.release(2 * MIB + 1)
        assert r.floor == 2 * MIB and b.floor == 2 * MIB
        with pytest.raises(BufferError):
            r.close()
        with pytest.raises(BufferError):
            b.close()
        assert not r.closed and m == DATA[2 * MIB:2 * MIB + 1000]
        m.release()
        r.release(3 * MIB)
        assert b.floor == 3 * MIB
        assert whole(r, 3 * MIB) == DATA[3 * MIB:]
        r.close()
    finally:
        b.close()


def test_a_reader_release_ignores_views_without_release():
    with StreamBuffer(DATA, max_size=MIB) as b:
        r = b.reader(0)
        with r.view(10, 10) as m:
            r.release(MIB)  # nothing is given back: the view stays valid
            assert m == DATA[10:20]
        r.close()


def test_view_arguments():
    with StreamBuffer(DATA) as b:
        with pytest.raises(ValueError):
            b.view(-1, 1)
        with pytest.raises(TypeError):
            b.view()
        with pytest.raises(TypeError):
            b.view(0, 1, 2)
        with b.view(offset=3, size=2) as m:
            assert m == DATA[3:5]


@pytest.mark.parametrize("mmap_reads", [True, False])
def test_mmap_reads_read_the_same_bytes(mmap_reads):
    with StreamBuffer(iter(chunks(DATA, 70000)), max_size=MIB,
                      mmap_reads=mmap_reads) as b:
        assert b.mmap_reads is mmap_reads
        assert b.wait_end() == len(DATA)
        assert b.read(0) == DATA
        for off in (0, MIB - 5, MIB, 2 * MIB + 17, len(DATA) - 4096):
            assert b.read(off, 4096) == DATA[off:off + 4096]
            target = bytearray(5000)
            n = b.readinto(off, target)
            assert target[:n] == DATA[off:off + 5000]


@pytest.mark.parametrize("mmap_reads", [True, False])
def test_small_reads_through_readers_of_release_buffers(mmap_reads):
    with StreamBuffer(iter(chunks(DATA, 70000)), max_size=MIB, release=True,
                      mmap_reads=mmap_reads) as b:
        r = b.reader(0)
        for off in (100, MIB - 5, 2 * MIB + 17, len(DATA) - 4096):
            assert r.read(off, 4096) == DATA[off:off + 4096]
            assert b.read(off, 4096) == DATA[off:off + 4096]  # plain: pread
            r.release(off)
        with pytest.raises(OSError) as e:
            b.read(100, 10)
        assert e.value.errno == errno.ESPIPE
        r.close()
