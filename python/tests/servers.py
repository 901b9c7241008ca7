# SPDX-License-Identifier: MIT
"""Real HTTP servers on 127.0.0.1 for the from_url tests: Debian's nginx
with its own config in a temporary directory, and tests/http/faultserver.py
(the C tests' server that misbehaves on request).

Each runs under timeout -k, in its own process group, and is killed when
the fixture that started it ends, whatever the test did: a test never
leaves a server behind.  Every wait is a bounded loop on an event (a
response, a file written), never a sleep for its own sake.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAULT = os.path.join(ROOT, "tests", "http", "faultserver.py")

# The files served: deterministic bytes.
FILES = {"big.bin": (8 * 1024 * 1024 + 12345, 1), "small.bin": (1000, 2), "empty.bin": (0, 3)}


def file_bytes(name):
    size, seed = FILES[name]
    return random.Random(seed).randbytes(size)


def _nginx():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except Exception:
        return None


def _kill(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


class Servers:
    """nginx at .nginx (and /slow/ at 512 KiB/s a connection, /deny/
    403), the fault server at .fault, the files in .www."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sbpyhttp.")
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        os.makedirs(os.path.join(self.dir, "nginx", "tmp"))
        for name in FILES:
            with open(os.path.join(self.www, name), "wb") as f:
                f.write(file_bytes(name))
        self.procs = []
        self.nginx = self.fault = None

    def _spawn(self, argv, log):
        out = open(os.path.join(self.dir, log), "wb")
        p = subprocess.Popen(["timeout", "-k", "5", "600"] + argv, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs.append(p)
        return p

    def start(self):
        nginx = _nginx()
        if nginx is None:
            pytest.skip("nginx is missing (apt-get install nginx-light)")
        d = os.path.join(self.dir, "nginx")
        temps = "client_body_temp_path %s/tmp/body;" % d
        v = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
        for m in ("proxy", "fastcgi", "uwsgi", "scgi"):
            if "--without-http_%s_module" % m not in v:
                temps += " %s_temp_path %s/tmp/%s;" % (m, d, m)
        for _ in range(5):
            port = _free_port()
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write("""master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 256; }
http {
    access_log %(d)s/access.log;
    default_type application/octet-stream;
    %(temps)s
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
        location /slow/ { alias %(www)s/; limit_rate 512k; }
        location /deny/ { deny all; }
    }
}
""" % {"d": d, "temps": temps, "port": port, "www": self.www})
            p = self._spawn([nginx, "-p", d, "-c", d + "/nginx.conf", "-e", d + "/error.log",
                             "-g", "daemon off;"], "nginx.out")
            for _ in range(100):
                if _get("http://127.0.0.1:%d/small.bin" % port) == 200:
                    self.nginx = "http://127.0.0.1:%d" % port
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            if self.nginx:
                break
            _kill(p)
        if not self.nginx:
            raise RuntimeError("nginx did not start: " + self.log("nginx.out"))
        portfile = os.path.join(self.dir, "fault.port")
        p = self._spawn(["python3", FAULT, self.www, portfile], "fault.out")
        for _ in range(200):
            if os.path.exists(portfile) and os.path.getsize(portfile) > 0:
                break
            if p.poll() is not None:
                break
            time.sleep(0.05)
        with open(portfile) as f:
            self.fault = "http://127.0.0.1:%d" % int(f.read())
        return self

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return f.read()
        except OSError:
            return ""

    def requests(self, path):
        """Requests nginx logged for path so far."""
        return [line for line in self.log("nginx/access.log").splitlines()
                if ("GET %s " % path) in line]

    def stop(self):
        for p in self.procs:
            _kill(p)
        shutil.rmtree(self.dir, ignore_errors=True)
