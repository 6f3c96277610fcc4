"""``python -m serve``: the folded model as an HTTP service on Ray Serve, until SIGINT/SIGTERM.

Without ``--address`` it starts a Ray instance on this machine and stops it on exit; with one it
joins that Ray cluster (``ray start --head`` on one machine, ``ray start --address`` on the
others), deploys there and, on exit, deletes only its own application.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

#: Not shipped to cluster nodes: the model travels inside the deployment's config instead.
CLUSTER_EXCLUDES = ["artifacts/", ".venv/", ".git/", "*.pt", "*.onnx"]


def get_args_parser() -> argparse.ArgumentParser:
    from demo.artifacts import add_artifact_flags
    from demo.flags import bounded
    from serve.config import (
        DEFAULT_BATCH_WAIT_MS,
        DEFAULT_DECODE_THREADS,
        DEFAULT_INGRESS,
        DEFAULT_MAX_BATCH,
        DEFAULT_MAX_BODY_MB,
        INGRESS_MODES,
    )

    parser = argparse.ArgumentParser(
        prog="python -m serve",
        description="Serve the folded ONNX model over HTTP on Ray Serve (POST /predict).",
    )
    add_artifact_flags(parser, "<stem>.folded.onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=bounded(int, 1, 65535), default=8000, help="HTTP port (default: 8000)"
    )
    parser.add_argument(
        "--replicas",
        type=bounded(int, 1),
        default=1,
        help="model replicas in the cluster (default: 1)",
    )
    parser.add_argument(
        "--max-batch",
        type=bounded(int, 1),
        default=DEFAULT_MAX_BATCH,
        help=f"largest dynamic batch, also the most files per multipart request (default: "
        f"{DEFAULT_MAX_BATCH})",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=bounded(float, 0),
        default=DEFAULT_BATCH_WAIT_MS,
        help=f"how long a batch waits to fill (default: {DEFAULT_BATCH_WAIT_MS})",
    )
    parser.add_argument(
        "--max-body-mb",
        type=bounded(float, 0, above=True),
        default=DEFAULT_MAX_BODY_MB,
        help=f"largest request body in MiB (default: {DEFAULT_MAX_BODY_MB:g})",
    )
    parser.add_argument(
        "--decode-threads",
        type=bounded(int, 1),
        default=DEFAULT_DECODE_THREADS,
        help=f"image-decoding threads per replica (default: {DEFAULT_DECODE_THREADS})",
    )
    parser.add_argument(
        "--cpus-per-replica",
        type=bounded(float, 0, above=True),
        default=1.0,
        help="CPUs Ray reserves per replica; fractions pack replicas tighter (default: 1)",
    )
    parser.add_argument(
        "--ingress",
        choices=INGRESS_MODES,
        default=DEFAULT_INGRESS,
        help="haproxy: Ray Serve's high-throughput mode, its bundled HAProxy on --port in front "
        "of each replica's own HTTP server (HAProxy also opens its stats page on :8404 and "
        "metrics on :9101); proxy: Serve's Python proxy actor, 3x the CPU per request "
        f"(default: {DEFAULT_INGRESS})",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join, e.g. ray://head:10001 or head:6379 (default: start a local "
        "Ray and stop it on exit)",
    )
    return parser


def run(args: argparse.Namespace, stop: threading.Event) -> None:
    """Start (or join) Ray, deploy, announce the URL, and tear down once ``stop`` is set."""
    from demo.artifacts import find_artifacts
    from serve.model import read_info

    folded = find_artifacts(args.checkpoint, args.onnx_dir).folded_onnx
    read_info(folded)  # refuse a file without metadata before Ray starts

    from serve.config import ingress_env

    with tempfile.TemporaryDirectory(prefix="rmb-serve-") as workdir:
        env = ingress_env(args.ingress, workdir)
        # Ray's processes read these when they start: a local Ray inherits them from here, the
        # actors of a cluster get them through the job's runtime environment.
        os.environ.update(env)
        if args.address is not None:
            _use_cluster_token()  # before Ray is imported: it reads the mode once
        _run_ray(args, stop, folded, env)


def _run_ray(args: argparse.Namespace, stop: threading.Event, folded: Path, env: dict) -> None:
    import ray
    from ray import serve

    from serve.app import build
    from serve.config import APP_NAME, ServeConfig

    local = args.address is None
    # On a cluster the replicas import the project's packages from this checkout.
    cluster_env = {"working_dir": ".", "excludes": CLUSTER_EXCLUDES, "env_vars": env}
    ray.init(
        address="local" if local else args.address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env=None if local else cluster_env,
    )
    _stop_on_signals(stop)  # again: ray.init installs its own SIGTERM handler, which aborts
    try:
        serve.start(
            http_options={"host": args.host, "port": args.port},
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
        config = ServeConfig(
            onnx_name=folded.name,
            onnx_bytes=folded.read_bytes(),
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            max_body_bytes=int(args.max_body_mb * 2**20),
            decode_threads=args.decode_threads,
        )
        app = build(config, replicas=args.replicas, cpus_per_replica=args.cpus_per_replica)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        print(
            f"serving {folded.name} on http://{args.host}:{args.port}/predict "
            f"({args.replicas} replica(s), {args.ingress} ingress, Ray "
            f"{'local' if local else args.address})",
            flush=True,
        )
        stop.wait()
        print("stopping", flush=True)
    finally:
        try:
            if local:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
        finally:
            ray.shutdown()


def _use_cluster_token() -> None:
    """Present Ray's auth token to a cluster, as ``ray start --head`` expects by default.

    ``ray start`` turns token authentication on when ``RAY_AUTH_MODE`` is unset (the token in
    ``~/.ray/auth_token``), but ``ray.init(address=...)`` without ``RAY_AUTH_MODE=token`` does
    not send it, and the GCS refuses the connection. An explicit ``RAY_AUTH_MODE`` is kept.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stop``, so that the teardown in :func:`run` always runs."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def main(argv: argparse.Namespace | Sequence[str] | None = None) -> int:
    args = argv if isinstance(argv, argparse.Namespace) else get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from demo.artifacts import ArtifactError
    from serve.model import ModelFileError

    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        run(args, stop)
    except (ArtifactError, ModelFileError, ValueError) as e:
        print(f"python -m serve: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
