"""``python -m bnfold MODEL -o OUT [--check]``: fold an ONNX file or a training checkpoint.

MODEL is an ONNX file (folded with :func:`bnfold.fold_onnx`, written as ONNX) or a checkpoint of
``python -m train`` (rebuilt through the factory it names, folded with :func:`bnfold.fold`, written
as a folded checkpoint). The report table goes to stdout. Exit codes: 0 done, 1 ``--check`` found
a mismatch, 2 bad input (one line on stderr, no traceback).

Heavy imports (torch, onnx, onnxruntime) happen inside the functions, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnfold.report import FoldReport

__all__ = ["InputError", "Parity", "fold_file", "get_args_parser", "main"]

logger = logging.getLogger(__name__)

# Default tolerances per output element type: (atol, rtol).
TOLERANCES = {
    "float32": (1e-5, 1e-4),
    "float64": (1e-5, 1e-4),
    "float16": (1e-2, 1e-2),
    "bfloat16": (1e-1, 2e-2),
}


class InputError(ValueError):
    """MODEL cannot be read as an ONNX model or a checkpoint, or OUT cannot be written."""


@dataclass
class Parity:
    """Outcome of ``--check``: the largest error between the model before and after folding."""

    ok: bool
    max_abs_err: float
    detail: str  # which tolerance was used, or which output failed and by how much


@dataclass
class FoldOutcome:
    kind: str  # "onnx" or "checkpoint"
    report: FoldReport
    parity: Parity | None


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bnfold",
        description="Fold BatchNorm into neighbouring layers of an ONNX model or a python -m "
        "train checkpoint, and print what happened to every BatchNorm.",
    )
    parser.add_argument("model", type=Path, help="an .onnx file or a python -m train checkpoint")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="where to write the folded model (same format as MODEL; required)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare outputs before/after folding on random inputs "
        "(onnxruntime for ONNX, torch for checkpoints); exit 1 on a mismatch "
        "(default: off)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2,
        help="batch size of the random inputs of --check; also used for other "
        "symbolic ONNX dimensions (default: 2)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=None,
        help="absolute tolerance of --check (default: 1e-5 for float32 outputs, "
        "1e-2 for float16, 1e-1 for bfloat16)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="relative tolerance of --check (default: 1e-4 for float32 outputs, "
        "1e-2 for float16, 2e-2 for bfloat16)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random inputs of --check (default: 0)"
    )
    parser.add_argument(
        "--allow-factory",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="also allow a checkpoint to rebuild its model with this factory; repeatable. Only "
        "for checkpoints you trust: the factory is imported and called (default: only "
        "train.models:build_model)",
    )
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the CLI for parsed ``args``; return the exit code."""
    from bnfold.checkpoint import CheckpointError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        outcome = fold_file(
            args.model,
            args.out,
            check=args.check,
            batch_size=args.batch_size,
            atol=args.atol,
            rtol=args.rtol,
            seed=args.seed,
            factories=tuple(args.allow_factory),
        )
    except (InputError, CheckpointError, OSError) as error:
        print(f"bnfold: error: {error}", file=sys.stderr)
        return 2
    print(outcome.report.to_table())
    print(f"wrote {args.out}")
    if outcome.parity is None:
        return 0
    parity = outcome.parity
    verdict = "OK" if parity.ok else "MISMATCH"
    print(f"check: {verdict}: max |before - after| = {parity.max_abs_err:.3g}; {parity.detail}")
    return 0 if parity.ok else 1


def fold_file(
    model: Path,
    out: Path,
    *,
    check: bool = False,
    batch_size: int = 2,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
    factories: tuple[str, ...] = (),
) -> FoldOutcome:
    """Fold the model file ``model`` into ``out``; with ``check``, compare before and after.

    ``factories`` are model factories a checkpoint may name besides
    :data:`bnfold.checkpoint.DEFAULT_FACTORIES`.
    """
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise InputError(f"no such file: {model}")
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    if model.resolve() == out.resolve():
        raise InputError("the output would overwrite the input: choose another -o")
    tol = {"atol": atol, "rtol": rtol, "seed": seed, "batch_size": batch_size}
    if _is_checkpoint(model):
        if out.suffix == ".onnx":
            raise InputError(
                "a checkpoint folds into a checkpoint, not ONNX: name -o e.g. folded.pt "
                "(python -m export writes ONNX)"
            )
        return _fold_checkpoint(model, out, check, tol, factories)
    if out.suffix in (".pt", ".pth", ".ckpt"):
        raise InputError("an ONNX model folds into an ONNX model: name -o e.g. folded.onnx")
    return _fold_onnx_file(model, out, check, tol)


def _is_checkpoint(path: Path) -> bool:
    # torch.save writes a zip archive; an ONNX file is a protobuf, which never starts with "PK".
    return zipfile.is_zipfile(path) or path.suffix in (".pt", ".pth", ".ckpt")


# ----------------------------------------------------------------------------- ONNX
def _fold_onnx_file(model: Path, out: Path, check: bool, tol: dict[str, Any]) -> FoldOutcome:
    import onnx
    from google.protobuf.message import DecodeError

    from bnfold.atomic import atomic_path
    from bnfold.onnx_fold import fold_onnx

    try:
        source = onnx.load(model)
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError(
            f"{model} is neither a valid ONNX model nor a torch checkpoint ({first[:160]})"
        ) from error
    if not source.graph.node and not source.graph.output:
        raise InputError(f"{model} is not an ONNX model (it has no graph)")
    folded, report = fold_onnx(source)
    with atomic_path(out) as tmp:
        onnx.save(folded, tmp)
    parity = _onnx_parity(source, folded, **tol) if check else None
    return FoldOutcome("onnx", report, parity)


def _onnx_parity(before, after, *, atol, rtol, seed, batch_size) -> Parity:
    import numpy as np
    import onnxruntime as ort
    from onnx import helper

    rng = np.random.default_rng(seed)
    initializers = {t.name for t in before.graph.initializer}
    feeds = {}
    for vi in before.graph.input:
        if vi.name in initializers:
            continue
        tensor_type = vi.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        shape = [
            d.dim_value if d.HasField("dim_value") else batch_size for d in tensor_type.shape.dim
        ]
        if np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[vi.name] = np.zeros(shape, dtype=dtype)

    def run(model) -> list:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        return session.run(None, feeds)

    try:
        pairs = list(zip(run(before), run(after), strict=True))
    except _ort_errors() as error:  # e.g. no CPU kernel for an operator or element type
        raise InputError(f"--check: onnxruntime cannot run the model: {error}") from error
    return _compare([(np.asarray(a), np.asarray(b)) for a, b in pairs], atol, rtol)


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's exception types (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidGraph", "InvalidArgument", "NotImplemented", "RuntimeException")
    return tuple(getattr(state, name) for name in names if hasattr(state, name))


# ----------------------------------------------------------------------------- checkpoints
def _fold_checkpoint(
    model: Path, out: Path, check: bool, tol: dict[str, Any], factories: tuple[str, ...]
) -> FoldOutcome:
    import torch

    from bnfold.capture import CaptureError
    from bnfold.checkpoint import load_model, save_checkpoint
    from bnfold.torch_fold import fold

    net, ckpt = load_model(model, factories)
    try:
        result = fold(net)
    except CaptureError as error:
        raise InputError(f"{model}: its model cannot be folded: {error}") from error
    save_checkpoint(ckpt.folded_twin(result.model, result.report), out)
    if not check:
        return FoldOutcome("checkpoint", result.report, None)
    generator = torch.Generator().manual_seed(tol["seed"])
    x = torch.randn(tol["batch_size"], 3, *ckpt.input_size, generator=generator)
    return FoldOutcome("checkpoint", result.report, _torch_parity(net, result.model, x, tol))


def _torch_parity(before, after, x, tol: dict[str, Any]) -> Parity:
    """The folded model against the unfolded one, which bnfold.parity runs in float64."""
    from bnfold.parity import compare

    default_atol, default_rtol = TOLERANCES["float32"]
    atol = default_atol if tol["atol"] is None else tol["atol"]
    rtol = default_rtol if tol["rtol"] is None else tol["rtol"]
    result = compare(before, {"folded": after}, [x], atol=atol, rtol=rtol)
    folded = result.candidates["folded"]
    detail = (
        f"atol {atol:g}, rtol {rtol:g} against the unfolded model in float64; "
        f"argmax agreement {folded.argmax_agreement:.0%}"
    )
    return Parity(folded.passed, folded.max_abs_error, detail)


def _compare(pairs, atol: float | None, rtol: float | None) -> Parity:
    """allclose-style comparison of (before, after) arrays, in float64."""
    import numpy as np

    worst, failures, used = 0.0, [], set()
    for i, (before, after) in enumerate(pairs):
        default_atol, default_rtol = TOLERANCES.get(before.dtype.name, TOLERANCES["float32"])
        a_tol = default_atol if atol is None else atol
        r_tol = default_rtol if rtol is None else rtol
        used.add((a_tol, r_tol))
        b64, a64 = before.astype(np.float64), after.astype(np.float64)
        if b64.shape != a64.shape:
            failures.append(f"output {i}: shape {a64.shape} != {b64.shape}")
            continue
        finite = np.isfinite(a64) & np.isfinite(b64)  # NaN/Inf anywhere is a mismatch
        err = np.where(finite, np.abs(np.where(finite, a64 - b64, 0.0)), np.inf)
        worst = max(worst, float(np.max(err)) if err.size else 0.0)
        bad = ~finite | (err > a_tol + r_tol * np.abs(np.where(finite, b64, 0.0)))
        if bool(np.any(bad)):
            failures.append(f"output {i}: {int(bad.sum())}/{err.size} elements off")
    tolerance = "; ".join(f"atol {a:g}, rtol {r:g}" for a, r in sorted(used))
    detail = ", ".join(failures) + f" ({tolerance})" if failures else tolerance
    return Parity(not failures, worst, f"{len(pairs)} output(s); {detail}")
