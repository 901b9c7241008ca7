# SPDX-License-Identifier: MIT
"""aread: read for asyncio, on a StreamBuffer and on a Reader.

Each test runs its own event loop (asyncio.run) with a deadline, so a lost
wake-up fails the test instead of hanging it.  Nothing waits on time: a
test that needs readers to be waiting runs the loop until the buffer's
stats count their probes.
"""
import asyncio
import errno
import os
import pathlib
import subprocess
import sys
import threading

import pytest

import streambuffer
from conftest import chunks, pattern, subprocess_env

DEADLINE = 60.0
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "aserve.py"


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, DEADLINE)
    return asyncio.run(bounded())


async def until_waiting(buf, n):
    """Run the loop until n areads of buf wait (their probes are open)."""
    while buf.stats()["readers"] < n:
        await asyncio.sleep(0)


def test_thousand_coroutines_over_a_live_stream(gate):
    data = pattern(2 << 20, seed=7)
    g = gate(chunks(data, 16 << 10))
    buf = streambuffer.StreamBuffer(g, max_size=1 << 20)  # spills, too
    n = 1000

    async def one(i):
        off = (i * 7919) % len(data)
        size = 1 + (i * 31) % 20000
        got = await buf.aread(off, size)
        return got == data[off:off + size]

    async def main():
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await until_waiting(buf, n)
        assert buf.stats()["filled"] == 0  # every one of them had to wait
        g.allow_all()
        return await asyncio.gather(*tasks)

    results = run(main())
    assert results.count(True) == n
    assert buf.stats()["readers"] == 0  # every probe closed
    buf.close()


def test_answers_at_once_what_has_arrived():
    data = pattern(100_000)
    buf = streambuffer.StreamBuffer(data)

    async def main():
        return [await buf.aread(0, 10), await buf.aread(99_990, 100),
                await buf.aread(50_000), await buf.aread(200_000, 5),
                await buf.aread(offset=3, size=0), await buf.aread(0, -1)]

    got = run(main())
    assert got == [data[:10], data[99_990:], data[50_000:], b"", b"", data]
    assert buf.stats()["readers"] == 0


def test_the_loop_runs_while_an_aread_waits(gate):
    g = gate([b"x" * 100])
    buf = streambuffer.StreamBuffer(g)

    async def main():
        t = asyncio.create_task(buf.aread(0, 100))
        await until_waiting(buf, 1)
        ticks = 0
        for _ in range(100):  # the loop is free: other work runs
            await asyncio.sleep(0)
            ticks += 1
        assert not t.done()
        g.allow_all()
        return ticks, await t

    assert run(main()) == (100, b"x" * 100)


def test_to_the_end_waits_for_the_end(gate):
    data = pattern(50_000)
    g = gate(chunks(data, 10_000))
    buf = streambuffer.StreamBuffer(g)

    async def main():
        t = asyncio.create_task(buf.aread(20_000))
        await until_waiting(buf, 1)
        g.allow(3)  # 30,000 bytes: not the end
        while buf.stats()["filled"] < 30_000:
            await asyncio.sleep(0)
        assert not t.done()
        g.allow_all()
        return await t

    assert run(main()) == data[20_000:]


def test_cancelling_the_task_disarms(gate):
    g = gate([b"abc"])
    buf = streambuffer.StreamBuffer(g)

    async def main():
        t = asyncio.create_task(buf.aread(0, 3))
        await until_waiting(buf, 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert buf.stats()["readers"] == 0
        # The loop no longer watches the buffer, and a new aread works.
        g.allow_all()
        return await buf.aread(0, 3)

    assert run(main()) == b"abc"


def test_cancel_and_failure_reach_every_waiting_aread(gate):
    class Boom(Exception):
        pass

    def failing():
        yield b"12345"
        raise Boom("source broke")

    async def cancelled():
        g = gate([b"a" * 10])
        buf = streambuffer.StreamBuffer(g)
        ts = [asyncio.create_task(buf.aread(i, 5)) for i in range(50)]
        await until_waiting(buf, 50)
        buf.cancel()
        res = await asyncio.gather(*ts, return_exceptions=True)
        assert all(isinstance(e, OSError) and e.errno == errno.ECANCELED for e in res)

    async def failed():
        buf = streambuffer.StreamBuffer(failing())
        # Bytes that arrived stay readable; the rest raise the source's error.
        ts = [asyncio.create_task(buf.aread(0, 5)),
              asyncio.create_task(buf.aread(3, 10))]
        res = await asyncio.gather(*ts, return_exceptions=True)
        assert res[0] == b"12345"
        assert isinstance(res[1], Boom)

    run(cancelled())
    run(failed())


def test_close_while_areads_wait(gate):
    g = gate([b"z" * 10])
    buf = streambuffer.StreamBuffer(g)

    async def main():
        ts = [asyncio.create_task(buf.aread(0, 10)) for _ in range(20)]
        await until_waiting(buf, 20)
        buf.close()
        return await asyncio.gather(*ts, return_exceptions=True)

    res = run(main())
    assert all(isinstance(e, ValueError) for e in res), res
    with pytest.raises(ValueError):
        run(buf.aread(0, 1))


def test_on_a_reader_with_its_floor(gate):
    data = pattern(30_000)
    g = gate(chunks(data, 1000))
    buf = streambuffer.StreamBuffer(g, release=True)
    r = buf.reader()

    async def main():
        t = asyncio.create_task(r.aread(1000, 5000))
        await until_waiting(buf, 2)  # r and the aread's probe
        g.allow_all()
        got = await t
        r.release(10_000)
        with pytest.raises(OSError) as e:
            await r.aread(5000, 10)
        assert e.value.errno == errno.ESPIPE
        return got, await r.aread(10_000)

    got, rest = run(main())
    assert got == data[1000:6000]
    assert rest == data[10_000:]
    r.close()


def test_two_loops_in_two_threads_share_a_buffer(gate):
    data = pattern(200_000)
    g = gate(chunks(data, 4096))
    buf = streambuffer.StreamBuffer(g)
    results = {}

    def thread(name, offsets):
        async def main():
            return [await buf.aread(o, 3000) == data[o:o + 3000] for o in offsets]
        results[name] = run(main())

    a = threading.Thread(target=thread, args=("a", range(0, 190_000, 9_000)))
    b = threading.Thread(target=thread, args=("b", range(4_500, 190_000, 9_000)))
    a.start()
    b.start()
    g.allow_all()
    a.join(DEADLINE)
    b.join(DEADLINE)
    assert all(results["a"]) and len(results["a"]) == 22
    assert all(results["b"]) and len(results["b"]) == 21


def test_aread_needs_a_running_loop():
    buf = streambuffer.StreamBuffer(b"abc")
    coro = buf.aread(0, 1)
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()


def test_the_example_server_serves_a_live_stream():
    """python/examples/aserve.py: asyncio.start_server, one aread per
    request, while its standard input is still arriving."""
    data = pattern(3 << 20, seed=3)
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", "0"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env())
    try:
        line = proc.stderr.readline().decode()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])

        async def client(off, size):
            rd, wr = await asyncio.open_connection("127.0.0.1", port)
            wr.write(f"{off} {size}\n".encode())
            await wr.drain()
            got = await rd.read()
            wr.close()
            return got == data[off:off + size]

        async def main():
            ts = [asyncio.create_task(client((i * 65537) % len(data), 50_000))
                  for i in range(100)]
            await asyncio.sleep(0)
            proc.stdin.write(data)
            proc.stdin.close()
            return await asyncio.gather(*ts)

        assert all(run(main()))
    finally:
        proc.kill()
        proc.wait(DEADLINE)
