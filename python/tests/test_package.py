# SPDX-License-Identifier: MIT
"""The package as a user meets it: its names, its version, the signatures
that inspect and help() show."""
import inspect
import pydoc
import re
import subprocess
import sys

import pytest

from conftest import PYDIR, subprocess_env

import streambuffer
from streambuffer import Reader, StreamBuffer

HEADER = PYDIR.parent / "include" / "streambuffer.h"


def public_methods(cls):
    """The methods a user calls: every public callable, and the two of the
    with statement."""
    return sorted(n for n in dir(cls)
                  if (not n.startswith("_") or n in ("__enter__", "__exit__"))
                  and callable(getattr(cls, n)))


def test_public_names():
    assert sorted(streambuffer.__all__) == [
        "DEFAULT_MAX_SIZE", "Reader", "StreamBuffer", "library_version"]
    for name in streambuffer.__all__:
        assert getattr(streambuffer, name) is getattr(streambuffer._streambuffer, name)
    assert StreamBuffer.__module__ == Reader.__module__ == "streambuffer"


def test_version_is_the_headers():
    """One place holds the version: SB_VERSION in the header, which the
    extension reports."""
    m = re.search(r'#define SB_VERSION "([^"]+)"', HEADER.read_text())
    assert streambuffer.__version__ == m.group(1) == streambuffer.library_version


def test_private_modules_live_in_the_package():
    with StreamBuffer(b"abcdef") as b:
        assert b.open().read() == b"abcdef"
        import asyncio
        assert asyncio.run(b.aread(1, 2)) == b"bc"
    assert "streambuffer._io" in sys.modules and "streambuffer._aio" in sys.modules
    assert not {"_streambuffer_io", "_streambuffer_aio"} & set(sys.modules)
    assert streambuffer._streambuffer.__name__ == "streambuffer._streambuffer"


CONSTRUCTOR = ["stream", "size", "max_size", "mem_limit", "limit", "tmp_dir",
               "chunk_size", "read_ahead", "max_retained", "release", "mmap_reads",
               "open_at", "max_parts", "seek_gap", "retries"]
FROM_URL = ["url", "headers", "max_size", "mem_limit", "limit", "tmp_dir", "chunk_size",
            "read_ahead", "max_retained", "release", "mmap_reads", "max_parts",
            "seek_gap", "retries"]


def test_constructor_signature():
    sig = inspect.signature(StreamBuffer)
    assert list(sig.parameters) == CONSTRUCTOR
    p = sig.parameters
    assert p["stream"].default is inspect.Parameter.empty
    assert p["max_size"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p[n].kind is inspect.Parameter.KEYWORD_ONLY for n in CONSTRUCTOR[3:])
    assert p["release"].default is False and p["mmap_reads"].default is True
    assert all(p[n].default is None for n in CONSTRUCTOR[11:])


def test_from_url_signature():
    """A classmethod: the options are the constructor's, keyword-only,
    after url and headers."""
    sig = inspect.signature(StreamBuffer.from_url)
    assert list(sig.parameters) == FROM_URL
    p = sig.parameters
    assert p["url"].default is inspect.Parameter.empty
    assert p["headers"].default is None
    assert all(p[n].kind is inspect.Parameter.KEYWORD_ONLY for n in FROM_URL[2:])
    # Bound to the class it is called on, as a classmethod is.
    class Sub(StreamBuffer):
        pass
    assert StreamBuffer.from_url.__self__ is StreamBuffer
    assert Sub.from_url.__self__ is Sub


# Each public method's parameters after self, as inspect reports them.
SIGNATURES = {
    "read": "(offset, size=-1)", "aread": "(offset, size=-1)",
    "view": "(offset, size=-1)", "readinto": "(offset, buffer)",
    "readinto1": "(offset, buffer)", "wait_end": "()", "is_exhausted": "()",
    "cancel": "()", "close": "()", "open": "(buffering=-1)",
    "reader": "(floor=None)", "stats": "()", "release": "(floor, /)",
    "__enter__": "()", "__exit__": "(*exc_info)",
}


@pytest.mark.parametrize("cls", [StreamBuffer, Reader])
def test_every_method_has_a_signature(cls):
    methods = [n for n in public_methods(cls) if n != "from_url"]  # a classmethod
    assert "read" in methods and "close" in methods
    for name in methods:
        sig = inspect.signature(getattr(cls, name))
        assert next(iter(sig.parameters)) == "self", name
        assert name in SIGNATURES, f"{cls.__name__}.{name}: add it to SIGNATURES"
        # bound: what a caller of buf.name(...) sees
        with StreamBuffer(b"abc") as b:
            obj = b if cls is StreamBuffer else b.reader()
            assert str(inspect.signature(getattr(obj, name))) == SIGNATURES[name], name
            if cls is Reader:
                obj.close()


def test_help_shows_the_parameters():
    text = pydoc.render_doc(StreamBuffer, renderer=pydoc.plaintext)
    assert (" |  StreamBuffer(stream, size=None, max_size=None, *, mem_limit=None, "
            "limit=None, tmp_dir=None, chunk_size=None, read_ahead=None, "
            "max_retained=None, release=False, mmap_reads=True, open_at=None, "
            "max_parts=None, seek_gap=None, retries=None)\n") in text
    assert "from_url(url, headers=None, *, max_size=None" in text
    for line in ("read(self, /, offset, size=-1)", "readinto(self, /, offset, buffer)",
                 "open(self, /, buffering=-1)", "reader(self, /, floor=None)"):
        assert line in text, line
    text = pydoc.render_doc(Reader, renderer=pydoc.plaintext)
    assert "release(self, floor, /)" in text and "view(self, /, offset, size=-1)" in text


# --- Types -----------------------------------------------------------------
# mypy comes from Debian's python3-mypy (tests/deps.sh); its cache goes to
# a temporary directory, not the tree.

def run_mypy(tmp_path, *args):
    env = dict(subprocess_env(), MYPYPATH=str(PYDIR))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def test_stubs_match_the_extension(tmp_path):
    """stubtest: every name, argument and default of __init__.pyi against
    the built module, with no allowlist."""
    p = run_mypy(tmp_path, "-m", "mypy.stubtest", "streambuffer")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Success" in p.stdout


def test_examples_and_typed_usage_pass_mypy_strict(tmp_path):
    p = run_mypy(tmp_path, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                 str(PYDIR / "tests" / "typed_usage.py"),
                 *map(str, sorted((PYDIR / "examples").glob("*.py"))))
    assert p.returncode == 0, p.stdout + p.stderr


def test_typed_usage_runs():
    """The typed snippet is real code: it runs, so every call it shows works."""
    p = subprocess.run([sys.executable, str(PYDIR / "tests" / "typed_usage.py")],
                       capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr
