# SPDX-License-Identifier: MIT
"""Many threads, one byte stream, random access: the C library streambuffer
for Python.

    from streambuffer import StreamBuffer    # was: from buffer import StreamBuffer

StreamBuffer(stream, size) drains stream (bytes, an iterable of bytes-like
chunks, or a binary file) on a background thread into memory, then a
temporary file; read(offset, size) from any number of threads waits only
for the bytes it asks for.  The work is done by the C extension,
streambuffer._streambuffer; this package names what is public.
"""
from ._streambuffer import (
    DEFAULT_MAX_SIZE,
    Reader,
    StreamBuffer,
    __version__,
    library_version,
)

__all__ = ["DEFAULT_MAX_SIZE", "Reader", "StreamBuffer", "library_version"]
