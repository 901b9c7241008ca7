#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP clients for tests/test_serve.sh: each subcommand checks one
behaviour of examples/serve and exits 0, or prints what was wrong and exits
1.  Standard library only (sockets, http.client, asyncio).

    serve_client.py CMD PORT INPUT [ARGS]

INPUT is the file whose bytes the server's standard input is (or will be):
every body is compared with its bytes.
"""
import asyncio
import http.client
import os
import random
import re
import resource
import select
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
TIMEOUT = 20


class Fail(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Fail(what)


def request(path="/", method="GET", headers=(), version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", f"Host: {HOST}"]
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(f, head=False):
    """One response from the buffered socket file f: (status, headers,
    body).  The body is framed as the headers say; chunked bodies must end
    with the last chunk."""
    line = f.readline()
    if not line:
        raise Fail("the connection closed before a response")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", line)
    expect(m, f"bad status line {line!r}")
    status = int(m.group(1))
    headers = {}
    while True:
        line = f.readline()
        expect(line, "the connection closed inside the head")
        if line in (b"\r\n", b"\n"):
            break
        k, v = line.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head:
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = f.readline()
            expect(size.endswith(b"\r\n"), f"bad chunk-size line {size!r}")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                break
            data = f.read(n)
            expect(len(data) == n, "the connection closed inside a chunk")
            parts.append(data)
            expect(f.read(2) == b"\r\n", "a chunk not followed by CRLF")
        body = b"".join(parts)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        body = f.read(n)
        expect(len(body) == n, f"body of {len(body)} bytes, Content-Length {n}")
    else:
        body = f.read()  # until the server closes
    return status, headers, body


def connect(port):
    s = socket.create_connection((HOST, port), timeout=TIMEOUT)
    return s, s.makefile("rb")


def at_eof(f):
    """Whether the server closed the connection (nothing more comes)."""
    try:
        return f.read(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def check_range(st, hd, body, data, first, last, length):
    """A 206 for [first, last] with Content-Range .../length ("*" or
    the number) and exactly those bytes."""
    expect(st == 206, f"status {st}, not 206")
    want = f"bytes {first}-{last}/{length}"
    expect(hd.get("content-range") == want,
           f"Content-Range {hd.get('content-range')!r}, not {want!r}")
    expect(body == data[first:last + 1],
           f"body of {len(body)} bytes is not bytes {first}-{last}")


# ---- subcommands ---------------------------------------------------------

def cmd_pending(port, data, markdir):
    """Ranges whose bytes have not arrived, on a live stream: no answer
    until they arrive; then a-b and a- with /*; then, once the stream has
    ended, the suffix with /LEN and the live tail (a-HUGE, RFC 8673 2.2)
    ending cleanly at the end of the stream.  The feeder writes the second
    part when markdir/go2 appears and the rest at markdir/go3."""
    n = len(data)
    reqs = {
        "ab": request(headers=["Range: bytes=1500000-1599999"]),
        "from": request(headers=["Range: bytes=1700000-"]),
        "suffix": request(headers=["Range: bytes=-1000"]),
        "tail": request(headers=["Range: bytes=1900000-999999999999"]),
    }
    conns = {}
    for k, r in reqs.items():
        s, f = connect(port)
        s.sendall(r)
        conns[k] = (s, f)
    # The bytes are not there (the feeder waits for go2): nothing may come.
    ready, _, _ = select.select([s for s, _ in conns.values()], [], [], 0.3)
    expect(not ready, "a response came before its bytes had arrived")
    open(os.path.join(markdir, "go2"), "w").close()

    st, hd, body = read_response(conns["ab"][1])
    check_range(st, hd, body, data, 1500000, 1599999, "*")
    st, hd, body = read_response(conns["from"][1])
    m = re.fullmatch(r"bytes 1700000-(\d+)/\*", hd.get("content-range", ""))
    expect(st == 206 and m, f"bytes=1700000- live: {st} {hd.get('content-range')!r}")
    last = int(m.group(1))
    expect(1700000 <= last < 2000000, f"bytes=1700000- live ends at {last}")
    check_range(st, hd, body, data, 1700000, last, "*")
    # The tail's head comes once byte 1900000 is in, before the end.
    s, f = conns["tail"]
    line = f.readline()
    expect(line.startswith(b"HTTP/1.1 206 "), f"tail: {line!r}")
    open(os.path.join(markdir, "go3"), "w").close()

    st, hd, body = read_response(conns["suffix"][1])
    check_range(st, hd, body, data, n - 1000, n - 1, n)
    # The rest of the tail's response: its head, then a chunked body that
    # ends where the stream did, well before 999999999999.
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    expect(headers.get("content-range") == "bytes 1900000-999999999999/*",
           f"tail: Content-Range {headers.get('content-range')!r}")
    expect(headers.get("transfer-encoding") == "chunked", "tail: not chunked")
    parts = []
    while True:
        size = int(f.readline().split(b";")[0], 16)
        if size == 0:
            break
        parts.append(f.read(size))
        expect(f.read(2) == b"\r\n", "tail: a chunk without CRLF")
    expect(f.readline() == b"\r\n", "tail: no end after the last chunk")
    expect(b"".join(parts) == data[1900000:], "tail: body is not the stream's tail")
    for s, _ in conns.values():
        s.close()


def cmd_vanish(port, data):
    """Clients that go away: one in the middle of a live body (reads 64 KiB
    of GET /, then closes with the rest unread: a reset), one while its
    range has not arrived (armed)."""
    s, f = connect(port)
    s.sendall(request())
    got = 0
    while got < 65536:
        chunk = s.recv(65536)
        expect(chunk, "the body ended early")
        got += len(chunk)
    s.close()
    s, f = connect(port)
    s.sendall(request(headers=["Range: bytes=2500000-2500099"]))
    s.close()


def cmd_head(port, data, mode):
    """HEAD /: the headers of GET and no body.  A GET on the same
    connection right after must parse: no body bytes came after the head."""
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    conn.request("HEAD", "/")
    r = conn.getresponse()
    r.read()
    expect(r.status == 200, f"HEAD status {r.status}")
    if mode == "live":
        expect(r.getheader("Transfer-Encoding") == "chunked",
               f"HEAD live: Transfer-Encoding {r.getheader('Transfer-Encoding')!r}")
    else:
        expect(r.getheader("Content-Length") == str(len(data)),
               f"HEAD: Content-Length {r.getheader('Content-Length')!r}")
    sock = conn.sock
    conn.request("GET", "/", headers={"Range": "bytes=0-9"})
    r = conn.getresponse()
    body = r.read()
    expect(conn.sock is sock, "the connection did not persist after HEAD")
    expect(r.status == 206 and body == data[:10], f"GET after HEAD: {r.status}")


def cmd_keepalive(port, data):
    """Two (three) requests on one persistent connection (http.client)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    conn.request("GET", "/", headers={"Range": "bytes=10-19"})
    r = conn.getresponse()
    b1 = r.read()
    sock = conn.sock
    port1 = sock.getsockname()[1]
    conn.request("GET", "/")
    r2 = conn.getresponse()
    b2 = r2.read()
    expect(conn.sock is sock and sock.getsockname()[1] == port1,
           "the second request went on a new connection")
    conn.request("GET", "/", headers={"Range": "bytes=-5"})
    r3 = conn.getresponse()
    b3 = r3.read()
    expect(conn.sock is sock, "the third request went on a new connection")
    expect(r.status == 206 and b1 == data[10:20], f"first: {r.status}")
    expect(r2.status == 200 and b2 == data, f"second: {r2.status}, {len(b2)} bytes")
    expect(r3.status == 206 and b3 == data[-5:], f"third: {r3.status}")
    conn.close()


def cmd_pipeline(port, data):
    """Four requests in one send; four responses, in order; the last asks
    to close, and the server does."""
    s, f = connect(port)
    s.sendall(request(headers=["Range: bytes=0-99"])
              + request(method="HEAD")
              + request(headers=["Range: bytes=5000-"])
              + request(headers=["Range: bytes=-3", "Connection: close"]))
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, 0, 99, len(data))
    st, hd, body = read_response(f, head=True)
    expect(st == 200 and hd.get("content-length") == str(len(data)), f"HEAD: {st}")
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, 5000, len(data) - 1, len(data))
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, len(data) - 3, len(data) - 1, len(data))
    expect(hd.get("connection") == "close", "no Connection: close")
    expect(at_eof(f), "the connection stayed open after Connection: close")
    s.close()


def cmd_bad(port, data):
    """Malformed requests: 400 (or 431, 505), and the connection closed."""
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad : space\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 400),
    ]
    for req, want in cases:
        s, f = connect(port)
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the 431 may come before the whole head is sent
        st, hd, body = read_response(f)
        expect(st == want, f"{req[:40]!r}...: {st}, not {want}")
        expect(at_eof(f), f"{req[:40]!r}...: the connection stayed open")
        s.close()


def cmd_http10(port, data):
    """HTTP/1.0: the body, then the server closes; with keep-alive asked
    for, the connection persists."""
    s, f = connect(port)
    s.sendall(request(version="HTTP/1.0", headers=["Range: bytes=1-4"]))
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, 1, 4, len(data))
    expect(at_eof(f), "HTTP/1.0: the connection stayed open")
    s.close()
    s, f = connect(port)
    s.sendall(request(version="HTTP/1.0", headers=["Connection: keep-alive",
                                                   "Range: bytes=1-4"]))
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, 1, 4, len(data))
    expect(hd.get("connection", "").lower() == "keep-alive", "no Connection: keep-alive")
    s.sendall(request(version="HTTP/1.0", headers=["Range: bytes=7-8"]))
    st, hd, body = read_response(f)
    check_range(st, hd, body, data, 7, 8, len(data))
    s.close()


async def one_client(port, data, i, rng, stats):
    """Client i of cmd_many: a request chosen by i, its response checked.
    stats counts the connections open at once (and their peak) and the
    responses that were sent while the stream was live."""
    n = len(data)
    kind = ("whole", "ab", "ab", "ab", "from", "suffix", "ab", "vanish",
            "ab", "suffix")[i % 10]
    if kind == "whole" and i % 20 != 0:
        kind = "ab"  # 1 in 20 asks for the whole stream
    hdrs = []
    if kind == "ab":
        a = rng.randrange(n)
        b = min(n - 1, a + rng.randrange(1, 256 << 10))
        hdrs = [f"Range: bytes={a}-{b}"]
    elif kind == "from":
        a = rng.randrange(n - (256 << 10), n)
        hdrs = [f"Range: bytes={a}-"]
    elif kind == "suffix":
        k = rng.randrange(1, 64 << 10)
        hdrs = [f"Range: bytes=-{k}"]
    r, w = await asyncio.open_connection(HOST, port)
    stats["open"] += 1
    stats["peak"] = max(stats["peak"], stats["open"])
    try:
        w.write(request(headers=hdrs))
        await w.drain()
        stats["sent"] += 1
        if stats["sent"] == stats["count"]:
            open(stats["go"], "w").close()  # the feeder writes the rest
        head = await r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        st = int(lines[0].split()[1])
        hd = {}
        for line in lines[1:]:
            if line:
                k2, v = line.split(":", 1)
                hd[k2.strip().lower()] = v.strip()
        if kind == "vanish":  # read a little of the body, then go
            await r.read(4096)
            w.transport.abort()
            return None
        if hd.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await r.readline()).split(b";")[0], 16)
                if size == 0:
                    await r.readline()
                    break
                parts.append(await r.readexactly(size))
                await r.readexactly(2)
            body = b"".join(parts)
        else:
            body = await r.readexactly(int(hd["content-length"]))
    finally:
        stats["open"] -= 1
        w.close()
    cr = hd.get("content-range", "")
    if cr.endswith("/*") or hd.get("transfer-encoding") == "chunked":
        stats["live"] += 1
    if kind == "whole":
        expect(st == 200 and body == data, f"whole: {st}, {len(body)} bytes")
        return None
    expect(st == 206, f"{hdrs}: status {st}")
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\*|\d+)", cr)
    expect(m, f"{hdrs}: Content-Range {cr!r}")
    first, last, total = int(m.group(1)), int(m.group(2)), m.group(3)
    expect(total in ("*", str(n)), f"{hdrs}: Content-Range {cr!r}")
    if kind == "ab":
        expect((first, last) == (a, b), f"{hdrs}: Content-Range {cr!r}")
    elif kind == "from":
        expect(first == a and (last == n - 1 or total == "*"), f"{hdrs}: {cr!r}")
    else:
        expect(total != "*" and (first, last) == (n - k, n - 1), f"{hdrs}: {cr!r}")
    expect(body == data[first:last + 1], f"{hdrs}: wrong bytes")
    return None


def cmd_many(port, data, count, go):
    """count clients at once, each on its own connection: ranges, suffixes,
    open ranges, a few whole streams, a few that vanish mid-body.  Once
    every one has sent its request, the file go is made: the feeder holds
    the rest of the stream back until then."""
    count = int(count)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    stats = {"open": 0, "peak": 0, "live": 0, "sent": 0, "count": count,
             "go": go}

    async def main():
        rng = random.Random(8673)
        tasks = [one_client(port, data, i, rng, stats) for i in range(count)]
        return await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), 45)

    t0 = time.monotonic()
    results = asyncio.run(main())
    bad = [r for r in results if isinstance(r, BaseException)]
    for r in bad[:5]:
        print(f"  {type(r).__name__}: {r}", file=sys.stderr)
    expect(not bad, f"{len(bad)} of {count} clients failed")
    print(f"  {count} clients in {time.monotonic() - t0:.1f} s, at most "
          f"{stats['peak']} connected at once, {stats['live']} responses "
          "sent while the stream was live", file=sys.stderr)


def cmd_same(port, data, count, first, last):
    """count clients of the same range, bytes=first-last (tests/test_edge.sh):
    each connects, then all send their requests at once (a barrier), and
    each must get a 206 with Content-Range first-last/LEN, the right
    Content-Length and exactly those bytes."""
    count, first, last = int(count), int(first), int(last)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    go = threading.Barrier(count)
    errors = []

    def one(i):
        try:
            s, f = connect(port)
            with s, f:
                go.wait(TIMEOUT)
                s.sendall(request(headers=[f"Range: bytes={first}-{last}"]))
                st, hd, body = read_response(f)
                check_range(st, hd, body, data, first, last, len(data))
                expect(hd.get("content-length") == str(last - first + 1),
                       f"Content-Length {hd.get('content-length')!r}")
        except Exception as e:  # noqa: BLE001 - each client's own report
            go.abort()  # the others stop waiting for this one
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors[:5]:
        print(f"  {e}", file=sys.stderr)
    expect(not errors, f"{len(errors)} of {count} clients failed")
    print(f"  {count} clients of bytes={first}-{last} in "
          f"{time.monotonic() - t0:.2f} s", file=sys.stderr)


def cmd_prefix(port, data, n):
    """GET / of a stream whose length is known (tests/test_edge.sh): 200
    with Content-Length, not chunked, and its first n bytes right; then
    the client goes away without the rest."""
    n = int(n)
    s, f = connect(port)
    with s, f:
        s.sendall(request())
        st, hd, _ = read_response(f, head=True)
        expect(st == 200, f"status {st}, not 200")
        expect(hd.get("content-length") == str(len(data)),
               f"Content-Length {hd.get('content-length')!r}, not {len(data)}")
        expect("transfer-encoding" not in hd,
               f"Transfer-Encoding {hd.get('transfer-encoding')!r}")
        body = f.read(n)
        expect(body == data[:n], f"the first {len(body)} bytes are wrong")


def main():
    cmd, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path, "rb") as f:
        data = f.read()
    try:
        globals()["cmd_" + cmd](port, data, *sys.argv[4:])
    except (Fail, OSError, ValueError, asyncio.IncompleteReadError,
            http.client.HTTPException) as e:
        print(f"  {cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
