# SPDX-License-Identifier: MIT
"""StreamBuffer(stream, size, open_at=callable): a Python source that can
start over at an offset, read in parts on the library's fetcher threads."""
import errno
import io
import threading

import pytest

from conftest import pattern
from streambuffer import StreamBuffer

N = 4 * 1024 * 1024 + 777


class Source:
    """A seekable source over data: open_at(off, end) gives a file from
    off (or an iterator, as kind says) and records the call; the first
    stream (first()) is gated so that nothing past what a test lets
    through arrives by it."""

    def __init__(self, data, kind="file", chunk=65536):
        self.data = data
        self.kind = kind
        self.chunk = chunk
        self.opens = []
        self.closed = 0
        self.threads = set()
        self.lock = threading.Lock()
        self.opened = threading.Condition(self.lock)
        self.gate = threading.Event()

    def first(self):
        """The constructor's stream: 64 KiB, then waits for the gate."""
        data, gate = self.data, self.gate

        def gen():
            yield data[:65536]
            gate.wait(30)
            for i in range(65536, len(data), 65536):
                yield data[i:i + 65536]
        return gen()

    def open_at(self, off, end):
        with self.lock:
            self.opens.append((off, end))
            self.threads.add(threading.get_ident())
            self.opened.notify_all()
        src = self

        class Part(io.BytesIO):
            def close(self):
                with src.lock:
                    src.closed += 1
                super().close()

        if self.kind == "file":
            f = Part(self.data)
            f.seek(off)
            return f
        if self.kind == "bytes":
            return self.data[off:]
        data, chunk = self.data, self.chunk

        def gen():
            for i in range(off, len(data), chunk):
                yield data[i:i + chunk]
        return gen()


@pytest.mark.parametrize("kind", ["file", "iter", "bytes"])
def test_far_read_opens_a_part_there(kind):
    data = pattern(N)
    s = Source(data, kind)
    with StreamBuffer(s.first(), N, open_at=s.open_at, read_ahead=1 << 20,
                      seek_gap=65536) as b:
        far = N - 5000
        assert b.read(far, 4096) == data[far:far + 4096]
        # The first stream is held at its gate: the part brought them.
        assert b.stats()["filled"] <= 65536 + (1 << 20)
        assert [o for o, _ in s.opens] == [far]
        assert b.stats()["parts_opened"] == 1
        assert b.stats()["length"] == N
        assert threading.get_ident() not in s.threads  # a fetcher thread
        s.gate.set()
        assert b.read(0) == data
        assert b.read(0, N + 10) == data
        assert b.read(N, 10) == b""


def test_stream_none_drains_over_parts():
    data = pattern(N, 2)
    s = Source(data, "iter", chunk=50000)
    with StreamBuffer(None, N, open_at=s.open_at, max_parts=4) as b:
        assert b.wait_end() == N
        assert b.read(0, N) == data
        st = b.stats()
        assert st["state"] == "ended"
        assert st["fetched"] - st["refetched"] == N
        assert st["parts_opened"] >= 1  # the first stream too was a part


def test_parts_closed_once_each():
    data = pattern(N, 3)
    s = Source(data, "file")
    b = StreamBuffer(None, N, open_at=s.open_at, max_parts=3)
    assert b.wait_end() == N
    assert b.read(0) == data
    b.close()
    assert s.closed == len(s.opens)


def test_threads_random_reads():
    data = pattern(N, 4)
    s = Source(data, "file")
    fails = []
    # A fixed seek gap: the first stream is held at its gate, and the
    # measured one (what it delivers while a part opens: megabytes, from
    # memory) would have reads near it wait for it.
    with StreamBuffer(s.first(), N, open_at=s.open_at, read_ahead=256 * 1024,
                      max_parts=4, seek_gap=65536) as b:
        def worker(seed):
            import random
            r = random.Random(seed)
            for _ in range(16):
                # Past the first stream, which its gate holds at 64 KiB
                # (a read within the seek gap of it would wait for it).
                off = r.randrange(1 << 20, N - 65536)
                if b.read(off, 65536) != data[off:off + 65536]:
                    fails.append(off)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        s.gate.set()
        assert not any(t.is_alive() for t in ts)
        assert fails == []
        assert b.read(0) == data


def test_readinto_file_view_and_reader_far():
    data = pattern(N, 5)
    s = Source(data, "file")
    with StreamBuffer(s.first(), N, open_at=s.open_at, read_ahead=1 << 20,
                      seek_gap=65536) as b:
        buf = bytearray(1000)
        assert b.readinto(N - 3000, buf) == 1000
        assert bytes(buf) == data[N - 3000:N - 2000]
        with b.reader() as r:
            assert r.read(N - 100, 200) == data[N - 100:]
        v = b.view(3 * 1024 * 1024, 100)
        assert bytes(v) == data[3 * 1024 * 1024:3 * 1024 * 1024 + 100]
        v.release()
        f = b.open()
        f.seek(N - 10)
        assert f.read() == data[N - 10:]
        f.close()
        s.gate.set()


def test_open_at_errors_reach_readers():
    def broken(off, end):
        raise ConnectionResetError(errno.ECONNRESET, "gone")
    with StreamBuffer(None, 1000, open_at=broken, retries=1) as b:
        with pytest.raises(ConnectionResetError):
            b.read(0, 10)
        assert b.stats()["state"] == "failed"


def test_open_at_espipe_turns_parts_off():
    """ESPIPE from open_at turns parts off: the first stream delivers
    everything, and open_at was called at most once a fetcher (calls
    already under way on other fetchers when the first one raised)."""
    data = pattern(300000, 6)
    calls = []

    def noseek(off, end):
        calls.append(off)
        raise OSError(errno.ESPIPE, "cannot seek")
    first = iter([data[i:i + 1000] for i in range(0, len(data), 1000)])
    with StreamBuffer(first, len(data), open_at=noseek, max_parts=4) as b:
        assert b.read(len(data) - 10, 10) == data[-10:]
        assert b.read(0) == data
        assert b.stats()["state"] == "ended"
    assert 1 <= len(calls) <= 3  # 4 fetchers, one of them the first stream's


def test_open_at_must_return_a_source():
    with StreamBuffer(None, 100, open_at=lambda off, end: None, retries=1) as b:
        with pytest.raises(TypeError):
            b.read(0, 1)


def test_bad_arguments():
    with pytest.raises(TypeError):
        StreamBuffer(None)
    with pytest.raises(TypeError):
        StreamBuffer(b"x", open_at=42)
    with pytest.raises(ValueError):
        StreamBuffer(b"x", max_parts=65)
    with pytest.raises(ValueError):
        StreamBuffer(b"x", seek_gap=-1)
    b = StreamBuffer(b"abc", max_parts=2, seek_gap=4096, retries=5)
    assert (b.max_parts, b.seek_gap, b.retries) == (2, 4096, 5)
    b.close()


def test_close_while_open_at_blocks():
    """close() returns while open_at is inside Python, stuck: the join is
    left to the reaper, which runs once open_at returns."""
    entered = threading.Event()
    release = threading.Event()

    def stuck(off, end):
        entered.set()
        release.wait(30)
        raise OSError(errno.EIO, "late")
    b = StreamBuffer(None, 1000, open_at=stuck)
    got = []

    def read():
        try:
            got.append(b.read(0, 10))
        except (OSError, ValueError) as e:
            got.append(e)
    t = threading.Thread(target=read)
    t.start()
    assert entered.wait(30)
    b.close()  # returns with open_at stuck inside Python
    t.join(30)
    assert not t.is_alive()
    assert len(got) == 1 and isinstance(got[0], (OSError, ValueError))
    release.set()


def test_aread_far_opens_one_part():
    """aread on a buffer with parts arms for the whole range: one part
    opens at its first byte (not one at its last byte as well)."""
    import asyncio
    data = pattern(N, 9)
    s = Source(data, "file")
    with StreamBuffer(s.first(), N, open_at=s.open_at, read_ahead=1 << 20,
                      seek_gap=65536) as b:
        async def main():
            far = N - 5000
            got = await asyncio.wait_for(b.aread(far, 4096), 30)
            assert got == data[far:far + 4096]
            assert await asyncio.wait_for(b.aread(N + 10, 5), 30) == b""
            assert await asyncio.wait_for(b.aread(N - 10), 30) == data[-10:]
        asyncio.run(main())
        assert [o for o, _ in s.opens] == [N - 5000]
        s.gate.set()
