"""``make gpu-check``: set up a CUDA environment of its own, then run every GPU check in it.

On a host where ``torch.cuda.is_available()``: make ``.venv-gpu`` (a plain venv beside the main
one, never the main one), install the project into it with ``onnxruntime-gpu`` in place of
``onnxruntime`` (the two wheels share the ``onnxruntime`` package folder, so the CPU one is
uninstalled first), train and export a checkpoint if there is none, then run the ``gpu`` tests
(CUDA parity of PyTorch and the ORT CUDA provider, the demo's CUDA variants) and the
benchmark's CUDA rows at batch 1 to 16384. The install is done once (a stamp keyed on
pyproject.toml); later runs go straight to the checks.

On a CPU-only host: print each check as skipped, with the reason, and exit 0 at once.

Exit codes: 0 every step passed or the host has no GPU, 1 a step failed (its name and exit
code printed), 2 a usage error, 130 interrupted.

Example::

    python -m benchmarks.gpu_check --dry-run        # print the plan, run nothing
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GPU_VENV = ".venv-gpu"
CUDA_BATCH_SIZES = (1, 16, 256, 4096, 16384)
CHECKS = (
    "gpu tests (pytest -m gpu): CUDA parity of PyTorch and the ORT CUDA provider, the demo's "
    "CUDA variants",
    "benchmark CUDA rows (python -m benchmarks.inference --cuda-only), batch 1 to 16384",
)


@dataclass(frozen=True)
class Step:
    """One command of the plan, and why it is there."""

    name: str
    argv: tuple[str, ...]

    def shell(self) -> str:
        return shlex.join(self.argv)


def cuda_reason() -> str | None:
    """Why this host has no usable CUDA device for torch, or None when it has one.

    A host without an NVIDIA driver is told apart without importing torch (seconds on a busy
    machine), so the CPU-only path stays instant.
    """
    if not Path("/dev/nvidiactl").exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver on this host (no /dev/nvidiactl, no nvidia-smi)"
    from export.runtimes.torch_runner import torch_cuda_unavailable

    return torch_cuda_unavailable()


def install_stamp(venv: Path, pyproject: Path) -> Path:
    """The file that says ``venv`` holds an install of this ``pyproject.toml``."""
    digest = hashlib.sha256(pyproject.read_bytes()).hexdigest()[:16]
    return venv / f".gpu-installed-{digest}"


def plan(
    *,
    python: str,
    venv: Path,
    installed: bool,
    checkpoint: Path,
    onnx_dir: Path,
    out: Path,
    data: str | None,
    batch_sizes: tuple[int, ...] = CUDA_BATCH_SIZES,
) -> list[Step]:
    """Every command ``make gpu-check`` runs on a CUDA host, in order."""
    vpy = str(venv / "bin" / "python")
    pip = (vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check")
    steps = []
    if not installed:
        steps += [
            Step("create .venv-gpu", (python, "-m", "venv", str(venv))),
            Step("install the project", (*pip, "-e", ".[dev]")),
            Step(
                "remove the CPU onnxruntime",
                (vpy, "-m", "pip", "uninstall", "-y", "-q", "onnxruntime"),
            ),
            Step("install onnxruntime-gpu", (*pip, "onnxruntime-gpu")),
        ]
    if not checkpoint.is_file():
        train = (vpy, "-m", "train", "--out", str(checkpoint))
        steps.append(Step("train a checkpoint", (*train, "--data", data) if data else train))
    export = (vpy, "-m", "export", "--checkpoint", str(checkpoint), "--out", str(onnx_dir))
    files = ("--checkpoint", str(checkpoint), "--onnx-dir", str(onnx_dir), "--out", str(out))
    sizes = ("--batch-sizes", *map(str, batch_sizes))
    bench = (vpy, "-m", "benchmarks.inference", *files, "--cuda-only", "--quick", *sizes)
    steps += [
        Step("export (CUDA parity rows included)", export),
        Step("gpu tests", (vpy, "-m", "pytest", "-m", "gpu", "-rs", "-q")),
        Step("benchmark CUDA rows", bench),
    ]
    return steps


def skipped_lines(reason: str) -> list[str]:
    """What a CPU-only host prints: every check, skipped, with the reason."""
    return [f"gpu-check: skipped {check}: {reason}" for check in CHECKS]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--venv", default=GPU_VENV, help="the GPU venv to make and use")
    p.add_argument("--checkpoint", default="artifacts/bn-lenet.pt", help="training checkpoint")
    p.add_argument("--onnx-dir", default="artifacts/onnx", help="folder of the ONNX files")
    p.add_argument("--out", default="artifacts/bench/gpu", help="benchmark output folder")
    p.add_argument(
        "--data",
        default=os.environ.get("RMB_DATA_DIR") or None,
        help="photos to train on when there is no checkpoint (default: $RMB_DATA_DIR, else "
        "the synthetic set)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (as on a CUDA host) and exit"
    )
    return p


def main(args: argparse.Namespace, *, cuda: str | bool | None = True) -> int:
    """Run the plan, or print why not. ``cuda=True``: ask torch (tests pass a reason or None)."""
    reason = cuda_reason() if cuda is True else cuda
    venv, pyproject = Path(args.venv), Path("pyproject.toml")
    if not pyproject.is_file():
        print("gpu-check: error: run it from the repository root (make gpu-check)", file=sys.stderr)
        return 2
    stamp = install_stamp(venv, pyproject)
    steps = plan(
        python=sys.executable,
        venv=venv,
        installed=stamp.is_file(),
        checkpoint=Path(args.checkpoint),
        onnx_dir=Path(args.onnx_dir),
        out=Path(args.out),
        data=args.data,
    )
    if args.dry_run:
        for step in steps:
            print(f"# {step.name}\n{step.shell()}")
        return 0
    if reason:
        for line in skipped_lines(reason):
            print(line)
        return 0
    return _run(steps, stamp)


def _run(steps: list[Step], stamp: Path) -> int:
    start = time.perf_counter()
    for step in steps:
        print(f"gpu-check: {step.name}: {step.shell()}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(list(step.argv))
        print(f"gpu-check: {step.name}: exit {rc} after {time.perf_counter() - t0:.0f} s")
        if rc != 0:
            print(f"gpu-check: FAILED at {step.name!r} (exit {rc})", file=sys.stderr)
            return 1
        if step.name == "install onnxruntime-gpu":
            stamp.touch()
    print(f"gpu-check: every step passed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    from benchmarks.entry import run

    run(main, get_args_parser())
