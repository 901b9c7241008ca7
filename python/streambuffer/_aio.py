# SPDX-License-Identifier: MIT
"""aread: StreamBuffer.read and Reader.read for asyncio.

Private to the streambuffer package: the C extension imports it on the
first aread().

An aread that cannot be answered now parks on a non-blocking reader of the
library, armed for its range, and awaits a future; nothing holds a thread.
Per buffer and event loop, the loop watches the buffer's poll descriptor
(loop.add_reader) while at least one aread of that loop waits, and when it
is readable takes the ready readers off the buffer's list and resolves
their futures.  A ready reader can belong to another loop (one buffer, two
loops in two threads): its future is then resolved in its own loop with
call_soon_threadsafe.  Cancelling the awaiting task closes the reader,
which disarms it.
"""
import asyncio
import os
import threading
import weakref

__all__ = ["aread"]

# How many ready readers one call takes off the list.
_BATCH = 256

_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # buffer -> _Hub
_hubs_lock = threading.Lock()


class _Hub:
    """The waits on one buffer, and the loops that watch its descriptor."""

    def __init__(self, buf):
        self._buf = weakref.ref(buf)
        self._lock = threading.Lock()
        self._waits = {}  # armed reader -> (loop, future)
        self._fds = {}    # loop -> its dup of the poll descriptor

    def wait(self, reader, loop):
        fut = loop.create_future()
        with self._lock:
            self._waits[reader] = (loop, fut)
            watch = loop not in self._fds
            if watch:
                self._fds[loop] = -1
        if watch:
            try:
                fd = self._buf()._poll_fd()
                loop.add_reader(fd, self._ready, loop)
            except BaseException:
                with self._lock:
                    del self._fds[loop]
                    del self._waits[reader]
                raise
            with self._lock:
                self._fds[loop] = fd
        return fut

    def forget(self, reader, loop):
        with self._lock:
            self._waits.pop(reader, None)
            idle = not any(lp is loop for lp, _ in self._waits.values())
        if idle:
            self._unwatch(loop)

    def _unwatch(self, loop):
        with self._lock:
            fd = self._fds.get(loop, -1)
            if fd < 0:
                return
            del self._fds[loop]
        if not loop.is_closed():
            loop.remove_reader(fd)
        os.close(fd)

    def _ready(self, loop):
        buf = self._buf()
        try:
            while True:
                ready = buf._poll_ready(_BATCH) if buf is not None else None
                if ready is None:
                    raise ValueError("the buffer is gone")
                for r in ready:
                    self._wake(self._waits.get(r))
                if len(ready) < _BATCH:
                    break
        except ValueError:
            # Closed (close() woke the waits already, see _closed).
            self.closed()
            self._unwatch(loop)

    def closed(self):
        """The buffer was closed: its readers went off the ready list with
        it, so the descriptor says nothing more.  Every wait looks again,
        and gets the closed error."""
        with self._lock:
            waits = list(self._waits.values())
        for w in waits:
            self._wake(w)

    @staticmethod
    def _wake(w):
        if w is None:
            return
        loop, fut = w
        try:
            if loop is asyncio.get_running_loop():
                if not fut.done():
                    fut.set_result(None)
                return
        except RuntimeError:
            pass
        if not loop.is_closed():
            loop.call_soon_threadsafe(_settle, fut)


def _settle(fut):
    if not fut.done():
        fut.set_result(None)


def _answerable(probe, offset, size):
    try:
        return probe._arm(offset, size)
    except ValueError:
        if probe.closed:
            return True  # the buffer was closed: the read says so
        raise


def _closed(buf):
    """Called by StreamBuffer.close(): wake the areads waiting on buf."""
    with _hubs_lock:
        h = _hubs.get(buf)
    if h is not None:
        h.closed()


def _hub(buf):
    with _hubs_lock:
        h = _hubs.get(buf)
        if h is None:
            h = _hubs[buf] = _Hub(buf)
        return h


async def aread(src, offset, size=-1):
    """src.read(offset, size) without blocking the loop: src is a
    StreamBuffer or a Reader."""
    is_reader = type(src).__name__ == "Reader"
    buf = src.buffer if is_reader else src
    loop = asyncio.get_running_loop()
    if size is not None and size < 0:
        size = None
    if is_reader and offset < src.floor:
        return src.read(offset, size)  # raises OSError(ESPIPE) at once
    # Opening at offset raises what the read would for a range below the
    # floor (OSError ESPIPE), and the reader's floor pins nothing the read
    # does not need.
    probe = buf._nb_reader(offset)
    hub = None
    try:
        while (got := _answerable(probe, offset, size)) is False:
            if hub is None:
                hub = _hub(buf)
            fut = hub.wait(probe, loop)
            try:
                await fut
            finally:
                hub.forget(probe, loop)
    finally:
        probe.close()
    if isinstance(got, bytes):
        return got  # a buffer with parts: the probe was the read itself
    # Answerable now: the blocking read returns at once.
    return src.read(offset, -1 if size is None else size)
