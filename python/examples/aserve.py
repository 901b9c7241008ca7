#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Serve ranges of standard input, while it is still arriving, from one
asyncio thread: no thread per client, and no aiohttp.

    some-command | python3 python/examples/aserve.py [--port PORT]
    printf '1000 64\\n' | nc 127.0.0.1 PORT     # bytes [1000, 1064)

Each connection sends one line, "OFFSET SIZE" (SIZE -1: to the end), and
gets those bytes of the stream, then the connection closes.  A request for
bytes that have not arrived yet waits for them in `await buf.aread(...)`,
which parks on the buffer's poll descriptor, not on a thread.
"""
import argparse
import asyncio
import sys

import streambuffer


async def serve(buf: streambuffer.StreamBuffer, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        off, size = (int(x) for x in line.split())
        # Big ranges go out in pieces, so that a slow client holds at most
        # one piece of memory.
        end = None if size < 0 else off + size
        while end is None or off < end:
            n = 1 << 20 if end is None else min(1 << 20, end - off)
            piece = await buf.aread(off, n)
            if not piece:
                break
            writer.write(piece)
            await writer.drain()
            off += len(piece)
    except (ValueError, OSError, ConnectionError) as e:
        print(f"aserve: {e}", file=sys.stderr)
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    with streambuffer.StreamBuffer(sys.stdin.buffer) as buf:
        server = await asyncio.start_server(
            lambda r, w: serve(buf, r, w), "127.0.0.1", args.port)
        port = server.sockets[0].getsockname()[1]
        print(f"aserve: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
