# SPDX-License-Identifier: MIT
"""Threads: parallel readers, a blocked reader that stops nobody, the
iterator's exception for every reader, Ctrl-C, closing under readers."""
import os
import random
import signal
import threading
import time

import pytest

from conftest import chunks, pattern, wait_until

from streambuffer import StreamBuffer


def slow_chunks(data, size, pause):
    for c in chunks(data, size):
        time.sleep(pause)
        yield c


def run_threads(n, target):
    errors = []

    def body(i):
        try:
            target(i)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a reader thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("max_size", [1 << 30, 64 << 10], ids=["memory", "spilled"])
def test_many_threads_random_ranges_while_a_slow_iterator_produces(max_size):
    data = pattern(2 << 20, seed=3)
    checked = [0] * 8
    with StreamBuffer(slow_chunks(data, 16 << 10, 0.0005), len(data),
                      max_size=max_size) as buf:
        def reader(i):
            rnd = random.Random(i)
            for _ in range(300):
                off = rnd.randrange(len(data) + 1000)
                n = rnd.choice([1, 100, 4096, 20000, 70000])
                got = buf.read(off, n)
                assert got == data[off:off + n], (off, n)
                checked[i] += len(got)
            target = bytearray(5000)
            for _ in range(100):
                off = rnd.randrange(len(data))
                k = buf.readinto(off, target)
                assert target[:k] == data[off:off + 5000]

        run_threads(8, reader)
        assert buf.wait_end() == len(data)
    assert all(checked)


def test_a_blocked_read_stops_nobody(gate):
    g = gate([b"x" * 10, b"y" * 10])
    with StreamBuffer(g) as buf:
        got = []
        t = threading.Thread(target=lambda: got.append(buf.read(0, 20)))
        t.start()
        wait_until(lambda: buf.stats()["waiting"] == 1, what="the reader to block")
        # The main thread keeps running Python code meanwhile.
        spins, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 0.2:
            spins += 1
        assert spins > 10_000
        assert t.is_alive() and not got
        g.allow_all()
        t.join(10)
        assert got == [b"x" * 10 + b"y" * 10]


def test_parallel_readers_all_wake_in_order(gate):
    g = gate(chunks(bytes(range(256)) * 4, 64))
    with StreamBuffer(g) as buf:
        results = {}

        def reader(i):
            results[i] = buf.read(i * 64, 64)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        wait_until(lambda: buf.stats()["waiting"] == 16, what="16 blocked readers")
        for i in range(16):
            g.allow()
        for t in threads:
            t.join(10)
        assert results == {i: (bytes(range(256)) * 4)[i * 64:i * 64 + 64] for i in range(16)}


class Boom(Exception):
    pass


def test_an_iterator_that_raises(gate):
    def source():
        yield b"a" * 1000
        yield b"b" * 1000
        raise Boom("the source broke")

    with StreamBuffer(source()) as buf:
        seen = []

        def reader(i):
            try:
                buf.read(1500 + i, 1000)
            except Boom as e:
                seen.append(e)

        run_threads(6, reader)
        assert len(seen) == 6
        exc = buf.exception
        assert isinstance(exc, Boom)
        assert all(e is exc for e in seen)
        # Bytes before the failure stay readable; reads that need the
        # missing ones raise the same object, and so does wait_end.
        assert buf.read(0, 2000) == b"a" * 1000 + b"b" * 1000
        assert buf.read(1990, 10) == b"b" * 10
        for off, n in [(1999, 2), (2000, 1), (5000, 10)]:
            with pytest.raises(Boom) as e:
                buf.read(off, n)
            assert e.value is exc
        with pytest.raises(Boom) as e:
            buf.wait_end()
        assert e.value is exc
        with pytest.raises(Boom):
            buf[:]
        assert buf.is_exhausted()


def test_readers_blocked_before_the_exception_get_it(gate):
    class Flaky:
        def __init__(self):
            self.go = threading.Event()

        def __iter__(self):
            return self

        def __next__(self):
            self.go.wait(10)
            raise Boom("late")

    src = Flaky()
    with StreamBuffer(src) as buf:
        seen = []
        t = threading.Thread(target=lambda: seen.append(pytest.raises(Boom, buf.read, 0, 1)))
        t.start()
        wait_until(lambda: buf.stats()["waiting"] == 1, what="the reader to block")
        src.go.set()
        t.join(10)
        assert seen and seen[0].value is buf.exception


def test_an_oserror_of_the_source_keeps_its_errno():
    def source():
        yield b"abc"
        raise ConnectionResetError(104, "reset by peer")

    with StreamBuffer(source()) as buf:
        with pytest.raises(ConnectionResetError) as e:
            buf.read(0, 4)
        assert e.value is buf.exception
        assert buf.stats()["error"] == 104


def test_the_iterator_cannot_wait_on_its_own_buffer():
    box = []

    def source():
        yield b"abc"
        box[0].read(0, 100)  # would wait for itself
        yield b"never"

    buf = StreamBuffer(source())
    box.append(buf)
    with pytest.raises(RuntimeError):
        buf.wait_end()
    box.clear()
    buf.close()


@pytest.mark.parametrize("call", ["read", "wait_end", "file", "slice"])
def test_ctrl_c_interrupts_a_blocked_read_within_100_ms(gate, call):
    g = gate([b"x"])
    with StreamBuffer(g) as buf:
        g.allow()
        buf.read(0, 1)
        sent = []

        def interrupt():
            wait_until(lambda: buf.stats()["waiting"] == 1, what="the main thread to block")
            time.sleep(0.05)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        t = threading.Thread(target=interrupt)
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            t.start()
            with pytest.raises(KeyboardInterrupt):
                if call == "read":
                    buf.read(0, 2)
                elif call == "wait_end":
                    buf.wait_end()
                elif call == "file":
                    f = buf.open()
                    f.seek(1)
                    f.read(1)
                else:
                    buf[0:]
            late = time.monotonic() - sent[0]
        finally:
            t.join(10)
            signal.signal(signal.SIGINT, old)
        assert late < 0.1 + 0.15, f"KeyboardInterrupt came {late * 1000:.0f} ms late"
        # The buffer is still usable.
        assert buf.read(0, 1) == b"x"


def test_close_while_another_thread_is_blocked_in_read(gate):
    g = gate([b"abc"])
    buf = StreamBuffer(g)
    caught = []

    def reader():
        try:
            buf.read(0, 10)
        except Exception as e:
            caught.append(e)

    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: buf.stats()["waiting"] == 1, what="the reader to block")
    t0 = time.monotonic()
    buf.close()
    t.join(10)
    assert time.monotonic() - t0 < 2
    assert len(caught) == 1 and isinstance(caught[0], ValueError)
    assert buf.closed


def test_close_does_not_wait_for_a_stuck_iterator():
    released = threading.Event()
    wake = threading.Event()

    def source():
        try:
            yield b"abc"
            wake.wait(30)  # a stalled socket
            yield b"def"
        finally:
            released.set()

    buf = StreamBuffer(source())
    assert buf.read(0, 3) == b"abc"
    wait_until(lambda: buf.stats()["filled"] == 3)
    time.sleep(0.05)  # let the producer get into the stuck call
    t0 = time.monotonic()
    buf.close()
    assert time.monotonic() - t0 < 0.5
    assert not released.is_set()
    wake.set()  # the call returns: the producer drops the generator
    assert released.wait(10)


def test_a_reader_is_for_one_thread_at_a_time(gate):
    g = gate([b"abc"])
    with StreamBuffer(g) as buf:
        r = buf.reader()
        t = threading.Thread(target=lambda: r.read(0, 3))
        t.start()
        wait_until(lambda: buf.stats()["waiting"] == 1, what="the reader to block")
        with pytest.raises(RuntimeError):
            r.read(0, 1)
        with pytest.raises(RuntimeError):
            r.close()
        g.allow_all()
        t.join(10)
        r.close()
