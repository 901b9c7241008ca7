# SPDX-License-Identifier: MIT
"""Shared fixtures, and the counts that python/run-tests.sh reports."""
import os
import pathlib
import random
import sys
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
PYDIR = HERE.parent

# The seed's test file (buffers-rs' test.txt): lines "0\n1\n...", 20 bytes.
SEED_FILE = HERE / "test.txt"


def pattern(n, seed=1):
    """n deterministic bytes, different at every offset that matters."""
    return random.Random(seed).randbytes(n)


def chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


class Gate:
    """An iterator that yields its chunks only as the test lets it."""

    def __init__(self, items):
        self.items = list(items)
        self.pulled = 0
        self.cond = threading.Condition()
        self.allowed = 0
        self.closed = False

    def allow(self, n=1):
        with self.cond:
            self.allowed += n
            self.cond.notify_all()

    def allow_all(self):
        self.allow(len(self.items) + 1)

    def __iter__(self):
        return self

    def __next__(self):
        with self.cond:
            while self.allowed <= self.pulled and not self.closed:
                self.cond.wait(0.05)
            if self.closed or self.pulled >= len(self.items):
                raise StopIteration
            item = self.items[self.pulled]
            self.pulled += 1
            return item

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def wait_until(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYDIR) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def gate():
    gates = []

    def make(items):
        g = Gate(items)
        gates.append(g)
        return g

    yield make
    for g in gates:
        g.close()


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("SB_PY_COUNTS")
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if not out or tr is None:
        return
    stats = tr.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = len(stats.get("skipped", []))
    with open(out, "w") as f:
        f.write(f"{passed} {failed} {skipped}\n")


sys.path.insert(0, str(HERE))
