"""``python -m export``: two deployable ONNX files and a parity proof from a training checkpoint.

Example::

    python -m export --checkpoint artifacts/bn-lenet.pt                 # writes artifacts/onnx/
    python -m export --checkpoint artifacts/bn-lenet.pt --verify-only   # re-checks them
    python -m export --checkpoint artifacts/bn-lenet.pt --triton-repo artifacts/triton

Exit codes: 0 parity passed, 1 parity failed (failing rows printed), 2 a usage error (one line on
stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_OPSET = 18  # export.onnx_writer.DEFAULT_OPSET; repeated so --help imports no torch
DEFAULT_MAX_BATCH_SIZE = 64  # export.triton.DEFAULT_MAX_BATCH_SIZE


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a training checkpoint as <stem>.unfolded.onnx (BatchNorm kept) and "
        "<stem>.folded.onnx (BatchNorm folded by bnfold), and prove both match the float64 "
        "PyTorch reference in parity.json / parity.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="training checkpoint (python -m train)")
    p.add_argument("--out", default="artifacts/onnx", help="folder for the .onnx and parity files")
    p.add_argument(
        "--data",
        default=None,
        help="data folder for the valid/test images of the parity run; default: the folder "
        "recorded in the checkpoint (random inputs only when it is gone)",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help="ONNX opset (17..20 with the torchscript exporter, 18.. with dynamo)",
    )
    p.add_argument(
        "--exporter",
        default="torchscript",
        choices=("torchscript", "dynamo"),
        help="PyTorch ONNX exporter (both run without their BN-folding passes)",
    )
    p.add_argument(
        "--verify-only",
        action="store_true",
        help="re-check the existing files in --out against the checkpoint; write nothing",
    )
    p.add_argument(
        "--triton-repo",
        default=None,
        help="also write a Triton model repository here (<stem>_folded, <stem>_unfolded)",
    )
    p.add_argument(
        "--triton-cpu-only",
        action="store_true",
        help="Triton configs with a KIND_CPU instance group only (Triton refuses KIND_GPU on "
        "machines without a GPU); default: a KIND_GPU and a KIND_CPU group",
    )
    p.add_argument(
        "--triton-max-batch-size",
        type=int,
        default=DEFAULT_MAX_BATCH_SIZE,
        help="max_batch_size of the Triton configs",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(args: argparse.Namespace) -> int:
    """Run the export (or verification); print the parity table; return the exit code."""
    import logging

    from bnfold.checkpoint import CheckpointError
    from export.errors import ExportError
    from train.cli import setup_logging
    from train.imagefolder import DataError

    setup_logging(args.verbose)
    if not args.verbose:  # the dynamo exporter's passes log every cleanup step at INFO
        for name in ("onnxscript", "onnx_ir"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return _run(args)
    except (ExportError, CheckpointError, DataError, OSError) as e:
        print(f"python -m export: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m export: interrupted (no half-written file was left)", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from tqdm.contrib.logging import logging_redirect_tqdm

    from export.errors import ExportError
    from export.pipeline import ExportConfig, export_checkpoint, verify_files

    if args.verify_only and args.triton_repo is not None:
        raise ExportError("--triton-repo writes files; it cannot be combined with --verify-only")
    cfg = ExportConfig(**{f.name: getattr(args, f.name) for f in fields(ExportConfig)})
    with logging_redirect_tqdm():
        result = verify_files(cfg) if args.verify_only else export_checkpoint(cfg)
    report = result.parity
    print(report.to_table())
    for path in result.written:
        print(f"wrote {path}")
    if not report.passed:
        published = "" if args.verify_only else " (nothing was published)"
        print(f"\nparity FAILED{published}:", file=sys.stderr)
        print(report.to_table(report.failing()), file=sys.stderr)
        if report.int8_passed is False:
            print(report.int8.summary(), file=sys.stderr)
        return 1
    print(f"parity passed: {report.summary()}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Console-script entry point: parse ``argv`` (default: sys.argv) and run :func:`main`."""
    return main(get_args_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
