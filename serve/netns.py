"""A fresh network namespace with only loopback up, for running Ray where nothing may leave it.

Ray sends its internal traffic (GCS, raylet, workers) over the machine's own address even when
told ``--node-ip-address=127.0.0.1``. On a machine where that is not allowed (this one, and CI),
the tests and the load test run Ray and their clients inside a namespace made here, so every
packet stays on 127.0.0.1. Ray's daemons outlive the process group that started them, so
:meth:`LoopbackNamespace.close` ends every process still in the namespace, by PID.

Needs root (``unshare --net`` and ``nsenter``), as CI has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

RAY_DAEMONS = ("raylet", "gcs_server")


class NamespaceUnavailable(RuntimeError):
    """No network namespace could be made here (not root, or no unshare/nsenter/ip)."""


def _net_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:  # the process has gone, or is not ours to read
        return None


class LoopbackNamespace:
    """A network namespace held open by a sleeping process; run commands in it with :meth:`popen`.

    Use as a context manager: on exit every process left in the namespace is ended.
    """

    def __init__(self, start_timeout_s: float = 10.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.holder: subprocess.Popen | None = None
        self.ns: str | None = None

    def __enter__(self) -> LoopbackNamespace:
        script = "ip link set lo up && echo up && exec sleep infinity"
        try:
            self.holder = subprocess.Popen(
                ["unshare", "--net", "--", "sh", "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise NamespaceUnavailable("unshare is not installed (util-linux)") from e
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != b"up":
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.stderr else ""
            self.holder.kill()
            self.holder.wait()
            first = (err.strip().splitlines() or ["no output"])[0]
            raise NamespaceUnavailable(f"could not make a network namespace (root?): {first}")
        self.ns = _net_ns(self.holder.pid)
        if self.ns is None or self.ns == _net_ns("self"):
            self.close()
            raise NamespaceUnavailable("unshare --net did not give a new network namespace")
        log.info("loopback namespace %s held by pid %d", self.ns, self.holder.pid)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (nsenter execs it: the PID is the command's own)."""
        if self.holder is None:
            raise RuntimeError("the namespace is not open: use it as a context manager")
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        """Every process in the namespace, the holder excepted."""
        holder = self.holder.pid if self.holder else None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == holder:
                continue
            if _net_ns(entry.name) == self.ns:
                found.append(int(entry.name))
        return found

    def ray_daemons(self) -> list[tuple[int, str]]:
        """(pid, name) of every Ray daemon in the namespace: what must not outlive a run."""
        found = []
        for pid in self.pids():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name in RAY_DAEMONS:
                found.append((pid, name))
        return found

    def close(self, grace_s: float = 5.0) -> list[int]:
        """End every process in the namespace (SIGTERM, then SIGKILL); returns the PIDs ended."""
        ended = self.pids() if self.ns else []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids() if self.ns else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace_s
            while self.ns and self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None
        if ended:
            log.info("ended %d process(es) left in the namespace: %s", len(ended), ended)
        return ended
