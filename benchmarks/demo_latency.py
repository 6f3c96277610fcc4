"""Latency of the demo's ``/classify`` as a caller sees it: one photo, through ``gradio_client``.

Starts ``python -m demo --cpu-only`` on a free localhost port (or uses ``--url``), sends the
same photo ``--requests`` times at the page's default number of timed runs (every CPU variant:
PyTorch eager and ONNX Runtime, unfolded and folded), and reports the round-trip p50/p90. For
scale it also times the same work in-process (decode + all variants + the float64 reference),
so the difference is what Gradio and HTTP add. Target: p50 <= 250 ms on the 2-core dev machine.

The client is made with ``ssl_verify=False``: the URL is plain http on 127.0.0.1 (no TLS to
verify), and with verification on, gradio_client loads the CA bundle for each of the three HTTP
clients it opens per call, ~95 ms of client CPU per request that says nothing about the demo.
Both figures are reported.

Run: ``python -m benchmarks.demo_latency`` (after ``make export``); writes
``artifacts/bench/demo_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from export.runtimes.timing import Samples, summarise

TARGET_P50_MS = 250.0


def get_args_parser() -> argparse.ArgumentParser:
    from demo.artifacts import add_artifact_flags

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_latency",
        description="Round-trip latency of /classify through gradio_client.",
    )
    add_artifact_flags(p, "the proven ONNX files")
    p.add_argument(
        "--url",
        default=None,
        help="an already running demo instead of starting one (default: start)",
    )
    p.add_argument(
        "--photo",
        default=None,
        help="image to send (default: the page's first example: a held-out photo of the "
        "checkpoint, else a synthetic note)",
    )
    p.add_argument("--requests", type=int, default=50, help="timed requests (default: 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed requests first (default: 5)")
    p.add_argument(
        "--out",
        default="artifacts/bench/demo_latency.json",
        help="result file (default: artifacts/bench/demo_latency.json)",
    )
    return p


def summary(seconds: list[float]) -> dict[str, float]:
    stats = summarise(Samples([seconds]))
    return {
        "p50_ms": round(1e3 * stats.median_s, 1),
        "p90_ms": round(1e3 * stats.p90_s, 1),
        "mean_ms": round(1e3 * float(np.mean(seconds)), 1),
        "n": len(seconds),
    }


def _timed(call: Callable[[], object], args: argparse.Namespace) -> list[float]:
    """Seconds of ``args.requests`` calls, after ``args.warmup`` untimed ones."""
    for _ in range(args.warmup):
        call()
    times = []
    for _ in range(args.requests):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def time_client(url: str, photo: Path, runs: int, args, *, ssl_verify: bool) -> list[float]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, ssl_verify=ssl_verify)
    return _timed(lambda: client.predict(handle_file(str(photo)), runs, api_name="/classify"), args)


def time_in_process(args: argparse.Namespace, photo: Path, runs: int) -> list[float]:
    import torch

    from demo.artifacts import find_artifacts
    from demo.images import load_upload
    from demo.inference import classify
    from demo.runtimes import load_runtimes

    torch.set_num_threads(1)  # as python -m demo does
    found = find_artifacts(args.checkpoint, args.onnx_dir)
    runtimes = load_runtimes(
        found.checkpoint, found.unfolded_onnx, found.folded_onnx, devices=("cpu",)
    )
    return _timed(lambda: classify(runtimes, load_upload(photo), runs=runs), args)


def main(args: argparse.Namespace) -> int:
    from bnfold.atomic import atomic_write_bytes
    from bnfold.checkpoint import load_checkpoint
    from demo.artifacts import ArtifactError, find_artifacts
    from demo.examples import prepare_examples
    from demo.inference import DEFAULT_RUNS

    try:
        found = find_artifacts(args.checkpoint, args.onnx_dir)
    except ArtifactError as e:
        print(f"python -m benchmarks.demo_latency: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rmb-demo-bench-") as tmp:
        ckpt = load_checkpoint(found.checkpoint)
        photo = Path(args.photo) if args.photo else prepare_examples(ckpt, tmp, per_class=1)[0]
        proc = None
        url = args.url
        if url is None:
            from demo.process import start_demo

            flags = ["--cpu-only", "--checkpoint", args.checkpoint, "--onnx-dir", args.onnx_dir]
            proc, url = start_demo(flags, Path(tmp) / "server.log")
        try:
            lean = time_client(url, photo, DEFAULT_RUNS, args, ssl_verify=False)
            default = time_client(url, photo, DEFAULT_RUNS, args, ssl_verify=True)
        finally:
            if proc is not None:
                from demo.process import stop

                stop(proc)
        local = time_in_process(args, photo, DEFAULT_RUNS)
    result = {
        "photo": str(photo),
        "timed_runs_per_variant": DEFAULT_RUNS,
        "variants": "CPU: PyTorch eager and ONNX Runtime, unfolded and folded",
        "client_ssl_verify_off": summary(lean),
        "client_default": summary(default),
        "in_process": summary(local),
        "target_p50_ms": TARGET_P50_MS,
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    rows = [
        ("gradio_client, ssl_verify=False", result["client_ssl_verify_off"]),
        ("gradio_client, default", result["client_default"]),
        ("in-process (no HTTP)", result["in_process"]),
    ]
    print(
        f"/classify, 1 photo, {DEFAULT_RUNS} timed runs x 4 CPU variants, {args.requests} requests"
    )
    print(f"{'path':<34} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}")
    for name, s in rows:
        print(f"{name:<34} {s['p50_ms']:>8} {s['p90_ms']:>8} {s['mean_ms']:>8}")
    p50 = result["client_ssl_verify_off"]["p50_ms"]
    verdict = "meets" if p50 <= TARGET_P50_MS else "MISSES"
    print(f"p50 {p50} ms {verdict} the {TARGET_P50_MS:.0f} ms target; wrote {out}")
    print(f"(load average {result['load_average']} on {result['cpu_count']} cores)")
    return 0


if __name__ == "__main__":
    from benchmarks.entry import run

    run(main, get_args_parser())
