"""A server in a subprocess, started as a user starts it and waited for: benchmarks and tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ServerError(RuntimeError):
    """The server exited or did not serve in time; the message ends with its log's last lines."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    command: Sequence[str],
    log: Path,
    ready_url: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 120,
) -> subprocess.Popen:
    """``command`` logging to ``log``, once ``GET ready_url`` answers 200 (else ServerError)."""
    import httpx

    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    what = f"exited with {proc.returncode}" if proc.poll() is not None else "did not serve"
    stop(proc)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    name = " ".join([Path(command[0]).name, *command[1:3]])  # "python -m demo"
    raise ServerError(f"{name} {what} ({ready_url}, {timeout_s:.0f} s):\n{tail}")


def start_demo(
    flags: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 120,
) -> tuple[subprocess.Popen, str]:
    """``python -m demo FLAGS --port <free>`` logging to ``log``, once it serves: (process, url)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "demo", *flags, "--port", str(port)]
    proc = start_server(
        command, log, f"{url}gradio_api/info", env=env, cwd=cwd, timeout_s=timeout_s
    )
    return proc, url


def stop(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """SIGTERM (the demo then removes its temp folder), SIGKILL if it has not ended in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
