#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the serve target's seed corpus, tests/fuzz/corpus_serve/: the
requests tests/test_serve.sh makes with curl and tests/serve_client.py
makes itself, each seed the bytes one connection sends (fuzz_serve.c's
input).

usage: python3 tests/fuzz/make_corpus_serve.py [DIR]   (standard library only)
"""
import os
import sys

HOST = "127.0.0.1"


def request(path="/", method="GET", headers=(), version="HTTP/1.1"):
    """serve_client.py's request()."""
    lines = [f"{method} {path} {version}", f"Host: {HOST}"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def curl(headers=(), method="GET", path="/", body=b""):
    """What curl 7.88 sends for test_serve.sh's get()."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:40000"] + list(headers)
    lines += ["User-Agent: curl/7.88.1", "Accept: */*"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_client(method="GET", headers=()):
    """What http.client sends (keepalive, head)."""
    lines = [f"{method} / HTTP/1.1", f"Host: {HOST}:40000",
             "Accept-Encoding: identity"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


SEEDS = {
    # test_serve.sh, curl
    "curl_whole": curl(),
    "curl_ab": curl(["Range: bytes=100-199"]),
    "curl_end": curl(["Range: bytes=999990-999999"]),
    "curl_from": curl(["Range: bytes=1000-"]),
    "curl_ended_ab": curl(["Range: bytes=1234567-2345678"]),
    "curl_suffix": curl(["Range: bytes=-4321"]),
    "curl_clamp": curl(["Range: bytes=2999990-99999999"]),
    "curl_416": curl(["Range: bytes=3000000-"]),
    "curl_multi": curl(["Range: bytes=0-9,20-29"]),
    "curl_post": curl(["Content-Length: 1",
                       "Content-Type: application/x-www-form-urlencoded"],
                      method="POST", body=b"x"),
    "curl_404": curl(path="/other"),
    # serve_client.py
    "pending_ab": request(headers=["Range: bytes=1500000-1599999"]),
    "pending_tail": request(headers=["Range: bytes=1900000-999999999999"]),
    "pending_suffix": request(headers=["Range: bytes=-1000"]),
    "head_then_get": http_client("HEAD") + http_client(headers=["Range: bytes=0-9"]),
    "keepalive": http_client(headers=["Range: bytes=10-19"]) + http_client()
    + http_client(headers=["Range: bytes=-5"]),
    "pipeline": request(headers=["Range: bytes=0-99"]) + request(method="HEAD")
    + request(headers=["Range: bytes=5000-"])
    + request(headers=["Range: bytes=-3", "Connection: close"]),
    "bad_garbage": b"GARBAGE\r\n\r\n",
    "bad_no_host": b"GET / HTTP/1.1\r\n\r\n",
    "bad_no_colon": b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    "bad_space": b"GET / HTTP/1.1\r\nHost: x\r\nBad : space\r\n\r\n",
    "bad_431": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    "bad_505": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "bad_body": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "http10": request(version="HTTP/1.0", headers=["Range: bytes=1-4"]),
    "http10_keep": request(version="HTTP/1.0",
                           headers=["Connection: keep-alive", "Range: bytes=1-4"])
    + request(version="HTTP/1.0", headers=["Range: bytes=7-8"]),
    "many_from": request(headers=["Range: bytes=2900000-"]),
    # shapes the parser allows that the tests do not send
    "lf_only": b"\n\r\nGET http://h/?q HTTP/1.1\nhost: x\nrange: BYTES = 5 - 9 \n"
    b"if-range: x\nconnection: keep-alive, close\n\n",
    "range_max": request(headers=["Range: bytes=9223372036854775806-9223372036854775807"]),
    "range_over": request(headers=["Range: bytes=-9223372036854775808"]),
    "transfer_encoding": b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus_serve")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
