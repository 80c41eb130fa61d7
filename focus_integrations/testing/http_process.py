"""Run a server process on loopback for tests and benchmarks: start it, wait until it answers, stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def http_process(
    command: Sequence[str], health_url: str, *, env: dict[str, str] | None = None, timeout: float = 180.0
) -> Iterator[subprocess.Popen]:
    """Run ``command``; yield the process once ``health_url`` answers 200; SIGTERM (then SIGKILL) after.

    The process's output goes to a temporary log, quoted in the error if it exits or never answers.
    """
    import httpx

    with tempfile.NamedTemporaryFile(prefix="focus-process-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{command[:4]} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{health_url} did not answer in {timeout} s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log_path.unlink(missing_ok=True)
