# SPDX-License-Identifier: MIT
"""The build of the streambuffer package (pyproject.toml has its metadata).

The extension, streambuffer._streambuffer, is compiled from the module's
sources (src/) and the C library's own (its src/*.c and src/*.h and
include/streambuffer.h), so a wheel needs nothing installed and exports
only PyInit__streambuffer.  Where the library's sources are:

  - in a checkout, python/'s parent: ../src and ../include;
  - in an sdist, lib/src and lib/include: the sdist command below copies
    them there, so that an unpacked sdist builds with no checkout around it.

The version lives in one place, SB_VERSION in include/streambuffer.h, and
is read from there.  Offline: python3 -m build --no-isolation (Debian:
python3-build, python3-wheel); see the README.
"""
import glob
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
# Relative to HERE, where every build runs: setuptools wants relative paths.
LIB = "lib" if os.path.exists(os.path.join(HERE, "lib", "include", "streambuffer.h")) else ".."
HEADER = os.path.join(LIB, "include", "streambuffer.h")
if not os.path.exists(os.path.join(HERE, HEADER)):
    raise SystemExit("setup.py: the C library's sources are missing: build from a "
                     "checkout of streambuffer (python/ beside include/ and src/) "
                     "or from its sdist")

with open(os.path.join(HERE, HEADER)) as f:
    VERSION = re.search(r'#define SB_VERSION "([^"]+)"', f.read()).group(1)


def here(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


LIB_SOURCES = here(os.path.join(LIB, "src", "*.c"))
LIB_HEADERS = here(os.path.join(LIB, "src", "*.h")) + [HEADER]
MODULE_SOURCES = here(os.path.join("src", "*.c"))
MODULE_HEADERS = here(os.path.join("src", "*.h"))
# The HTTP source (StreamBuffer.from_url): always in the sdist, compiled
# where libcurl's development files are (pkg-config libcurl; Debian:
# libcurl4-openssl-dev); without them from_url raises OSError(ENOSYS).
HTTP_SOURCES = here(os.path.join(LIB, "src", "http", "*.c"))
HTTP_HEADERS = here(os.path.join(LIB, "src", "http", "*.h")) + \
    [os.path.join(LIB, "include", "streambuffer_http.h")]


def libcurl():
    """libcurl's compile and link flags, or None."""
    try:
        out = [subprocess.run(["pkg-config", arg, "libcurl"], capture_output=True,
                              text=True, check=True).stdout.split()
               for arg in ("--cflags", "--libs")]
    except (OSError, subprocess.CalledProcessError):
        return None
    return out


CURL = libcurl()

# The flags of the Makefile's build: C11 with the GNU extensions the
# library uses (O_TMPFILE, MADV_*), nothing visible outside the module.
LIB_FLAGS = ["-std=c11", "-D_GNU_SOURCE", "-fvisibility=hidden"]
MODULE_FLAGS = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wconversion"]


class BuildExt(build_ext):
    """Compiles every source, the library's and the module's, at once (a
    process per core): setuptools would compile one extension's sources
    one after another, and these are two dozen files."""

    def build_extension(self, ext):
        out = os.path.join(self.build_temp, "streambuffer")
        os.makedirs(out, exist_ok=True)
        inc = [f"-I{d}" for d in [os.path.join(LIB, "include"), "src",
                                  *self.compiler.include_dirs]]
        jobs = [(src, os.path.join(out, "lib_" + os.path.basename(src)[:-2] + ".o"), LIB_FLAGS)
                for src in LIB_SOURCES]
        module_flags = MODULE_FLAGS
        if CURL is not None:
            cflags = CURL[0]
            jobs += [(src, os.path.join(out, "http_" + os.path.basename(src)[:-2] + ".o"),
                      LIB_FLAGS + cflags) for src in HTTP_SOURCES]
            module_flags = MODULE_FLAGS + ["-DSB_PY_HTTP"] + cflags
        jobs += [(src, os.path.join(out, os.path.basename(src)[:-2] + ".o"), module_flags)
                 for src in MODULE_SOURCES]
        headers = LIB_HEADERS + MODULE_HEADERS + HTTP_HEADERS
        newest = max(os.path.getmtime(h) for h in headers)

        def compile_one(job):
            src, obj, flags = job
            if self.force or not os.path.exists(obj) or \
                    os.path.getmtime(obj) < max(newest, os.path.getmtime(src)):
                self.compiler.spawn(self.compiler.compiler_so + inc + flags
                                    + ["-c", src, "-o", obj])
            return obj

        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            objects = list(pool.map(compile_one, jobs))
        # The library marks its sb_* functions visible (for its shared
        # library): the module exports its init function and nothing else,
        # so that it never clashes with an installed libstreambuffer.
        script = os.path.join(out, "exports.map")
        with open(script, "w") as f:
            f.write("{ global: PyInit__streambuffer; local: *; };\n")
        # setuptools links them; its own compile step has nothing left to do.
        ext.sources, ext.extra_objects = [], objects
        ext.extra_link_args = [f"-Wl,--version-script={script}"] + \
            (CURL[1] if CURL is not None else [])
        super().build_extension(ext)


class SdistWithLibrary(sdist):
    """Puts the library's sources (and the license) into the sdist under
    lib/, where setup.py looks when there is no checkout around it."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if LIB == "lib":
            return  # an sdist of an sdist: MANIFEST.in took lib/ along
        for rel in LIB_SOURCES + LIB_HEADERS + HTTP_SOURCES + HTTP_HEADERS:
            dst = os.path.join(base_dir, "lib", os.path.relpath(rel, LIB))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(HERE, rel), dst)
        if os.path.exists(os.path.join(HERE, "..", "LICENSE")):
            shutil.copy2(os.path.join(HERE, "..", "LICENSE"), os.path.join(base_dir, "LICENSE"))


setup(
    version=VERSION,
    ext_modules=[Extension(
        "streambuffer._streambuffer",
        sources=MODULE_SOURCES,
        libraries=["pthread"],
        depends=LIB_SOURCES + LIB_HEADERS + MODULE_HEADERS + HTTP_SOURCES + HTTP_HEADERS,
    )],
    cmdclass={"build_ext": BuildExt, "sdist": SdistWithLibrary},
)
