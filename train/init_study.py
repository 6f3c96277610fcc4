"""The course's 100-layer MLP initialisation study: why init scale (or BatchNorm) matters.

A stack of ``Linear(width, width, bias=False)`` [+ ``BatchNorm1d(width)``] + ReLU is fed a batch
of standard-normal inputs, and the std of each layer's output (after its ReLU) is recorded, as
the course's ``MLP.forward`` prints ``layers:{i}, std:{x.std()}``. Five conditions:

- ``default``: PyTorch's own Linear init (kaiming_uniform with a=√5, i.e. Var(w) = 1/(3·fan_in)):
  the std shrinks by about √(1/6) per layer and vanishes towards 0.
- ``normal``: N(0, 1) weights: the std grows by about √(width/2) per layer, overflows and the
  activations become nan part-way down the stack.
- ``kaiming``: ``kaiming_normal_`` (Var(w) = 2/fan_in) keeps the std of order 1.
- ``bn_normal`` / ``bn_default``: a BatchNorm before every ReLU renormalises each layer, so the
  std stays near that of ReLU(N(0, 1)), √(1/2 − 1/(2π)) ≈ 0.584, whatever the weights' scale.

Conventions (the course's): layers are 0-based; ``nan_layer`` is the first layer ``i`` whose
output std is nan, and the forward stops there (the course ``break``s), so ``std`` then has
``nan_layer + 1`` entries. A non-finite std is stored as ``None`` (``null`` in JSON): with
N(0, 1) weights the float32 std already overflows to ``inf`` a few layers before the nan.

Seeding reproduces the course's order: ``manual_seed(seed)``, build the net (PyTorch's default
init draws from the RNG), re-initialise its weights, then draw the input. The caller's global
RNG state is restored afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.atomic import atomic_open, atomic_path
from train.cli import parse_and_run

logger = logging.getLogger(__name__)

# condition name -> (weight init, with BatchNorm)
CONDITIONS: dict[str, tuple[str, bool]] = {
    "default": ("default", False),
    "normal": ("normal", False),
    "kaiming": ("kaiming", False),
    "bn_normal": ("normal", True),
    "bn_default": ("default", True),
}

_WEIGHT_INITS: dict[str, Callable[[torch.Tensor], Any]] = {
    "default": lambda weight: None,  # keep what nn.Linear drew at construction
    "normal": lambda weight: nn.init.normal_(weight, mean=0.0, std=1.0),
    "kaiming": nn.init.kaiming_normal_,  # the course calls it with its defaults
}

JSON_NAME = "init_study.json"
PNG_NAME = "init_study.png"


class DeepMLP(nn.Module):
    """``depth`` × (Linear without bias [→ BatchNorm1d] → ReLU), as the course's ``MLP``."""

    def __init__(self, width: int, depth: int, *, batch_norm: bool) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        norms = (nn.BatchNorm1d(width) if batch_norm else nn.Identity() for _ in range(depth))
        self.bns = nn.ModuleList(norms)

    def initialize(self, scheme: str) -> None:
        """Re-draw every Linear weight with ``scheme``: ``default``, ``normal`` or ``kaiming``."""
        if scheme not in _WEIGHT_INITS:
            raise ValueError(f"unknown init {scheme!r}: choose one of {', '.join(_WEIGHT_INITS)}")
        for linear in self.linears:
            _WEIGHT_INITS[scheme](linear.weight)

    def std_profile(self, x: torch.Tensor) -> tuple[list[float], int | None]:
        """Per-layer output std after the ReLU, and the first layer whose std is nan (or None).

        Stops at the first nan as the course's forward does: later layers carry no information.
        """
        stds: list[float] = []
        with torch.no_grad():
            for i, (linear, bn) in enumerate(zip(self.linears, self.bns, strict=True)):
                x = torch.relu(bn(linear(x)))
                std = x.std().item()
                stds.append(std)
                if math.isnan(std):
                    return stds, i
        return stds, None


def run_condition(
    init: str,
    *,
    batch_norm: bool,
    seed: int = 1,
    depth: int = 100,
    width: int = 256,
    batch: int = 16,
) -> dict[str, Any]:
    """One condition of the study: ``{"std": [float | None, ...], "nan_layer": int | None}``."""
    for name, value in (("depth", depth), ("width", width), ("batch", batch)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if batch_norm and batch < 2:
        raise ValueError(
            f"BatchNorm in training mode needs batch >= 2 (one value per channel has no "
            f"variance), got batch={batch}"
        )
    # fork_rng restores the caller's RNG state: the study must not perturb anyone's seeding.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DeepMLP(width, depth, batch_norm=batch_norm)
        net.initialize(init)
        inputs = torch.randn((batch, width))
        stds, nan_layer = net.std_profile(inputs)
    return {
        "std": [std if math.isfinite(std) else None for std in stds],
        "nan_layer": nan_layer,
    }


def run_init_study(
    seed: int = 1, depth: int = 100, width: int = 256, batch: int = 16
) -> dict[str, dict[str, Any]]:
    """All five conditions, each seeded identically: ``{condition: {"std", "nan_layer"}}``."""
    results = {}
    for name, (init, batch_norm) in CONDITIONS.items():
        result = run_condition(
            init, batch_norm=batch_norm, seed=seed, depth=depth, width=width, batch=batch
        )
        results[name] = result
        logger.info(
            "%s: %d layers, final std %s, nan layer %s",
            name,
            len(result["std"]),
            result["std"][-1],
            result["nan_layer"],
        )
    return results


def write_json(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Write ``results`` as strict JSON (``allow_nan=False``: non-finite values must be None)."""
    text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    with atomic_open(path) as fh:
        fh.write(text)


def plot_init_study(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Log-scale std per layer for each condition, with an ✕ and a note at each nan layer."""
    # A bare Figure renders with Agg without touching pyplot's global backend or figure list.
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    # x in data coordinates, y in axes coordinates: a nan has no height, so mark it at the top.
    top_of_axes = blended_transform_factory(ax.transData, ax.transAxes)
    for name, result in results.items():
        stds = [math.nan if std is None else std for std in result["std"]]
        (line,) = ax.plot(range(len(stds)), stds, label=name, linewidth=1.5)
        nan_layer = result["nan_layer"]
        if nan_layer is not None:
            ax.axvline(nan_layer, color=line.get_color(), linestyle=":", linewidth=1)
            ax.plot(
                nan_layer,
                0.97,
                marker="X",
                markersize=12,
                color=line.get_color(),
                transform=top_of_axes,
                clip_on=False,
                linestyle="none",
            )
            ax.annotate(
                f"{name}: nan at layer {nan_layer}",
                xy=(nan_layer, 0.97),
                xycoords=top_of_axes,
                xytext=(8, -4),
                textcoords="offset points",
                color=line.get_color(),
                va="top",
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer (0-based)")
    ax.set_ylabel("output std after ReLU")
    ax.set_title("100-layer MLP: activation std per layer by initialisation")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table: condition, layers reached, final std, nan layer."""
    rows = [f"{'condition':<12} {'layers':>6} {'final std':>12} {'nan layer':>9}"]
    for name, result in results.items():
        last = result["std"][-1] if result["std"] else None  # None: not finite
        last_text = "non-finite" if last is None else f"{last:.4g}"
        nan_text = "-" if result["nan_layer"] is None else str(result["nan_layer"])
        rows.append(f"{name:<12} {len(result['std']):>6} {last_text:>12} {nan_text:>9}")
    return "\n".join(rows)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.init_study",
        description="Per-layer activation std of a deep MLP under five initialisations.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts/init_study"),
        help=f"output folder for {JSON_NAME} and {PNG_NAME} (default: artifacts/init_study)",
    )
    parser.add_argument("--seed", type=int, default=1, help="torch seed (default: 1)")
    parser.add_argument("--depth", type=int, default=100, help="number of layers (default: 100)")
    parser.add_argument("--width", type=int, default=256, help="features per layer (default: 256)")
    parser.add_argument("--batch", type=int, default=16, help="input batch size (default: 16)")
    return parser


def main(args: argparse.Namespace) -> int:
    results = run_init_study(seed=args.seed, depth=args.depth, width=args.width, batch=args.batch)
    out = Path(args.out)
    write_json(results, out / JSON_NAME)
    plot_init_study(results, out / PNG_NAME)
    print(summary_table(results))
    print(f"wrote {out / JSON_NAME} and {out / PNG_NAME}")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    return parse_and_run(get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
