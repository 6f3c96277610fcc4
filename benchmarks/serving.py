"""``python -m benchmarks.serving``: a bounded loopback load on four ways to serve the model.

(a) the plain ``gr.Interface`` a user writes first (:mod:`benchmarks.plain_interface`), (b) the
project's Gradio app (``python -m demo``, ``/classify`` with 1 timed run), (c) ``python -m serve
--ingress haproxy`` and (d) ``python -m serve`` (the Python proxy ingress, the default). Each
gets a fixed number of real photos at each concurrency; the table gives requests/s, p50/p95
latency, errors, the server's CPU time per request (every process of the server, Ray's daemons
included, from /proc, also split by process) and the load client's own CPU, beside the floor:
decode + inference alone, in one process. Everything runs inside a fresh loopback-only network
namespace (see :mod:`serve.netns`), so no packet leaves 127.0.0.1 and no Ray process outlives
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONCURRENCY = (1, 8, 16, 32)
DEFAULT_REQUESTS = 400
#: target → (its port, what the report calls it)
TARGETS = {
    "plain": (7861, "plain gr.Interface"),
    "app": (7860, "project Gradio app (/classify)"),
    "serve": (8000, "python -m serve --ingress haproxy"),
    "serve-proxy": (8000, "python -m serve (--ingress proxy, the default)"),
}
READY_TIMEOUT_S = 180


def get_args_parser() -> argparse.ArgumentParser:
    from demo.artifacts import add_artifact_flags
    from demo.flags import bounded

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving", description=__doc__.splitlines()[0]
    )
    add_artifact_flags(parser, "the proven ONNX files")
    parser.add_argument(
        "--data",
        default=os.environ.get("RMB_DATA_DIR", ""),
        help="photo folder DIR/<class>/*.jpg (default: $RMB_DATA_DIR)",
    )
    parser.add_argument(
        "--requests",
        type=bounded(int, 1, 10_000),
        default=DEFAULT_REQUESTS,
        help=f"requests per target and concurrency (default: {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, DEFAULT_CONCURRENCY)),
        help="comma-separated concurrency levels (default: 1,8,16,32)",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="which of plain,app,serve,serve-proxy (default: all)",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="python -m serve --replicas (default: 1)"
    )
    parser.add_argument(
        "--out", default="artifacts/bench", help="output folder (default: artifacts/bench)"
    )
    parser.add_argument("--inside-namespace", action="store_true", help=argparse.SUPPRESS)
    return parser


def _check_args(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not levels or min(levels) < 1:
        raise ValueError(f"--concurrency must list positive integers, got {args.concurrency!r}")
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise ValueError(f"--targets must be some of {','.join(TARGETS)}, got {args.targets!r}")
    if not args.data or not Path(args.data).is_dir():
        raise ValueError("--data must be the photo folder (DIR/<class>/*.jpg) or set RMB_DATA_DIR")
    return levels, targets


def photos(data: Path) -> list[bytes]:
    paths = sorted(data.glob("*/*.jpg"))
    if not paths:
        raise ValueError(f"no photos under {data}/<class>/*.jpg")
    return [p.read_bytes() for p in paths]


def floor_ms(folded: Path, images: Sequence[bytes], batch: int = 32) -> dict[str, float]:
    """CPU ms per image of decode + inference alone, in this process (batch 1 and ``batch``)."""
    from serve.model import ServedModel

    model = ServedModel(folded, threads=1)
    for data in images[:10]:  # warm up
        model.predict([model.pixels(data)])
    start = time.process_time()
    pixels = [model.pixels(data) for data in images]
    decode = time.process_time() - start
    start = time.process_time()
    for one in pixels:
        model.predict([one])
    single = time.process_time() - start
    start = time.process_time()
    for i in range(0, len(pixels), batch):
        model.predict(pixels[i : i + batch])
    batched = time.process_time() - start
    n = len(images)
    return {
        "decode_ms": 1e3 * decode / n,
        "infer_batch1_ms": 1e3 * single / n,
        f"infer_batch{batch}_ms": 1e3 * batched / n,
        "floor_ms": 1e3 * (decode + single) / n,
    }


def _command(target: str, args: argparse.Namespace, folded: Path) -> list[str]:
    py, port = sys.executable, str(TARGETS[target][0])
    common = ["--checkpoint", args.checkpoint, "--onnx-dir", args.onnx_dir, "--port", port]
    if target == "plain":
        return [py, "-m", "benchmarks.plain_interface", "--onnx", str(folded), "--port", port]
    if target == "app":
        return [py, "-m", "demo", *common, "--data", args.data]
    ingress = "proxy" if target == "serve-proxy" else "haproxy"
    return [py, "-m", "serve", *common, "--replicas", str(args.replicas), "--ingress", ingress]


def _namespace_pids() -> list[int]:
    """Every other process in this (private) network namespace: the server under test."""
    own = os.readlink("/proc/self/ns/net")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/net") == own:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def bench_target(
    target: str, args: argparse.Namespace, folded: Path, images: list[bytes], levels: list[int]
) -> list[Any]:
    from benchmarks.load import gradio_sender, run_load, serve_sender
    from demo.process import start_server, stop

    base = f"http://127.0.0.1:{TARGETS[target][0]}"
    ready = {"plain": f"{base}/gradio_api/info", "app": f"{base}/gradio_api/info"}
    send = {
        "plain": gradio_sender(base, "predict"),
        "app": gradio_sender(base, "classify", extra=[1]),
        "serve": serve_sender(base),
        "serve-proxy": serve_sender(base),
    }[target]
    log = Path(args.out) / f"serving-{target}.log"
    command, ready_url = _command(target, args, folded), ready.get(target, f"{base}/healthz")
    env = {"OMP_NUM_THREADS": "1"}
    proc = start_server(command, log, ready_url, env=env, timeout_s=READY_TIMEOUT_S)
    results = []
    try:
        asyncio.run(run_load(target, send, images, concurrency=4, requests=40))  # warm up
        for c in levels:
            result = asyncio.run(
                run_load(
                    target,
                    send,
                    images,
                    concurrency=c,
                    requests=args.requests,
                    server_pids=_namespace_pids,
                )
            )
            print(_row(result), flush=True)
            results.append(result)
    finally:
        stop(proc, timeout_s=60)
    return results


def _row(r: Any) -> str:
    cpu = "–" if r.server_cpu_ms_per_request is None else f"{r.server_cpu_ms_per_request:.1f}"
    return (
        f"| {TARGETS[r.target][1]} | {r.concurrency} | {r.requests} | {r.errors} | "
        f"{r.requests_per_s:.1f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {cpu} | "
        f"{r.client_cpu_ms_per_request:.1f} |"
    )


def _where(r: Any, top: int = 5) -> str:
    """Where a row's server CPU went: the ``top`` processes, ms per request."""
    parts = [f"{name} {ms:.2f}" for name, ms in list(r.server_cpu_by_process.items())[:top]]
    return f"- {TARGETS[r.target][1]}, concurrency {r.concurrency}: " + ", ".join(parts)


def to_markdown(report: dict[str, Any], results: list[Any]) -> str:
    floor = report["floor"]
    lines = [
        f"Command: `{report['command']}`  ",
        f"Load average before: {report['load_average_before']}, after: "
        f"{report['load_average_after']} ({report['cpus']} CPUs, shared)",
        "",
        "| server | concurrency | requests | errors | requests/s | p50 ms | p95 ms | "
        "server CPU ms/request | client CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(r) for r in results),
        "",
        "Server CPU by process (ms per request, highest first):",
        "",
        *(_where(r) for r in results if r.concurrency == max(x.concurrency for x in results)),
        "",
        f"Floor (one process, 1 thread): decode {floor['decode_ms']:.2f} ms + inference "
        f"{floor['infer_batch1_ms']:.2f} ms (batch 1) = **{floor['floor_ms']:.2f} ms CPU per "
        f"request**; inference in batches of 32: {floor['infer_batch32_ms']:.3f} ms per image.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: list[Any], path: Path) -> None:
    from matplotlib.figure import Figure

    from bnfold.atomic import atomic_path

    fig = Figure(figsize=(10, 4), layout="constrained")
    rate, p95 = fig.subplots(1, 2)
    for target in dict.fromkeys(r.target for r in results):
        rows = [r for r in results if r.target == target]
        xs = [r.concurrency for r in rows]
        rate.plot(xs, [r.requests_per_s for r in rows], marker="o", label=TARGETS[target][1])
        p95.plot(xs, [r.p95_ms for r in rows], marker="o", label=TARGETS[target][1])
    for ax, label in ((rate, "requests/s"), (p95, "p95 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    p95.set_yscale("log")
    rate.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def inside(args: argparse.Namespace) -> int:
    """The benchmark proper, already inside the loopback namespace."""
    from bnfold.atomic import atomic_path
    from demo.artifacts import find_artifacts

    levels, targets = _check_args(args)
    folded = find_artifacts(args.checkpoint, args.onnx_dir).folded_onnx
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = photos(Path(args.data))
    load_before = [round(v, 2) for v in os.getloadavg()]
    floor = floor_ms(folded, images)
    print(f"floor: {floor}", flush=True)
    results = []
    for target in targets:
        results += bench_target(target, args, folded, images, levels)
    report = {
        "command": "python -m benchmarks.serving "
        + " ".join(sys.argv[1:]).replace(" --inside-namespace", ""),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "floor": floor,
        "results": [r.as_dict() for r in results],
    }
    with atomic_path(out / "serving.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    markdown = to_markdown(report, results)
    with atomic_path(out / "serving.md") as tmp:
        tmp.write_text(markdown)
    plot(results, out / "serving.png")
    print(markdown)
    print(f"wrote {out / 'serving.md'}, serving.json, serving.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from serve.netns import LoopbackNamespace, NamespaceUnavailable

    args = get_args_parser().parse_args(argv)
    try:
        _check_args(args)
        if args.inside_namespace:
            return inside(args)
        with LoopbackNamespace() as ns:
            done = ns.run([sys.executable, "-m", "benchmarks.serving", *sys.argv[1:],
                           "--inside-namespace"])  # fmt: skip
            left = ns.ray_daemons()
        if left:
            print(f"python -m benchmarks.serving: ended Ray daemons left behind: {left}")
        return done.returncode
    except (ValueError, NamespaceUnavailable) as e:
        print(f"python -m benchmarks.serving: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
