# SPDX-License-Identifier: MIT
"""Each documented call once, with the types a caller writes: checked by
mypy --strict against the stubs (streambuffer/__init__.pyi) and run by
test_package.py, so that the stubs, the README and the module agree."""
import asyncio
import io
import math
import tempfile
import zipfile
from collections.abc import Iterator

import streambuffer
from streambuffer import Reader, StreamBuffer


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def areads(buf: StreamBuffer, reader: Reader) -> tuple[bytes, bytes]:
    return await buf.aread(0, 4), await reader.aread(4, size=4)


def main() -> None:
    data = bytes(range(256)) * 64
    version: str = streambuffer.__version__
    assert version == streambuffer.library_version
    assert streambuffer.DEFAULT_MAX_SIZE == 5 << 20
    with tempfile.TemporaryDirectory() as tmp:
        buf = StreamBuffer(chunks(data, 1000), len(data), 4096, limit=1 << 20,
                           tmp_dir=tmp, chunk_size=4096, read_ahead=None,
                           mmap_reads=True)
        with buf:
            first: bytes = buf.read(0, size=1024)
            assert first == data[:1024]
            assert buf.read(100, None) == data[100:]
            assert buf[10:20] == buf[[10, 20]] == data[10:20]
            target = bytearray(100)
            n: int = buf.readinto(50, target)
            assert n == 100 and target == data[50:150]
            assert buf.readinto1(0, memoryview(target)) > 0
            with buf.view(0, 16) as m:
                assert bytes(m) == data[:16]
            length: int = buf.wait_end()
            assert length == len(data) and buf.is_exhausted()
            assert buf.stream_index == length and buf.floor == 0
            assert buf.max_size == buf.mem_limit == 4096 and buf.limit == 1 << 20
            with buf.open() as f:
                f.seek(-10, io.SEEK_END)
                assert f.read() == data[-10:]
            raw = buf.open(buffering=0)
            assert raw.read(3) == data[:3]
            with buf.reader(floor=4) as r:
                assert r.read(4, 4) == data[4:8]
                assert asyncio.run(areads(buf, r)) == (data[:4], data[4:8])
                r.release(8)
                assert r.floor == 8 and r.buffer is buf
            st = buf.stats()
            spilled: int = st["spilled"]
            assert spilled == len(data) - 4096 and st["error"] is None
            # None, an offset, or math.inf (a read asked for the whole stream)
            demand: int | float | None = st["demand"]
            assert demand is None or 0 < demand <= math.inf
            assert st["state"] == "ended" and not st["paused"]
            assert buf.exception is None and not buf.closed
        assert buf.closed

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.txt", "hello")
    with StreamBuffer(zipped.getvalue(), mem_limit=1 << 16) as zbuf:
        assert zipfile.ZipFile(zbuf.open()).read("a.txt") == b"hello"

    with StreamBuffer(chunks(data, 1000), release=True, max_retained=8192) as rbuf:
        with rbuf.reader() as r:
            assert r.read(0, 100) == data[:100]
            r.release(100)
        rbuf.cancel()

    with open(__file__, "rb") as src, StreamBuffer(src) as fbuf:
        assert fbuf.read(0, 2) == b"# "


if __name__ == "__main__":
    main()
    print("ok")
