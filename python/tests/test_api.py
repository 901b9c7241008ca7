# SPDX-License-Identifier: MIT
"""The API beyond the seed's cases: keys, sources, options, errors, close."""
import array
import errno
import io
import math
import os

import pytest

from conftest import chunks, pattern, wait_until

import streambuffer
from streambuffer import StreamBuffer

DATA = pattern(100_000, seed=2)


@pytest.fixture
def buf():
    with StreamBuffer(chunks(DATA, 4096), len(DATA), max_size=32768) as b:
        yield b


# --- Keys, as the seed takes them, and as bytes does ------------------------

def test_slices_and_pairs(buf):
    assert buf[10:20] == DATA[10:20]
    assert buf[[10, 20]] == DATA[10:20]
    assert buf[(10, 20)] == DATA[10:20]
    assert buf[20:10] == b""
    assert buf[99_990:200_000] == DATA[99_990:]


@pytest.mark.parametrize("key", [
    slice(None, 10), slice(90_000, None), slice(-10, None), slice(-20, -10),
    slice(None, None, 7), slice(5, 50_000, 3), slice(None, None, -1),
    slice(50_000, 10, -9), slice(-1, -30_000, -2), slice(None, None),
])
def test_any_slice_as_on_bytes(buf, key):
    assert buf[key] == DATA[key]


def test_pair_with_negative_index(buf):
    assert buf[[-10, None]] == DATA[-10:]


@pytest.mark.parametrize("key", [5, "a", (1, 2, 3), [1]])
def test_other_keys_are_refused_as_by_the_seed(buf, key):
    with pytest.raises(NotImplementedError):
        buf[key]


# --- read and readinto -----------------------------------------------------

def test_read_keywords_and_to_the_end(buf):
    assert buf.read(offset=5, size=3) == DATA[5:8]
    assert buf.read(99_000) == DATA[99_000:]
    assert buf.read(99_000, -1) == DATA[99_000:]
    assert buf.read(0, 0) == b""
    with pytest.raises(TypeError):
        buf.read()
    with pytest.raises(TypeError):
        buf.read(0, 1, 2)
    with pytest.raises(TypeError):
        buf.read(0, length=1)
    with pytest.raises(TypeError):
        buf.read(0.5, 1)
    with pytest.raises(ValueError):
        buf.read(-1, 1)


def test_readinto(buf):
    target = bytearray(1000)
    assert buf.readinto(50_000, target) == 1000
    assert target == DATA[50_000:51_000]
    assert buf.readinto(99_500, target) == 500
    assert target[:500] == DATA[99_500:]
    assert buf.readinto(100_000, target) == 0
    view = memoryview(target)[100:200]
    assert buf.readinto(offset=7, buffer=view) == 100
    assert target[100:200] == DATA[7:107]
    ints = array.array("i", [0] * 10)
    assert buf.readinto(0, ints) == 40
    assert ints.tobytes() == DATA[:40]
    with pytest.raises(TypeError):
        buf.readinto(0, b"read-only")


def test_readinto1_returns_what_has_arrived(gate):
    g = gate([b"abc", b"def"])
    with StreamBuffer(g) as b:
        g.allow()
        target = bytearray(10)
        assert b.readinto1(0, target) == 3
        assert target[:3] == b"abc"
        g.allow_all()
        assert b.readinto1(1, target) in (2, 5)
        assert b.wait_end() == 6
        assert b.readinto1(6, target) == 0


# --- Sources ---------------------------------------------------------------

class ReadOnly:
    """A file with read() alone, which returns less than asked."""

    def __init__(self, data):
        self.f = io.BytesIO(data)

    def read(self, n):
        return self.f.read(min(n, 1000))


class NonBlocking:
    """A file that sometimes has nothing yet (None), like a non-blocking one."""

    def __init__(self, data):
        self.f = io.BytesIO(data)
        self.calls = 0

    def readinto(self, b):
        self.calls += 1
        if self.calls % 2:
            return None
        return self.f.readinto(memoryview(b)[:3000])


def generator(data):
    for i in range(0, len(data), 999):
        yield memoryview(data)[i:i + 999]


@pytest.mark.parametrize("make", [
    lambda d: d,
    lambda d: bytearray(d),
    lambda d: memoryview(d),
    lambda d: iter(chunks(d, 5000)),
    lambda d: tuple(chunks(d, 5000)),
    generator,
    lambda d: (array.array("B", c) for c in chunks(d, 7000)),
    lambda d: io.BytesIO(d),
    lambda d: io.BufferedReader(io.BytesIO(d), 512),
    ReadOnly,
    NonBlocking,
], ids=["bytes", "bytearray", "memoryview", "iterator", "tuple", "generator",
        "array-chunks", "BytesIO", "BufferedReader", "read-only", "non-blocking"])
def test_every_kind_of_source(make):
    with StreamBuffer(make(DATA), max_size=20_000, chunk_size=4096) as b:
        assert b.read(60_000, 5000) == DATA[60_000:65_000]
        assert b.wait_end() == len(DATA)
        assert b[:] == DATA


def test_a_mutable_source_is_copied():
    data = bytearray(b"abcdef")
    with StreamBuffer(data) as b:
        data[0:3] = b"xyz"
        assert b.read(0, 6) == b"abcdef"


def test_pipe_file_object():
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf, StreamBuffer(rf, max_size=4096) as b:
        os.write(w, DATA[:3000])
        assert b.read(0, 3000) == DATA[:3000]  # arrives before the pipe ends
        os.write(w, DATA[3000:10_000])
        os.close(w)
        assert b.wait_end() == 10_000
        assert b[:] == DATA[:10_000]


def test_stdin_buffer():
    """sys.stdin.buffer as the source, in a child fed through a pipe."""
    import subprocess
    import sys
    from conftest import subprocess_env
    script = ("import sys; from streambuffer import StreamBuffer\n"
              "b = StreamBuffer(sys.stdin.buffer)\n"
              "sys.stdout.write(repr((b.read(1, 3), b.wait_end(), b[-2:])))\n")
    p = subprocess.run([sys.executable, "-c", script], input=b"abcdefgh" * 10000,
                       capture_output=True, env=subprocess_env(), timeout=60)
    assert p.stdout == b"(b'bcd', 80000, b'gh')", p.stderr.decode()


def test_bad_sources():
    with pytest.raises(TypeError):
        StreamBuffer("text")
    with pytest.raises(TypeError):
        StreamBuffer(42)
    with pytest.raises(TypeError):
        StreamBuffer(io.StringIO("text"))


@pytest.mark.parametrize("items", [["str chunk"], [b"ok", 5], [b"ok", None]])
def test_a_chunk_that_is_not_bytes_fails_the_stream(items):
    with StreamBuffer(iter(items)) as b:
        with pytest.raises(TypeError) as e:
            b.wait_end()
        assert e.value is b.exception


@pytest.mark.parametrize("result", [10**9, -5, "x"])
def test_a_file_that_breaks_the_contract_fails_the_stream(result):
    class Bad:
        def readinto(self, b):
            return result

    with StreamBuffer(Bad()) as b:
        with pytest.raises((ValueError, TypeError)):
            b.read(0, 1)


# --- Options ---------------------------------------------------------------

def test_attributes():
    b = StreamBuffer([b"abc"], 3, 1000, limit=10, chunk_size=100, read_ahead=5)
    assert (b.size, b.max_size, b.limit, b.chunk_size, b.read_ahead) == (3, 1000, 10, 100, 5)
    assert b.max_retained == 0 and b.release is False and b.mmap_reads is True
    assert b.stream == [b"abc"]
    assert "StreamBuffer" in repr(b)
    b.close()
    assert "closed" in repr(b)
    assert StreamBuffer(b"").max_size == streambuffer.DEFAULT_MAX_SIZE == 5 << 20


@pytest.mark.parametrize("kw", [
    dict(max_size=0), dict(max_size=-1), dict(size=-1), dict(limit=-1),
    dict(chunk_size=-1), dict(read_ahead=-1), dict(max_retained=100),
    dict(size=100, limit=10), dict(tmp_dir=""),
])
def test_bad_options(kw):
    with pytest.raises(ValueError):
        StreamBuffer([b"x"], **kw)


def test_mem_limit_is_max_size():
    """mem_limit, the library's name, is the seed's max_size: either sets
    the bytes kept in memory, and both must agree."""
    with StreamBuffer(chunks(DATA, 4096), mem_limit=8192) as b:
        assert b.max_size == b.mem_limit == 8192
        assert b[:] == DATA
        assert b.stats()["spilled"] == len(DATA) - 8192
    with StreamBuffer([b"x"], None, 8192, mem_limit=8192) as b:
        assert b.max_size == b.mem_limit == 8192
    with StreamBuffer([b"x"], max_size=4096, mem_limit=None) as b:
        assert b.mem_limit == 4096
    with pytest.raises(TypeError, match="one option"):
        StreamBuffer([b"x"], max_size=4096, mem_limit=8192)
    with pytest.raises(ValueError, match="mem_limit"):
        StreamBuffer([b"x"], mem_limit=0)


def test_size_is_only_a_hint():
    with StreamBuffer([b"abc"], 1000) as b:
        assert b.wait_end() == 3
        assert b[:] == b"abc"
    with StreamBuffer([b"abcdef"], 2) as b:
        assert b.wait_end() == 6


def test_tmp_dir(tmp_path):
    with StreamBuffer(chunks(DATA, 4096), max_size=4096, tmp_dir=tmp_path) as b:
        assert b[:] == DATA
        assert b.stats()["spilled"] == len(DATA) - 4096
    with StreamBuffer(chunks(DATA, 4096), max_size=4096, tmp_dir=tmp_path / "no") as b:
        assert b.read(0, 4096) == DATA[:4096]  # what memory holds stays
        with pytest.raises(OSError) as e:
            b.read(0, 4097)
        assert e.value.errno == errno.ENOENT


def test_limit_is_a_hard_cap():
    with StreamBuffer(chunks(DATA, 4096), limit=10_000) as b:
        assert b.read(0, 10_000) == DATA[:10_000]
        with pytest.raises(OSError) as e:
            b.read(9_999, 2)
        assert e.value.errno == errno.EFBIG
        with pytest.raises(OSError):
            b.wait_end()


def test_read_ahead_pulls_only_what_is_asked_for():
    pulled = []

    def source():
        for c in chunks(DATA, 1000):
            pulled.append(len(c))
            yield c

    with StreamBuffer(source(), read_ahead=1000) as b:
        assert b.read(0, 10) == DATA[:10]
        wait_until(lambda: b.stats()["paused"], what="the producer to pause")
        assert b.stream_index <= 3000
        assert b.read(50_000, 10) == DATA[50_000:50_010]
        wait_until(lambda: b.stats()["paused"], what="the producer to pause")
        assert b.stream_index <= 53_000
        # The end, a slice to the end and the file's SEEK_END demand it all.
        assert b[-5:] == DATA[-5:]
        assert b.wait_end() == len(DATA)


def test_release_and_max_retained():
    with StreamBuffer(chunks(DATA, 1000), max_size=8192, release=True,
                      max_retained=20_000, chunk_size=1000) as b:
        with b.reader() as r:
            assert r.floor == 0
            got = bytearray()
            while len(got) < len(DATA):
                piece = r.read(len(got), 5000)
                got += piece
                r.release(len(got))
                assert b.stream_index - b.floor <= 20_000 + 1000
            assert got == DATA
            assert r.floor == len(DATA)
            with pytest.raises(OSError) as e:
                r.read(0, 1)
            assert e.value.errno == errno.ESPIPE
            with pytest.raises(ValueError):
                r.release(5)
        assert b.floor == len(DATA)
        with pytest.raises(OSError) as e:
            b.read(10, 1)  # below the floor, with no reader at all
        assert e.value.errno == errno.ESPIPE
        assert b.stats()["released"] > 0


def test_a_reader_past_max_retained_fails_at_once():
    with StreamBuffer(chunks(DATA, 1000), release=True, max_retained=10_000) as b:
        r = b.reader(0)
        with pytest.raises(OSError) as e:
            r.read(0, 20_000)
        assert e.value.errno == errno.ENOBUFS
        assert r.read(0, 5000) == DATA[:5000]
        r.close()
        assert r.closed
        with pytest.raises(ValueError):
            r.read(0, 1)


def test_reader_below_the_floor():
    with StreamBuffer(DATA, release=True) as b:
        r = b.reader(100)
        assert b.floor == 100
        with pytest.raises(OSError) as e:
            b.reader(50)
        assert e.value.errno == errno.ESPIPE
        r.close()


# --- Ending, cancelling, closing -------------------------------------------

def test_is_exhausted_consumes_nothing(gate):
    g = gate([b"abc", b"def"])
    with StreamBuffer(g) as b:
        for _ in range(3):
            assert not b.is_exhausted()
        assert g.pulled == 0
        g.allow()
        assert b.read(0, 3) == b"abc"
        assert not b.is_exhausted()
        assert g.pulled == 1
        g.allow_all()
        assert b.wait_end() == 6
        assert b.is_exhausted()


def test_cancel(gate):
    g = gate([b"abc", b"def"])
    with StreamBuffer(g) as b:
        g.allow()
        assert b.read(0, 3) == b"abc"
        b.cancel()
        b.cancel()
        assert b.read(0, 3) == b"abc"  # what arrived stays
        with pytest.raises(OSError) as e:
            b.read(0, 4)
        assert e.value.errno == errno.ECANCELED
        with pytest.raises(OSError) as e:
            b.wait_end()
        assert e.value.errno == errno.ECANCELED
        assert b.is_exhausted()
        assert b.stats()["state"] == "failed"


def test_every_call_after_close_raises_value_error():
    b = StreamBuffer([b"abc"])
    assert b.read(0, 3) == b"abc"
    b.close()
    b.close()
    assert b.closed
    for call in [lambda: b.read(0, 1), lambda: b.readinto(0, bytearray(1)),
                 lambda: b.readinto1(0, bytearray(1)), lambda: b.view(0, 1),
                 b.wait_end,
                 b.is_exhausted, b.cancel, b.open, b.reader, b.stats,
                 lambda: b[0:1], lambda: b.stream_index, lambda: b.floor,
                 lambda: b.exception, b.__enter__]:
        with pytest.raises(ValueError):
            call()


def test_context_manager():
    with StreamBuffer([b"abc"]) as b:
        assert b.read(0, 3) == b"abc"
    assert b.closed


def test_close_closes_its_readers():
    b = StreamBuffer(DATA, release=True)
    r = b.reader()
    b.close()
    assert r.closed
    with pytest.raises(ValueError):
        r.read(0, 1)
    r.close()


def test_init_twice_is_refused():
    b = StreamBuffer([b"abc"])
    with pytest.raises(RuntimeError):
        b.__init__([b"def"])
    assert b.read(0, 3) == b"abc"
    b.close()


def test_subclass():
    class Mine(StreamBuffer):
        def first(self):
            return self[0:1]

    m = Mine([b"abc"])
    m.extra = 1
    assert m.first() == b"a"
    m.close()


def test_stats_and_version():
    with StreamBuffer(DATA) as b:
        st = b.stats()
        assert st["state"] == "ended" and st["filled"] == len(DATA)
        assert set(st) == {
            "filled", "in_memory", "spilled", "publishes", "waiting", "wakeups",
            "state", "error", "floor", "demand", "released", "pauses",
            "paused_ns", "readers", "huge_pages", "paused", "parts_opened",
            "parts_active", "fetched", "refetched", "extents", "length",
            "seek_gap", "parts_moved", "part_retries",
        }
        assert st["length"] == st["fetched"] == len(DATA) and st["extents"] == 1
    assert streambuffer.__version__ == streambuffer.library_version


def test_stats_has_no_sentinels(gate):
    """Every field is a plain count, a state, a bool, or None where the
    library's number would mean "none" (error 0, demand 0, length 0 before
    the end) and math.inf where it would mean "everything" (demand
    2**64 - 1)."""
    g = gate([b"abc", b"def"])
    with StreamBuffer(g, read_ahead=1) as b:
        st = b.stats()
        assert st["state"] == "running"
        assert st["error"] is None and st["demand"] is None
        assert st["length"] is None
        assert isinstance(st["paused"], bool)
        for k, v in st.items():
            if k not in ("state", "error", "demand", "paused", "length"):
                assert type(v) is int and 0 <= v < 1 << 63, (k, v)
        g.allow_all()
        assert b.wait_end() == 6
        st = b.stats()
        assert st["demand"] == math.inf and st["error"] is None
        assert st["state"] == "ended" and st["length"] == 6
        for k, v in st.items():
            if k not in ("state", "error", "demand", "paused"):
                assert type(v) is int and 0 <= v < 1 << 63, (k, v)
    with StreamBuffer(gate([b"abc"])) as b:
        b.cancel()
        wait_until(lambda: b.stats()["state"] == "failed", what="the cancel")
        assert b.stats()["error"] == errno.ECANCELED
