"""``python -m train.compare``: the course's three RMB runs side by side.

LeNet with PyTorch's default init, LeNet with the course's init, and BN-LeNet with the default
init, on the same split and seed. The course's point: BatchNorm trains the most smoothly, so
BN-LeNet's largest training-loss spike after the first epoch is the smallest.

Example::

    python -m train.compare --data ../shared/data/rmb --out artifacts/compare
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from train.atomic import atomic_open
from train.cli import parse_and_run

log = logging.getLogger(__name__)

RUNS = (
    ("LeNet, default init", "lenet", "default"),
    ("LeNet, course init", "lenet", "course"),
    ("BN-LeNet, default init", "bn-lenet", "default"),
)


def largest_spike(step_losses: list[list[float]]) -> float:
    """The largest step-to-step rise of the training loss after the first epoch (0 if none).

    A rise is ``loss[i] - loss[i-1]`` over consecutive optimisation steps; the first epoch is
    skipped because every run starts by falling from ln(2).
    """
    steps = [x for epoch in step_losses for x in epoch]
    start = len(step_losses[0]) if step_losses else 0
    rises = [steps[i] - steps[i - 1] for i in range(max(start, 1), len(steps))]
    return max([0.0, *rises])


def compare(
    data: str | None, out: Path, *, epochs: int = 10, seed: int = 1, device: str = "auto"
) -> dict[str, Any]:
    """Train the three runs, write their checkpoints, ``compare.json``/``.md`` and a PNG."""
    from train.plots import plot_runs
    from train.recipe import COURSE
    from train.trainer import TrainConfig, fit

    results: dict[str, Any] = {}
    metrics: dict[str, dict] = {}
    for label, arch, init in RUNS:
        log.info("== %s", label)
        ckpt = fit(
            TrainConfig(
                **{**COURSE, "epochs": epochs},  # the course's recipe, not the product's
                data=data,
                model=arch,
                init=init,
                seed=seed,
                device=device,
                out=str(out / f"{arch}-{init}.pt"),
                synthetic_dir=str(out.parent / "data") if data is None else "artifacts/data",
            )
        )
        m = ckpt.metrics
        metrics[label] = m
        results[label] = {
            "arch": arch,
            "init": init,
            "final_valid_acc": m["history"][-1]["valid_acc"],
            "test_acc": m["test_acc"],
            "largest_loss_spike": largest_spike(m["step_losses"]),
        }
    with atomic_open(out / "compare.json") as fh:
        json.dump({"data": data or "synthetic", "seed": seed, "runs": results}, fh, indent=2)
    with atomic_open(out / "compare.md") as fh:
        fh.write(to_markdown(results))
    plot_runs(metrics, out / "compare.png", title=f"RMB: LeNet vs BN-LeNet (seed {seed})")
    return results


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| run | final valid acc | test acc | largest loss spike after epoch 1 |",
        "|---|---:|---:|---:|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['final_valid_acc']:.2%} | {r['test_acc']:.2%} "
            f"| {r['largest_loss_spike']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.compare",
        description="The course's three RMB runs: LeNet default init, LeNet course init, "
        "BN-LeNet default init.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=None, help="ImageFolder; default: the synthetic set")
    p.add_argument("--out", default="artifacts/compare", help="output folder")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run")
    p.add_argument("--seed", type=int, default=1, help="seed shared by the three runs")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    return p


def main(args: argparse.Namespace) -> int:
    results = compare(
        args.data, Path(args.out), epochs=args.epochs, seed=args.seed, device=args.device
    )
    print(to_markdown(results))
    print(f"wrote {Path(args.out) / 'compare.json'}, compare.md and compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(parse_and_run(get_args_parser(), main))
