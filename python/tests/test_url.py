# SPDX-License-Identifier: MIT
"""StreamBuffer.from_url against a real nginx and the fault server, both
on 127.0.0.1 (servers.py)."""
import errno
import threading

import pytest

from servers import Servers, file_bytes
from streambuffer import StreamBuffer

BIG = file_bytes("big.bin")


@pytest.fixture(scope="module")
def web():
    s = Servers()
    try:
        yield s.start()
    finally:
        s.stop()


def test_whole_object(web):
    with StreamBuffer.from_url(web.nginx + "/big.bin") as b:
        assert b.size == len(BIG)
        assert b.stream == web.nginx + "/big.bin"
        assert b.wait_end() == len(BIG)
        assert b.read(0) == BIG
        assert b.stats()["state"] == "ended"


def test_far_read_waits_for_one_round_trip(web):
    """/slow/ sends 512 KiB/s a connection: the 8 MiB before the far read
    would take 16 s.  The far read is answered by a part of its own, with
    a few hundred KiB fetched in all."""
    url = web.nginx + "/slow/big.bin"
    with StreamBuffer.from_url(url, read_ahead=256 * 1024) as b:
        far = len(BIG) - 5000
        assert b.read(far, 4096) == BIG[far:far + 4096]
        st = b.stats()
        assert st["parts_opened"] >= 1
        assert st["length"] == len(BIG)
        assert st["fetched"] < 2 * 1024 * 1024
        ranged = [r for r in web.requests("/slow/big.bin") if "206" in r]
        assert ranged, web.log("nginx/access.log")


def test_threads_read_at_random(web):
    import random
    fails = []
    with StreamBuffer.from_url(web.nginx + "/big.bin", read_ahead=1 << 20,
                               max_parts=8) as b:
        def worker(seed):
            r = random.Random(seed)
            for _ in range(16):
                off = r.randrange(0, len(BIG) - 65536)
                if b.read(off, 65536) != BIG[off:off + 65536]:
                    fails.append(off)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not any(t.is_alive() for t in ts)
    assert fails == []


def test_file_view_seek_end_knows_the_length(web):
    with StreamBuffer.from_url(web.nginx + "/slow/big.bin", read_ahead=65536) as b:
        with b.open() as f:
            f.seek(-100, 2)
            assert f.read() == BIG[-100:]
        assert b.stats()["fetched"] < len(BIG) // 2


def test_headers_are_sent(web):
    url = web.fault + "/needhdr/small.bin"
    with pytest.raises(PermissionError):
        StreamBuffer.from_url(url)
    for h in ({"X-Sb-Test": "yes"}, ["X-Sb-Test: yes"]):
        with StreamBuffer.from_url(url, headers=h) as b:
            assert b.read(0) == file_bytes("small.bin")


def test_bad_headers():
    with pytest.raises(ValueError):
        StreamBuffer.from_url("http://127.0.0.1:1/", headers=["X-A: 1\r\nX-B: 2"])
    with pytest.raises(ValueError):
        StreamBuffer.from_url("http://127.0.0.1:1/", headers=["no colon"])
    with pytest.raises(TypeError):
        StreamBuffer.from_url("http://127.0.0.1:1/", headers="X-A: 1")
    with pytest.raises(TypeError):
        StreamBuffer.from_url(b"http://127.0.0.1:1/")
    with pytest.raises(TypeError):
        StreamBuffer.from_url("http://127.0.0.1:1/", size=10)


def test_errors_are_oserror_subclasses(web):
    with pytest.raises(FileNotFoundError) as e:
        StreamBuffer.from_url(web.nginx + "/missing.bin")
    assert e.value.errno == errno.ENOENT
    assert e.value.filename == web.nginx + "/missing.bin"
    with pytest.raises(PermissionError):
        StreamBuffer.from_url(web.nginx + "/deny/big.bin")
    with pytest.raises(OSError) as e:
        StreamBuffer.from_url(web.fault + "/status=500/small.bin")
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        StreamBuffer.from_url(web.fault + "/garbage/small.bin")
    assert e.value.errno == errno.EPROTO
    with pytest.raises(OSError) as e:
        StreamBuffer.from_url("notascheme://x")
    assert e.value.errno == errno.EINVAL


def test_connection_refused():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens there now (bound, never listening, then closed).
    with pytest.raises(ConnectionRefusedError):
        StreamBuffer.from_url("http://127.0.0.1:%d/x" % port)


def test_dropped_connections_resume(web):
    """Every response is cut after 512 KiB: parts reopen where they
    stopped, and the bytes are the object's."""
    with StreamBuffer.from_url(web.fault + "/drop=512/big.bin", retries=3) as b:
        assert b.wait_end() == len(BIG)
        assert b.read(0) == BIG
        assert b.stats()["part_retries"] >= 1


def test_changed_object_never_spliced(web):
    """Every request is a new version (newetag): If-Range answers the
    parts with the new object, which is never delivered as the old one."""
    with StreamBuffer.from_url(web.fault + "/newetag/big.bin", read_ahead=65536) as b:
        far = len(BIG) - 5000
        try:
            got = b.read(far, 4096)
        except OSError as e:
            assert e.errno in (errno.ESTALE, errno.ESPIPE, errno.EIO)
        else:
            assert got == BIG[far:far + 4096]
        # Whatever came, it is the first version's bytes.
        n = b.stats()["filled"]
        assert b.read(0, n) == BIG[:n]


def test_server_that_ignores_ranges(web):
    with StreamBuffer.from_url(web.fault + "/norange/big.bin", read_ahead=65536) as b:
        far = len(BIG) - 10
        assert b.read(far, 10) == BIG[far:]
        assert b.read(0) == BIG


def test_close_with_transfers_in_flight(web):
    b = StreamBuffer.from_url(web.nginx + "/slow/big.bin", seek_gap=65536)
    got = []

    def far():
        try:
            got.append(b.read(len(BIG) - 10, 10))
        except (OSError, ValueError) as e:
            got.append(e)
    t = threading.Thread(target=far)
    t.start()
    b.close()
    t.join(30)
    assert not t.is_alive()
    # It got its bytes before the close, or the close's error: not a hang.
    assert got and (got[0] == BIG[-10:] or isinstance(got[0], (OSError, ValueError)))


def readme_block(marker):
    """The README's Python block that contains marker."""
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, marker
    return found[0]


def run_readme_block(marker, url):
    code = readme_block(marker)
    real = "https://releases.ubuntu.com/20.04.1/ubuntu-20.04.1-desktop-amd64.iso"
    assert real in code
    env = {}
    exec(compile(code.replace(real, url), "README.md", "exec"), env)
    return env


def test_readme_from_url_example(web):
    """The seed's example as the README gives it, against /slow/ (512 KiB/s
    a connection): the read near the end is answered by its own part."""
    env = run_readme_block("StreamBuffer.from_url(URL)", web.nginx + "/slow/big.bin")
    assert env["first_kb"] == BIG[:1024]
    assert env["last_kb"] == BIG[-1024:]
    assert env["arbitrary_kb"] == BIG[20 * 1024:21 * 1024]


def test_readme_open_at_example(web):
    env = run_readme_block("open_at=open_at", web.nginx + "/slow/big.bin")
    assert env["first_kb"] == BIG[:1024]
    assert env["last_kb"] == BIG[-1024:]
