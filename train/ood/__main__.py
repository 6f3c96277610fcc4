"""``python -m train.ood``: compare OOD methods on a checkpoint; optionally (re)fit its ``ood``.

Example::

    python -m train.ood --checkpoint artifacts/bn-lenet.pt --in ../shared/data/rmb
"""

from __future__ import annotations

import argparse
import sys

from train.cli import parse_and_run


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.ood",
        description="Measure out-of-distribution scores of a python -m train checkpoint: "
        "AUROC, FPR at 95% TPR, share flagged, false-reject and accuracy among accepted, per "
        "method; writes ood.json, ood.md and ood.png.",
    )
    p.add_argument(
        "--checkpoint", default="artifacts/bn-lenet.pt", help="default: artifacts/bn-lenet.pt"
    )
    p.add_argument(
        "--in",
        dest="inside",
        action="append",
        default=[],
        metavar="DIR",
        help="in-distribution ImageFolder with the checkpoint's classes, e.g. the course photos "
        "(repeatable); default: none, only the checkpoint's own valid and test splits",
    )
    p.add_argument(
        "--out-dir",
        dest="out_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of out-of-distribution images, read recursively (repeatable); default: "
        "none, only the built-in far-OOD (and near-OOD) sets",
    )
    p.add_argument("--out", default="artifacts/ood", help="report folder; default: artifacts/ood")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods, '+' combines (e.g. msp,knn,mahalanobis+msp); default: "
        "all base methods and the combinations the README compares",
    )
    p.add_argument(
        "--per-kind", type=int, default=100, help="far-OOD images per kind; default: 100"
    )
    p.add_argument(
        "--no-near",
        dest="near",
        action="store_false",
        help="skip the near-OOD set; default: include it",
    )
    p.add_argument(
        "--near-dir",
        default=None,
        help="cache folder for the near-OOD notes; default: train.synthetic's own",
    )
    p.add_argument(
        "--target-false-reject",
        type=float,
        default=0.02,
        help="false-reject the thresholds are calibrated for on the valid split; default: 0.02",
    )
    p.add_argument(
        "--refit",
        metavar="METHOD",
        default=None,
        help="instead of comparing, (re)fit the checkpoint's stored 'ood' entry with METHOD and "
        "save the checkpoint; default: off",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; default: off")
    return p


def main(args: argparse.Namespace) -> int:
    from train.ood.methods import components
    from train.ood.study import COMPARED, StudyConfig, refit_checkpoint, run_study

    if args.per_kind < 1:
        raise ValueError(f"--per-kind must be >= 1, got {args.per_kind}")
    if not 0.0 <= args.target_false_reject < 1.0:
        raise ValueError(f"--target-false-reject must be in [0, 1), got {args.target_false_reject}")
    if args.refit is not None:
        components(args.refit)
        ood = refit_checkpoint(args.checkpoint, args.refit, args.target_false_reject)
        print(f"{args.checkpoint}: ood method {ood['method']}, threshold {ood['threshold']:.6g}")
        return 0
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else COMPARED
    for m in methods:
        components(m)
    # The other flags are StudyConfig fields of the same name.
    fields = {k: v for k, v in vars(args).items() if k not in ("refit", "verbose")}
    _, paths = run_study(StudyConfig(**{**fields, "methods": methods}))
    print((paths[1]).read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return parse_and_run(get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
