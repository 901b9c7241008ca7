# SPDX-License-Identifier: MIT
# The package's types, checked against the built extension by
# `python3 -m mypy.stubtest streambuffer` (make python-test).
import io
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from types import TracebackType
from typing import Literal, TypedDict, final, overload

from _typeshed import ReadableBuffer, WriteableBuffer
from typing_extensions import Self

__version__: str
library_version: str
DEFAULT_MAX_SIZE: int

__all__ = ["DEFAULT_MAX_SIZE", "Reader", "StreamBuffer", "library_version"]

# What StreamBuffer drains: bytes (read in place), another bytes-like
# object (copied once), a binary file, or an iterable of bytes-like chunks.
_Source = ReadableBuffer | io.RawIOBase | io.BufferedIOBase | Iterable[ReadableBuffer]

# What open_at(offset, end) returns: a part of the stream from offset.
_Part = ReadableBuffer | io.RawIOBase | io.BufferedIOBase | Iterable[ReadableBuffer]

class _Stats(TypedDict):
    filled: int
    in_memory: int
    spilled: int
    publishes: int
    waiting: int
    wakeups: int
    state: Literal["running", "ended", "failed"]
    error: int | None
    floor: int
    demand: int | float | None
    released: int
    pauses: int
    paused_ns: int
    readers: int
    huge_pages: int
    paused: bool
    parts_opened: int
    parts_active: int
    fetched: int
    refetched: int
    extents: int
    length: int | None
    seek_gap: int
    parts_moved: int
    part_retries: int

class StreamBuffer:
    def __init__(
        self,
        stream: _Source | None,
        size: int | None = None,
        max_size: int | None = None,
        *,
        mem_limit: int | None = None,
        limit: int | None = None,
        tmp_dir: str | bytes | PathLike[str] | PathLike[bytes] | None = None,
        chunk_size: int | None = None,
        read_ahead: int | None = None,
        max_retained: int | None = None,
        release: bool = False,
        mmap_reads: bool = True,
        open_at: Callable[[int, int | None], _Part] | None = None,
        max_parts: int | None = None,
        seek_gap: int | None = None,
        retries: int | None = None,
    ) -> None: ...
    @classmethod
    def from_url(
        cls,
        url: str,
        headers: Mapping[str, str] | Iterable[str] | None = None,
        *,
        max_size: int | None = None,
        mem_limit: int | None = None,
        limit: int | None = None,
        tmp_dir: str | bytes | PathLike[str] | PathLike[bytes] | None = None,
        chunk_size: int | None = None,
        read_ahead: int | None = None,
        max_retained: int | None = None,
        release: bool = False,
        mmap_reads: bool = True,
        max_parts: int | None = None,
        seek_gap: int | None = None,
        retries: int | None = None,
    ) -> Self: ...
    @property
    def stream(self) -> object: ...
    @property
    def size(self) -> int | None: ...
    @property
    def max_size(self) -> int: ...
    @property
    def mem_limit(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def read_ahead(self) -> int: ...
    @property
    def max_retained(self) -> int: ...
    @property
    def release(self) -> bool: ...
    @property
    def mmap_reads(self) -> bool: ...
    @property
    def max_parts(self) -> int: ...
    @property
    def seek_gap(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def stream_index(self) -> int: ...
    @property
    def floor(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def exception(self) -> BaseException | None: ...
    def read(self, offset: int, size: int | None = -1) -> bytes: ...
    def readinto(self, offset: int, buffer: WriteableBuffer) -> int: ...
    def readinto1(self, offset: int, buffer: WriteableBuffer) -> int: ...
    def view(self, offset: int, size: int | None = -1) -> memoryview: ...
    async def aread(self, offset: int, size: int | None = -1) -> bytes: ...
    def wait_end(self) -> int: ...
    def is_exhausted(self) -> bool: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...
    # buffering=0 is the raw file, any other a BufferedReader (as io.open):
    # mypy calls the overlap of 0 and int unsafe, which is the point.
    @overload
    def open(self, buffering: Literal[0]) -> io.RawIOBase: ...  # type: ignore[misc]
    @overload
    def open(self, buffering: int = -1) -> io.BufferedReader: ...
    def reader(self, floor: int | None = None) -> Reader: ...
    def stats(self) -> _Stats: ...
    def __getitem__(self, key: slice | tuple[int | None, int | None] | list[int | None]) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> Literal[False]: ...

@final
class Reader:
    @property
    def floor(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def buffer(self) -> StreamBuffer: ...
    def read(self, offset: int, size: int | None = -1) -> bytes: ...
    def readinto(self, offset: int, buffer: WriteableBuffer) -> int: ...
    def readinto1(self, offset: int, buffer: WriteableBuffer) -> int: ...
    def view(self, offset: int, size: int | None = -1) -> memoryview: ...
    async def aread(self, offset: int, size: int | None = -1) -> bytes: ...
    def release(self, floor: int, /) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> Literal[False]: ...
