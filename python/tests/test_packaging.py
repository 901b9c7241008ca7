# SPDX-License-Identifier: MIT
"""The package as it ships: the sdist holds every C source and builds with
no checkout around it, and each offline install line of the README's
Python section is run here, as written, in a copy of the checkout.  The
builds are shared (one module-scoped fixture) and the installs run side by
side, so that the whole costs about two builds."""
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

from conftest import PYDIR

ROOT = PYDIR.parent
README = ROOT / "README.md"
VERSION = re.search(r'#define SB_VERSION "([^"]+)"',
                    (ROOT / "include" / "streambuffer.h").read_text()).group(1)

# The seed README's example (requests swapped for urllib, which every
# interpreter has), against a local server: run by each installed copy.
SEED = textwrap.dedent('''
    import http.server, random, sys, threading
    from urllib.request import urlopen

    from streambuffer import StreamBuffer
    import streambuffer

    assert streambuffer.__file__.startswith(sys.argv[1]), streambuffer.__file__
    BODY = random.Random(7).randbytes(64 * 1024)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    BIG_FILE = f"http://127.0.0.1:{srv.server_address[1]}/"
    LEN_KEY = "Content-Length"
    KB = 1_024
    START = 0

    with urlopen(BIG_FILE) as response:
        length = int(response.headers[LEN_KEY])
        stream = iter(lambda: response.read(KB), b"")
        buffer = StreamBuffer(stream, length)
        first_kb = buffer.read(START, size=KB)
        arbitrary_kb = buffer.read(20 * KB, size=KB)
        first_again = buffer.read(START, size=KB)
        assert first_again == first_kb == BODY[:KB]
        assert arbitrary_kb == BODY[20 * KB:21 * KB]
        buffer.close()
    # from_url is built in (libcurl): the server is HTTP/1.0 without
    # ranges, so the buffer reads it as one plain stream.
    with StreamBuffer.from_url(BIG_FILE) as buffer:
        assert buffer.read(60 * KB, size=KB) == BODY[60 * KB:61 * KB]
        assert buffer.read(0) == BODY
    srv.shutdown()
    print(streambuffer.__version__)
''')


def offline_lines():
    """The README's offline install block: the sh block after the line
    that says make python-test runs it."""
    text = README.read_text()
    m = re.search(r"runs each of\s+these lines[^`]*```sh\n(.*?)```", text, re.S)
    assert m, "README.md: the offline install block is gone"
    lines = [ln.split("  #")[0].strip() for ln in m.group(1).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def as_shell(line):
    """The line for sh, with python3 the interpreter of this run."""
    return re.sub(r"(?<![\w/.-])python3(?= )", sys.executable, line)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A copy of the checkout, the README's lines run in it: the first (the
    build) alone, the installs side by side with the second wheel, built
    from the unpacked sdist in a directory of its own."""
    top = tmp_path_factory.mktemp("ship")
    tree = top / "checkout"
    skip = shutil.ignore_patterns("*.so", "build", "dist", "*.egg-info", "__pycache__",
                                  ".mypy_cache")
    for part in ["include", "src", "python"]:
        shutil.copytree(ROOT / part, tree / part, ignore=skip)
    shutil.copy(ROOT / "LICENSE", tree / "LICENSE")
    lines = offline_lines()
    assert lines[0].startswith("python3 -m build "), lines[0]

    def sh(line, cwd):
        return subprocess.Popen(["sh", "-ec", as_shell(line)], cwd=cwd, env=clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(p):
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
        return out

    build_log = wait(sh(lines[0], tree))
    sdists = list((tree / "dist").glob("*.tar.gz"))
    assert [p.name for p in sdists] == [f"streambuffer-{VERSION}.tar.gz"], build_log
    alone = top / "alone"
    alone.mkdir()
    with tarfile.open(sdists[0]) as t:
        t.extractall(alone)
    src = alone / f"streambuffer-{VERSION}"
    procs = [sh(f"python3 -m build --no-isolation --wheel --outdir {top / 'dist2'} .", src)]
    procs += [sh(line, tree) for line in lines[1:]]
    logs = [wait(p) for p in procs]
    return {"tree": tree, "top": top, "sdist": sdists[0], "alone": src,
            "build_log": build_log, "logs": logs, "lines": lines}


def test_readme_lines_are_the_expected_installs(shipped):
    """The block holds the build and the three installs that the tests
    below check (a venv, --target, a venv that sees the system's packages)."""
    lines = shipped["lines"]
    assert len(lines) == 4
    assert "venv venv" in lines[1] and "--target site" in lines[2]
    assert "--system-site-packages" in lines[3] and "sysvenv" in lines[3]


def test_sdist_holds_every_c_source(shipped):
    with tarfile.open(shipped["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    want = {f"lib/src/{p.name}" for p in (ROOT / "src").iterdir()
            if p.suffix in (".c", ".h")}
    want |= {"lib/include/streambuffer.h", "LICENSE", "README.md", "pyproject.toml",
             "setup.py", "PKG-INFO", "streambuffer/__init__.pyi", "streambuffer/py.typed"}
    want |= {f"src/{p.name}" for p in (PYDIR / "src").iterdir()}
    assert want <= names, sorted(want - names)
    assert not any(n.endswith((".so", ".o")) for n in names)


def test_wheels_from_the_sdist(shipped):
    """build made its wheel from the unpacked sdist, and a second build in
    a directory with no checkout around it makes the same wheel."""
    assert "Building wheel from sdist" in shipped["build_log"]
    assert not (shipped["alone"].parent / "include").exists()
    first = list((shipped["tree"] / "dist").glob("*.whl"))
    second = list((shipped["top"] / "dist2").glob("*.whl"))
    assert len(first) == len(second) == 1 and first[0].name == second[0].name
    with zipfile.ZipFile(first[0]) as a, zipfile.ZipFile(second[0]) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        names = a.namelist()
        meta = a.read(f"streambuffer-{VERSION}.dist-info/METADATA").decode()
    for want in ("streambuffer/__init__.py", "streambuffer/__init__.pyi",
                 "streambuffer/py.typed", "streambuffer/_io.py", "streambuffer/_aio.py"):
        assert want in names
    assert any(re.match(r"streambuffer/_streambuffer\..*\.so$", n) for n in names)
    assert f"Version: {VERSION}\n" in meta and "Requires-Python: >=3.10\n" in meta
    assert "License: MIT\n" in meta


def run_seed(python, where, **env):
    p = subprocess.run([str(python), "-c", SEED, str(where)], capture_output=True,
                       text=True, env=clean_env(**env), cwd="/", timeout=60)
    assert p.returncode == 0 and p.stdout == VERSION + "\n", p.stderr


def test_wheel_in_a_plain_venv(shipped):
    venv = shipped["tree"] / "venv"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    run_seed(venv / "bin" / "python", venv)


def test_wheel_with_target(shipped):
    site = shipped["tree"] / "site"
    run_seed(sys.executable, site, PYTHONPATH=str(site))


def test_wheel_in_a_venv_with_system_site_packages(shipped):
    venv = shipped["tree"] / "sysvenv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    run_seed(venv / "bin" / "python", venv)
