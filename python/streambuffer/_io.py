# SPDX-License-Identifier: MIT
"""The file view of a StreamBuffer: what StreamBuffer.open() returns.

Private to the streambuffer package: the C extension imports it on the
first open().  In Python because a RawIOBase subclass is clearer here than
in C; every read still goes to the C module, which waits without the GIL.
"""
import io

__all__ = ["StreamRaw", "open_buffer"]


class StreamRaw(io.RawIOBase):
    """A raw, seekable binary file over a StreamBuffer, with its own position.

    Reads behave like read(2) on a pipe: they wait for the first byte and
    return what has arrived, so a line reader sees each line as it comes.
    Seeking never waits, except from the end (SEEK_END), which waits for
    the whole stream, unless the length is known (open_at, from_url).  With a Reader (release=True) it reads forward and
    releases what it has read: a seek below the floor makes the next read
    raise OSError(ESPIPE).
    """

    def __init__(self, buf, reader=None):
        super().__init__()
        self._buf = buf
        self._reader = reader
        self._pos = reader.floor if reader is not None else 0

    @property
    def buffer(self):
        return self._buf

    @property
    def name(self):
        return repr(self._buf)

    @property
    def mode(self):
        return "rb"

    def readable(self):
        self._checkClosed()
        return True

    def seekable(self):
        self._checkClosed()
        return True

    def readinto(self, b):
        self._checkClosed()
        if self._reader is None:
            n = self._buf.readinto1(self._pos, b)
        else:
            n = self._reader.readinto1(self._pos, b)
        self._pos += n
        if self._reader is not None and n:
            # The BufferedReader on top keeps its own copy of what it read.
            self._reader.release(self._pos)
        return n

    def readall(self):
        self._checkClosed()
        if self._reader is not None:
            return super().readall()
        data = self._buf.read(self._pos, -1)
        self._pos += len(data)
        return data

    def seek(self, offset, whence=io.SEEK_SET):
        self._checkClosed()
        offset = offset.__index__()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            # A ranged buffer (open_at, from_url) may know its length
            # long before the end arrives.
            length = self._buf.stats()["length"]
            pos = (self._buf.wait_end() if length is None else length) + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def tell(self):
        self._checkClosed()
        return self._pos

    def close(self):
        if not self.closed and self._reader is not None:
            self._reader.close()
        super().close()


def open_buffer(buf, buffering=-1):
    """StreamBuffer.open(): a BufferedReader (buffering negative:
    io.DEFAULT_BUFFER_SIZE), or the raw file for buffering=0."""
    reader = buf.reader() if buf.release else None
    raw = StreamRaw(buf, reader)
    if buffering == 0:
        return raw
    if buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    return io.BufferedReader(raw, buffering)
