"""A `perpeft serve` on a free loopback port for the reliability scripts (load.py,
schema_fuzz.py, crash.py): started on a runs root with a fixed bearer token, waited for until
/api/health answers, stopped with SIGTERM (SIGKILL after 10 s) when the `with` block ends."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
# the binary under test (PERPEFT_BIN: another build, e.g. an older commit's, to compare)
BIN = Path(os.environ.get("PERPEFT_BIN", TARGET / "release" / "perpeft"))
DATA = os.environ.get("PERPEFT_DATA_DIR", str(ROOT / ".cache/data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, headers=None):
    """Status, headers and JSON body of a request (an HTTP error is an answer, not a raise)."""
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


class Server:
    """`with Server(runs, token, log) as s:` serves `runs`; `s.base` is its URL, `s.pid` its pid."""

    def __init__(self, runs: Path, token: str, log: Path, rust_log: str = "warn", port: int = 0):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [str(BIN), "serve", "--runs", str(runs), "--port", str(self.port), "--device", "flex",
                "--data-dir", DATA]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, PERPEFT_TOKEN=token, RUST_LOG=rust_log),
                                     stdout=subprocess.DEVNULL, stderr=open(log, "a"))
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                if http("GET", f"{self.base}/api/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"the server did not start: see {log}")
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL, as a crash would."""
        self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()
