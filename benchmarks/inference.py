"""Inference latency of every way to run the network, against plain PyTorch eager (unfolded).

Variants: PyTorch eager unfolded/folded (the baseline is eager unfolded under torch.no_grad),
inference mode, channels-last, oneDNN off, jit trace+freeze, torch.compile (default threads and
one); ONNX Runtime unfolded/folded with optimisations disabled and at the default level, and
tuned sessions (ORT_ENABLE_ALL, 1 or 2 intra-op threads, IO binding). PyTorch CUDA and the ORT
CUDA provider (IO binding, data on the GPU) when a GPU is present, otherwise listed as not run
with the reason. Batch sizes 1, 8, 64, 256 by default; interleaved rounds; median and p90
latency, throughput, ratio to the baseline, and the FLOP rate as a share of the measured sgemm
peak.

Writes ``inference.json``, ``inference.md`` (the README table) and ``inference.png`` to --out.

Examples::

    python -m benchmarks.inference --checkpoint artifacts/bn-lenet.pt --onnx-dir artifacts/onnx
    python -m benchmarks.inference --checkpoint artifacts/bn-lenet.pt --cuda-only --quick

Exit codes: 0 done, 1 a variant's output failed parity (it is listed and not timed), 2 a usage
error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys

DEFAULT_BATCH_SIZES = (1, 8, 64, 256)  # benchmarks.sweep.DEFAULT_BATCH_SIZES
QUICK_BATCH_SIZES = (1, 64)
QUICK_ROUNDS = 5
QUICK_WARMUP = 2
JSON_NAME, MD_NAME, PNG_NAME = "inference.json", "inference.md", "inference.png"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.inference",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default="artifacts/bn-lenet.pt", help="training checkpoint")
    p.add_argument(
        "--onnx-dir",
        default=None,
        help="folder with <stem>.unfolded.onnx / <stem>.folded.onnx of this checkpoint; when "
        "they are missing (or no folder is given) they are exported to a temp folder",
    )
    p.add_argument("--out", default="artifacts/bench", help="folder for the JSON, table and plot")
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help=f"batch sizes (default {' '.join(map(str, DEFAULT_BATCH_SIZES))}; "
        f"{' '.join(map(str, QUICK_BATCH_SIZES))} with --quick)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"interleaved timing rounds per batch size (default 20; {QUICK_ROUNDS} with --quick)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"untimed calls per variant first (default 5; {QUICK_WARMUP} with --quick)",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="run only these variants (names as in the table; the baseline always runs); "
        "default: all",
    )
    p.add_argument(
        "--cuda-only",
        action="store_true",
        help="only the CUDA variants (and the CPU baseline their ratios need)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a short run: fewer batch sizes, rounds and warm-up calls (for make gpu-check)",
    )
    p.add_argument(
        "--no-profile",
        action="store_true",
        help="skip the per-op profiles (baseline and ORT) at the smallest and largest batch "
        "(also skipped with --quick and --cuda-only)",
    )
    p.add_argument("--list-variants", action="store_true", help="print the variants and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _config(args: argparse.Namespace):
    from benchmarks.sweep import SweepConfig

    quick = args.quick
    return SweepConfig(
        checkpoint=args.checkpoint,
        onnx_dir=args.onnx_dir,
        batch_sizes=tuple(
            args.batch_sizes or (QUICK_BATCH_SIZES if quick else DEFAULT_BATCH_SIZES)
        ),
        rounds=args.repeats if args.repeats is not None else (QUICK_ROUNDS if quick else 20),
        warmup=args.warmup if args.warmup is not None else (QUICK_WARMUP if quick else 5),
        variants=tuple(args.variants) if args.variants else None,
        cuda_only=args.cuda_only,
        peak_repeats=3 if quick else 5,
        profile=not (quick or args.no_profile),
    )


def _write(result, out_dir: str, command: str) -> list:
    import io
    import json
    from pathlib import Path

    from benchmarks.plot import latency_figure
    from benchmarks.report import to_dict, to_markdown
    from bnfold.atomic import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / JSON_NAME, out / MD_NAME, out / PNG_NAME]
    atomic_write_bytes(paths[0], (json.dumps(to_dict(result, command), indent=2) + "\n").encode())
    atomic_write_bytes(paths[1], to_markdown(result, command).encode())
    buffer = io.BytesIO()
    latency_figure(result).savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(paths[2], buffer.getvalue())
    return paths


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, write its files, print the table, targets and recommendation."""
    import logging

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    from benchmarks.variants import all_variants, how

    if args.list_variants:
        for v in all_variants():
            print(f"{v.name:32s} {how(v)}")
        return 0
    from benchmarks.report import recommendation, targets, to_markdown
    from benchmarks.sweep import BenchmarkError, run_sweep
    from export.errors import ExportError

    command = "python -m benchmarks.inference " + shlex.join(sys.argv[1:])
    try:
        result = run_sweep(_config(args))
        paths = _write(result, args.out, command)
    except (BenchmarkError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(to_markdown(result, command))
    for path in paths:
        print(f"wrote {path}")
    cuda = [v for v in result.variants if v.cuda]
    if args.cuda_only and not any(
        result.cells[(v.name, b)].status == "run" for v in cuda for b in result.config.batch_sizes
    ):
        print(
            "no CUDA variant ran on this machine (reasons above): CPU-only check, nothing to time"
        )
    missed = [t.name for t in targets(result) if t.met is False]
    if missed and not args.cuda_only:
        print(f"targets missed: {', '.join(missed)}")
    print(recommendation(result)["text"])
    failed = [c for c in result.cells.values() if c.status == "failed parity"]
    return 1 if failed else 0


if __name__ == "__main__":
    from benchmarks.entry import run

    run(main, get_args_parser())
