"""``python -m demo``: serve the BatchNorm-folding demo on this machine (127.0.0.1 by default).

Thin CLI over :func:`demo.app.build_app`: checks the artifacts (one line and exit 2 when one is
missing or unproven, naming the command that makes it), loads every runtime once, then serves
until Ctrl-C or SIGTERM; either way the temp folder of example photos is removed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def get_args_parser() -> argparse.ArgumentParser:
    from demo.artifacts import add_artifact_flags
    from demo.flags import bounded, image_folder

    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Gradio demo: what BatchNorm folding changes and what it costs.",
    )
    add_artifact_flags(parser, "<stem>.unfolded.onnx and <stem>.folded.onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=bounded(int, 1, 65535), default=7860, help="port to serve on (default: 7860)"
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (default: off)"
    )
    parser.add_argument(
        "--data",
        type=image_folder,
        default=None,
        help="image folder for the example photos (default: the checkpoint's data folder, else "
        "synthetic notes)",
    )
    parser.add_argument(
        "--threads",
        type=bounded(int, 1),
        default=1,
        help="CPU threads for PyTorch and ONNX Runtime (default: 1, fastest for batch 1)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=bounded(float, 0, above=True),
        default=10.0,
        help="largest upload in MiB (default: 10)",
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="do not try CUDA even if present (default: off)"
    )
    parser.add_argument(
        "--upload-max-age-s",
        type=bounded(int, 1),
        default=3600,
        help="delete uploads from Gradio's cache once this old, checked as often (default: 3600)",
    )
    return parser


def serve(args: argparse.Namespace, examples_dir: Path) -> None:
    """Load everything, build the page and serve it until interrupted."""
    from demo.artifacts import find_artifacts

    artifacts = find_artifacts(args.checkpoint, args.onnx_dir)  # before any slow import
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
    import torch

    from demo.app import build_app, launch_options
    from demo.examples import prepare_examples
    from demo.runtimes import load_runtimes

    torch.set_num_threads(args.threads)
    runtimes = load_runtimes(
        artifacts.checkpoint,
        artifacts.unfolded_onnx,
        artifacts.folded_onnx,
        int8_onnx=artifacts.int8_onnx,
        threads=args.threads,
        devices=("cpu",) if args.cpu_only else ("cpu", "cuda"),
    )
    examples = prepare_examples(runtimes.checkpoint, examples_dir, args.data)
    max_bytes = int(args.max_upload_mb * 2**20)
    app = build_app(
        runtimes,
        examples=examples,
        max_upload_bytes=max_bytes,
        cache_max_age_s=args.upload_max_age_s,
    )
    app.queue(default_concurrency_limit=1, max_size=64)
    app.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=max_bytes,
        allowed_paths=[str(examples_dir)],
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        inbrowser=False,
        footer_links=["api"],
        **launch_options(),
    )


def main(argv: argparse.Namespace | Sequence[str] | None = None) -> int:
    args = argv if isinstance(argv, argparse.Namespace) else get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from bnfold.checkpoint import CheckpointError
    from demo.artifacts import ArtifactError

    examples_dir = Path(tempfile.mkdtemp(prefix="rmb-demo-examples-"))
    # SIGTERM (a service manager, `kill`) ends the server as Ctrl-C does, so the finally runs.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve(args, examples_dir)
    except (ArtifactError, CheckpointError, ValueError) as e:
        print(f"python -m demo: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        shutil.rmtree(examples_dir, ignore_errors=True)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
