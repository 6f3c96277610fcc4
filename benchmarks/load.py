"""A bounded HTTP load on 127.0.0.1: a fixed number of requests at a fixed concurrency.

Each target is a coroutine that sends one photo and says whether the answer was right in form
(a label came back). Gradio targets speak Gradio's plain REST protocol, as ``curl`` would:
upload the file, ``POST /gradio_api/call/<api>``, then read the result's event stream.
The server's CPU time is read from ``/proc`` for the processes the caller names.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np

Send = Callable[[aiohttp.ClientSession, bytes], Awaitable[bool]]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadResult:
    """One (target, concurrency) run."""

    target: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    server_cpu_ms_per_request: float | None
    #: The load client's own CPU (this process), which shares the machine with the server.
    client_cpu_ms_per_request: float
    #: Server CPU per request by process (Ray's actors by their title, others by command name).
    server_cpu_by_process: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def serve_sender(base: str) -> Send:
    """``POST /predict`` with the raw bytes (``python -m serve``)."""

    async def send(session: aiohttp.ClientSession, data: bytes) -> bool:
        headers = {"Content-Type": "image/jpeg"}
        async with session.post(f"{base}/predict", data=data, headers=headers) as r:
            return r.status == 200 and "label" in await r.json()

    return send


def gradio_sender(base: str, api_name: str, extra: Sequence = ()) -> Send:
    """Upload, call ``api_name`` with the file (and ``extra`` inputs), read the event stream."""

    async def send(session: aiohttp.ClientSession, data: bytes) -> bool:
        form = aiohttp.FormData()
        form.add_field("files", data, filename="note.jpg", content_type="image/jpeg")
        async with session.post(f"{base}/gradio_api/upload", data=form) as r:
            if r.status != 200:
                return False
            (path,) = await r.json()
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, *extra]}
        async with session.post(f"{base}/gradio_api/call/{api_name}", json=payload) as r:
            if r.status != 200:
                return False
            event_id = (await r.json())["event_id"]
        async with session.get(f"{base}/gradio_api/call/{api_name}/{event_id}") as r:
            text = await r.text()
        return _sse_complete(text)

    return send


def _sse_complete(text: str) -> bool:
    """True when a Gradio event stream ends in ``event: complete`` with a non-null result."""
    event = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "complete":
            return json.loads(line.split(":", 1)[1]) is not None
    return False


def cpu_by_process(pids: Sequence[int]) -> dict[str, float]:
    """User + system CPU seconds so far per process name (Ray's ``ray::Actor`` title, else the
    command); processes that have gone count 0."""
    totals: dict[str, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        name = _process_name(argv)
        totals[name] = totals.get(name, 0.0) + ticks / TICKS
    return totals


def _process_name(argv: Sequence[bytes]) -> str:
    first = argv[0].decode(errors="replace") if argv else "?"
    if first.startswith("ray::"):
        return first.split()[0]  # ray::ServeReplica:app:deployment, ray::ProxyActor, ...
    if Path(first).name.startswith("python"):  # python -m serve, Ray's Python agents
        args = [a.decode(errors="replace") for a in argv[1:] if a]
        if args[:1] == ["-m"] and len(args) > 1:
            return f"python -m {args[1]}"
        scripts = [Path(a).name for a in args if a.endswith(".py")]
        return f"python {scripts[0]}" if scripts else "python"
    return Path(first).name  # raylet, gcs_server, haproxy


async def run_load(
    target: str,
    send: Send,
    photos: Sequence[bytes],
    *,
    concurrency: int,
    requests: int,
    server_pids: Callable[[], Sequence[int]] | None = None,
    timeout_s: float = 30.0,
) -> LoadResult:
    """``requests`` requests, ``concurrency`` at a time, cycling through ``photos``."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for i in counter:
            start = time.perf_counter()
            try:
                ok = await send(session, photos[i % len(photos)])
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    pids = list(server_pids()) if server_pids else []
    before = cpu_by_process(pids)
    client_before = time.process_time()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    client = time.process_time() - client_before
    cpu, by_process = None, {}
    if server_pids:  # processes started during the run count from their birth
        after = cpu_by_process(sorted(set(pids) | set(server_pids())))
        spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
        by_process = {k: 1e3 * v / requests for k, v in spent.items() if v > 0}
        cpu = sum(spent.values())
    ms = np.asarray(latencies) * 1e3
    return LoadResult(
        target=target,
        concurrency=concurrency,
        requests=requests,
        errors=errors,
        seconds=seconds,
        requests_per_s=requests / seconds,
        p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)),
        server_cpu_ms_per_request=None if cpu is None else 1e3 * cpu / requests,
        client_cpu_ms_per_request=1e3 * client / requests,
        server_cpu_by_process=dict(sorted(by_process.items(), key=lambda kv: -kv[1])),
    )
