# SPDX-License-Identifier: MIT
"""Lifetimes: no reference leaks, the garbage collector stops producers,
interpreter shutdown with live buffers, and the pip install."""
import gc
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

from conftest import PYDIR, chunks, pattern, subprocess_env, wait_until

from streambuffer import StreamBuffer

DATA = pattern(200_000, seed=6)


def tasks():
    return len(os.listdir("/proc/self/task"))


def cycle(kind):
    """One open / read / close, of every kind that has its own path."""
    if kind == "iterator":
        src = chunks(DATA, 10_000)
        with StreamBuffer(src, max_size=50_000) as b:
            assert b.read(150_000, 100) == DATA[150_000:150_100]
            assert b[:10] == DATA[:10]
    elif kind == "file":
        import io
        with StreamBuffer(io.BytesIO(DATA), max_size=50_000) as b:
            assert b.read(150_000, 20_000) == DATA[150_000:170_000]
    elif kind == "bytes":
        with StreamBuffer(DATA) as b:
            assert b.read(0, 100) == DATA[:100]
    elif kind == "failing":
        def src():
            yield DATA[:1000]
            raise ValueError("boom")
        b = StreamBuffer(src())
        with pytest.raises(ValueError):
            b.read(0, 2000)
        b.close()
    elif kind == "reader+file":
        with StreamBuffer(chunks(DATA, 10_000), release=True) as b:
            with b.reader() as r:
                r.read(0, 100)
                r.release(100)
            with b.open() as f:
                f.read(1000)
    elif kind == "unclosed":
        b = StreamBuffer(iter(chunks(DATA, 10_000)))
        b.read(0, 10)
        del b


@pytest.mark.parametrize("kind", ["iterator", "file", "bytes", "failing",
                                  "reader+file", "unclosed"])
def test_no_reference_leaks(kind):
    probe = chunks(DATA, 10_000)[0]
    for _ in range(20):  # warm up caches, interned objects, the io module
        cycle(kind)
    gc.collect()
    base_refs = sys.getrefcount(probe)
    base_tasks = tasks()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(200):
            cycle(kind)
        gc.collect()
        wait_until(lambda: tasks() <= base_tasks, what="the producers to end")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 64 << 10, f"{growth} bytes more after 200 cycles"
    assert sys.getrefcount(probe) == base_refs


def test_chunk_objects_are_freed():
    """Every chunk is let go once it has been copied: their refcounts come
    back, with or without a close."""
    items = [bytes([i]) * 5000 for i in range(50)]
    refs = [sys.getrefcount(x) for x in items]
    b = StreamBuffer(list(items))
    assert b.wait_end() == 250_000
    b.close()
    assert [sys.getrefcount(x) for x in items] == refs


def test_a_garbage_collected_buffer_stops_its_producer():
    stopped = threading.Event()

    def endless():
        try:
            while True:
                yield b"z" * 65536
        finally:
            stopped.set()

    base = tasks()
    b = StreamBuffer(endless(), max_size=1 << 20)
    assert b.read(10 << 20, 10) == b"z" * 10  # it is running, and spilling
    del b
    assert stopped.wait(10), "the generator was not finalized"
    wait_until(lambda: tasks() <= base, what="the producer thread to end")


def test_a_buffer_in_a_cycle_with_its_iterator_is_collected():
    stopped = threading.Event()

    def make():
        box = []

        def source():  # its frame holds box, box holds the buffer
            try:
                while True:
                    yield b"c" * 1000 if box else b""
            finally:
                stopped.set()

        b = StreamBuffer(source(), read_ahead=10_000)
        box.append(b)
        assert b.read(0, 10) == b"c" * 10

    make()  # the buffer is garbage that only the cycle collector finds
    deadline = time.monotonic() + 10
    while not stopped.is_set() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert stopped.is_set()


def test_a_subclass_with_its_own_del_still_stops_its_producer():
    stopped = threading.Event()
    dels = []

    class Mine(StreamBuffer):
        def __del__(self):
            dels.append(1)

    def endless():
        try:
            while True:
                yield b"d" * 4096
        finally:
            stopped.set()

    b = Mine(endless(), read_ahead=1 << 16)
    b.read(0, 10)
    del b
    assert dels == [1]
    assert stopped.wait(10)


SHUTDOWN_CASES = {
    "producer stuck in a slow iterator": """
        def slow():
            yield b"x" * 100
            time.sleep(60)
            yield b"never"
        b = StreamBuffer(slow())
        assert b.read(0, 100) == b"x" * 100
        time.sleep(0.05)
    """,
    "producer running flat out, buffer in a cycle": """
        def make():
            box = []
            def endless():
                while True:
                    yield b"y" * 4096 if box else b""
            b = StreamBuffer(endless(), max_size=1 << 16)
            box.append(b)
            b.read(1 << 20, 10)
        make()
    """,
    "daemon thread blocked in read": """
        def slow():
            yield b"x"
            time.sleep(60)
        b = StreamBuffer(slow())
        threading.Thread(target=lambda: b.read(0, 10), daemon=True).start()
        while b.stats()["waiting"] == 0:
            time.sleep(0.01)
    """,
    "producer blocked reading a silent pipe": """
        r, w = os.pipe()
        f = os.fdopen(r, "rb")
        b = StreamBuffer(f)
        os.write(w, b"abc")
        assert b.read(0, 3) == b"abc"
        time.sleep(0.05)
    """,
    "many buffers, some closed, some not": """
        def gen(n):
            for i in range(n):
                yield bytes([i % 256]) * 1000
                time.sleep(0.001)
        keep = [StreamBuffer(gen(1000)) for _ in range(20)]
        for b in keep[::2]:
            b.read(0, 10)
            b.close()
        keep[1].read(5000, 10)
    """,
}


@pytest.mark.parametrize("case", sorted(SHUTDOWN_CASES))
def test_interpreter_shutdown_with_live_buffers(case):
    body = textwrap.dedent(SHUTDOWN_CASES[case])
    script = "import os, sys, threading, time\nfrom streambuffer import StreamBuffer\n" + body
    for _ in range(3):
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", script], env=subprocess_env(),
                           capture_output=True, timeout=30)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr.decode()
        assert p.stderr == b"", p.stderr.decode()
        assert took < 5, f"exit took {took:.1f} s"


def test_pip_install_offline(tmp_path):
    """pip install --no-build-isolation ./python works offline, setuptools
    only, from a clean copy of the checkout (pip builds in the tree, and
    setup.py compiles the library's sources itself: no make)."""
    root = PYDIR.parent
    tree = tmp_path / "checkout"
    skip = shutil.ignore_patterns("*.so", "build", "*.egg-info", "__pycache__", "tests")
    for part in ["include", "src", "python"]:
        shutil.copytree(root / part, tree / part, ignore=skip)
    target = tmp_path / "site"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index",
         "--no-deps", "--disable-pip-version-check", "--no-cache-dir",
         "--target", str(target), "./python"],
        capture_output=True, timeout=600, cwd=tree)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()
    env = dict(os.environ, PYTHONPATH=str(target))
    check = ("import streambuffer, zipfile, io; "
             "assert streambuffer.__file__.startswith(%r), streambuffer.__file__; "
             "b = streambuffer.StreamBuffer(iter([b'ab', b'cd']), 4); "
             "assert b.read(1, 2) == b'bc'; assert b.open().read() == b'abcd'; "
             "print('ok')" % str(target))
    p = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True,
                       timeout=60, cwd=tmp_path)
    assert p.stdout == b"ok\n", p.stderr.decode()
