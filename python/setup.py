# SPDX-License-Identifier: MIT
"""pip install --no-build-isolation ./python (from a checkout, offline).

Builds the library's static archive with the repository's Makefile
(build/libstreambuffer.a, position-independent) and links the module
against it; the extension, streambuffer._streambuffer, exports only
PyInit__streambuffer.
"""
import glob
import os
import re
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADER = os.path.join(ROOT, "include", "streambuffer.h")
ARCHIVE = os.path.join(ROOT, "build", "libstreambuffer.a")

if not os.path.exists(HEADER):
    raise SystemExit("setup.py: build from a checkout of streambuffer "
                     "(python/ needs ../include and ../src)")

with open(HEADER) as f:
    VERSION = re.search(r'#define SB_VERSION "([^"]+)"', f.read()).group(1)


class BuildWithLibrary(build_ext):
    def run(self):
        subprocess.check_call(["make", "-C", ROOT, "build/libstreambuffer.a"])
        super().run()


setup(
    name="streambuffer",
    version=VERSION,
    description="Many threads, one byte stream, random access "
                "(a drop-in for buffer.StreamBuffer)",
    license="MIT",
    packages=["streambuffer"],
    ext_modules=[Extension(
        "streambuffer._streambuffer",
        sources=sorted(os.path.relpath(p, HERE)
                       for p in glob.glob(os.path.join(HERE, "src", "*.c"))),
        include_dirs=[os.path.join(ROOT, "include"), os.path.join(HERE, "src")],
        extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra",
                            "-Wconversion"],
        extra_objects=[ARCHIVE],
        extra_link_args=["-Wl,--exclude-libs,ALL"],
        libraries=["pthread"],
        depends=[HEADER, ARCHIVE, os.path.join(HERE, "src", "common.h")],
    )],
    cmdclass={"build_ext": BuildWithLibrary},
    python_requires=">=3.8",
)
