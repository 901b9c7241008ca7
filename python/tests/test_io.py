# SPDX-License-Identifier: MIT
"""open(): a seekable binary file over the stream, for code that wants one."""
import errno
import io
import tarfile
import threading
import time
import zipfile

import pytest

from conftest import chunks, pattern, wait_until

from streambuffer import StreamBuffer

DATA = pattern(300_000, seed=4)


def test_read_seek_tell():
    with StreamBuffer(chunks(DATA, 7000), max_size=50_000) as buf:
        f = buf.open()
        assert isinstance(f, io.BufferedReader)
        assert f.readable() and f.seekable() and not f.writable()
        assert f.read(10) == DATA[:10]
        assert f.tell() == 10
        f.seek(200_000)
        assert f.read(5) == DATA[200_000:200_005]
        f.seek(-5, io.SEEK_CUR)
        assert f.read(5) == DATA[200_000:200_005]
        assert f.seek(-7, io.SEEK_END) == len(DATA) - 7
        assert f.read() == DATA[-7:]
        assert f.read() == b""
        f.seek(0)
        assert f.read() == DATA
        with pytest.raises(OSError):
            f.seek(-1)
        f.close()
        assert buf.read(0, 3) == DATA[:3]  # the file's close leaves the buffer


def test_files_have_their_own_positions():
    with StreamBuffer(DATA) as buf:
        a, b = buf.open(), buf.open(buffering=0)
        assert isinstance(b, io.RawIOBase)
        a.seek(100)
        assert b.read(3) == DATA[:3]
        assert a.read(3) == DATA[100:103]
        a.close()
        b.close()


def test_lines_arrive_as_they_come(gate):
    g = gate([b"first line\n", b"second ", b"line\n", b"tail"])
    with StreamBuffer(g) as buf:
        f = buf.open()
        g.allow()
        assert f.readline() == b"first line\n"  # does not wait for 8 KiB
        got = []
        t = threading.Thread(target=lambda: got.append(f.readline()))
        t.start()
        g.allow()
        wait_until(lambda: buf.stream_index == 18, what="the second chunk")
        assert not got
        g.allow()
        t.join(10)
        assert got == [b"second line\n"]
        g.allow_all()
        assert f.read() == b"tail"


def test_seek_end_waits_for_the_stream(gate):
    g = gate(chunks(DATA, 10_000))
    with StreamBuffer(g, 1000) as buf:  # a wrong hint does not matter
        f = buf.open()
        ends = []
        t = threading.Thread(target=lambda: ends.append(f.seek(0, io.SEEK_END)))
        t.start()
        wait_until(lambda: buf.stats()["waiting"] == 1, what="seek to block")
        assert not ends
        g.allow_all()
        t.join(10)
        assert ends == [len(DATA)]


def test_read_ahead_still_finds_the_end():
    with StreamBuffer(chunks(DATA, 5000), read_ahead=5000) as buf:
        f = buf.open()
        assert f.seek(0, io.SEEK_END) == len(DATA)


def make_zip(members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def slow(data, size=32768, pause=0.0005):
    for c in chunks(data, size):
        time.sleep(pause)
        yield c


def test_zipfile_over_a_streamed_zip():
    members = {f"dir/file{i}.bin": pattern(50_000 + i * 30_000, seed=10 + i) for i in range(8)}
    members["empty"] = b""
    data = make_zip(members)
    with StreamBuffer(slow(data), len(data), max_size=64 << 10) as buf:
        with zipfile.ZipFile(buf.open()) as z:
            assert sorted(z.namelist()) == sorted(members)
            for name, want in members.items():
                assert z.read(name) == want
            assert z.testzip() is None
        assert buf.stats()["spilled"] > 0


def test_zipfile_while_the_stream_still_runs(gate):
    members = {"a.txt": b"hello " * 1000, "b.txt": b"world " * 2000}
    data = make_zip(members)
    g = gate(chunks(data, 1000))
    with StreamBuffer(g) as buf:
        opened = []
        t = threading.Thread(target=lambda: opened.append(zipfile.ZipFile(buf.open())))
        t.start()
        wait_until(lambda: buf.stats()["waiting"] >= 1, what="ZipFile to wait for the end")
        g.allow_all()
        t.join(10)
        with opened[0] as z:
            assert z.read("b.txt") == members["b.txt"]


def test_tarfile_stream_mode():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for i in range(3):
            info = tarfile.TarInfo(f"m{i}")
            body = pattern(20_000 * (i + 1), seed=20 + i)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    data = out.getvalue()
    with StreamBuffer(slow(data, 4096, 0)) as buf:
        with tarfile.open(fileobj=buf.open(), mode="r:") as t:
            for i, m in enumerate(t.getmembers()):
                assert t.extractfile(m).read() == pattern(20_000 * (i + 1), seed=20 + i)


def test_a_releasing_file_reads_forward_in_bounded_space():
    data = pattern(2 << 20, seed=5)
    with StreamBuffer(slow(data, 16384, 0), max_size=64 << 10, release=True,
                      max_retained=256 << 10) as buf:
        with buf.open() as f:
            got = bytearray()
            high = 0
            while True:
                piece = f.read(50_000)
                if not piece:
                    break
                got += piece
                high = max(high, buf.stream_index - buf.floor)
            assert got == data
            assert high <= (256 << 10) + 65536
            assert buf.floor > len(data) - 20_000
            f.seek(0)
            with pytest.raises(OSError) as e:
                f.read(1)
            assert e.value.errno == errno.ESPIPE
        assert buf.stats()["readers"] == 0


def test_file_after_the_buffer_closed():
    buf = StreamBuffer(DATA)
    f = buf.open()
    assert f.read(3) == DATA[:3]
    buf.close()
    with pytest.raises(ValueError):
        f.read(10_000)
    f.close()
