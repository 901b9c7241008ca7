#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""faultserver.py - an HTTP server that misbehaves on request, for the tests.

    faultserver.py DIR PORTFILE

Serves the files of DIR on 127.0.0.1 (a port the kernel picks, written to
PORTFILE once it listens) at /MODES/NAME, where MODES is "-" (behave) or a
comma-separated list of:

    norange      ignore Range: 200 and the whole body (Accept-Ranges: bytes)
    arnone       Accept-Ranges: none, and ignore Range
    lie          206 whose Content-Range starts one byte after the asked one
    lietotal     206 whose Content-Range total is one more than the length
    newetag      every request is a new version: ETag "vN", bytes of
                 version N > 1 are the file's XOR N; If-Range honoured
    sameetag     the same, but the ETag never changes
    weak         a weak ETag (W/"w"), no Last-Modified
    lmonly       no ETag; Last-Modified only (If-Range compares the date)
    noval        neither ETag nor Last-Modified
    nolen        full responses have no Content-Length (the body ends when
                 the connection closes)
    drop=K       close the connection after K KiB of the body
    stall=KEY    wait for GET /release/KEY (at most 30 s) before answering
    stallbody=KEY  send the headers, then wait as stall before the body
    slow=K       send at most K KiB a second
    status=N     answer status N (a 3xx without Location), small body
    redirect     302 to /REST/NAME, REST being the modes after this one
    loop         302 to itself, forever
    garbage      answer bytes that are not HTTP, and close
    needhdr      403 unless the request has "X-Sb-Test: yes"

GET /release/KEY releases every stall on KEY, now and later; GET /stats
answers the number of requests seen so far, GET /conns the number of
connections accepted so far; GET /stalled/KEY the number of
requests waiting on KEY now (what a test waits for, not a sleep).  Loopback only; daemon threads, so the
process ends with its main thread (the tests kill it, under timeout -k).
"""
import email.utils
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
RELEASES = {}  # key -> threading.Event


def release_event(key):
    with LOCK:
        return RELEASES.setdefault(key, threading.Event())


def stall(key):
    """Wait for GET /release/KEY (at most 30 s), counted in /stalled/KEY."""
    with LOCK:
        STALLED[key] = STALLED.get(key, 0) + 1
    try:
        release_event(key).wait(30)
    finally:
        with LOCK:
            STALLED[key] -= 1

LOCK = threading.Lock()
VERSIONS = {}  # path -> requests so far
STALLED = {}  # key -> requests waiting on it now
REQUESTS = [0]
CONNS = [0]
MTIME = email.utils.formatdate(1_600_000_000, usegmt=True)


def xor_bytes(data, n):
    if n <= 1:
        return data
    k = n & 0xFF or 1
    table = bytes((i ^ k) for i in range(256))
    return data.translate(table)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the tests print what matters
        pass

    def setup(self):  # once a connection
        with LOCK:
            CONNS[0] += 1
        super().setup()

    def small(self, code, body=b"", extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: C901 - one switch over the modes
        with LOCK:
            REQUESTS[0] += 1
        if self.path.startswith("/release/"):
            release_event(self.path[len("/release/"):]).set()
            return self.small(200, b"released\n")
        if self.path == "/stats":
            return self.small(200, b"%d\n" % REQUESTS[0])
        if self.path == "/conns":
            return self.small(200, b"%d\n" % CONNS[0])
        if self.path.startswith("/stalled/"):
            with LOCK:
                n = STALLED.get(self.path[len("/stalled/"):], 0)
            return self.small(200, b"%d\n" % n)
        m = re.fullmatch(r"/([^/]+)/([A-Za-z0-9_.]+)", self.path)
        if not m:
            return self.small(404, b"no\n")
        modes = [] if m.group(1) == "-" else m.group(1).split(",")
        name = m.group(2)
        opts = {}
        for i, mode in enumerate(modes):
            key, _, val = mode.partition("=")
            if key == "redirect":
                rest = ",".join(modes[i + 1:]) or "-"
                return self.small(302, b"moved\n", [("Location", "/%s/%s" % (rest, name))])
            opts[key] = val
        if "loop" in opts:
            return self.small(302, b"again\n", [("Location", self.path)])
        if "garbage" in opts:
            self.wfile.write(b"this is not HTTP at all\r\n\r\n")
            self.close_connection = True
            return None
        if "needhdr" in opts and self.headers.get("X-Sb-Test") != "yes":
            return self.small(403, b"forbidden\n")
        if "status" in opts:
            return self.small(int(opts["status"]), b"status\n")
        if "stall" in opts:
            stall(opts["stall"])
        path = os.path.join(ROOT, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return self.small(404, b"missing\n")

        with LOCK:
            version = VERSIONS.get(self.path, 0) + 1
            VERSIONS[self.path] = version
        etag = '"f%d"' % len(data)
        if "newetag" in opts:
            etag = '"v%d"' % version
            data = xor_bytes(data, version)
        elif "sameetag" in opts:
            data = xor_bytes(data, version)
        headers = []
        if "weak" in opts:
            headers.append(("ETag", 'W/"w"'))
        elif "lmonly" not in opts and "noval" not in opts:
            headers.append(("ETag", etag))
        if "weak" not in opts and "noval" not in opts:
            headers.append(("Last-Modified", MTIME))
        ranges_ok = "norange" not in opts and "arnone" not in opts
        headers.append(("Accept-Ranges", "none" if "arnone" in opts else "bytes"))

        size = len(data)
        start, end, code = 0, size, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and ranges_ok:
            current = MTIME if "lmonly" in opts else etag
            if if_range is None or if_range == current:
                r = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                if r:
                    a = int(r.group(1))
                    b = int(r.group(2)) + 1 if r.group(2) else size
                    if a >= size:
                        return self.small(416, b"", [("Content-Range", "bytes */%d" % size)])
                    start, end, code = a, min(b, size), 206
        body = data[start:end]
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if code == 206:
            first = start + 1 if "lie" in opts else start
            total = size + 1 if "lietotal" in opts else size
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, end - 1, total))
        if code == 200 and "nolen" in opts:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if "stallbody" in opts:
            self.wfile.flush()
            stall(opts["stallbody"])
        drop = int(opts["drop"]) * 1024 if "drop" in opts else None
        rate = int(opts["slow"]) * 1024 if "slow" in opts else None
        pos = 0
        step = 16384 if rate is None else max(1024, rate // 10)
        try:
            while pos < len(body):
                n = min(step, len(body) - pos)
                if drop is not None and pos + n > drop:
                    n = drop - pos
                    self.wfile.write(body[pos:pos + n])
                    self.wfile.flush()
                    self.close_connection = True
                    # An abrupt end: no more bytes on this connection.
                    self.connection.shutdown(2)
                    return None
                self.wfile.write(body[pos:pos + n])
                pos += n
                if rate is not None:
                    self.wfile.flush()
                    time.sleep(n / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return None


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, sys.argv[2])  # the port appears whole, once listening
    server.serve_forever()


if __name__ == "__main__":
    main()
