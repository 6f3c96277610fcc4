"""The inference benchmark's run: every variant at every batch size, against one baseline.

Per batch size, every variant is bound to the same seeded random batch, checked against the
float64 unfolded reference with the tolerances ``python -m export`` proves (a variant that
computes something else is reported, never timed), then timed in interleaved rounds
(:mod:`export.runtimes.timing`) together with the baseline, plain PyTorch eager on the unfolded
network. The machine's sgemm peak is measured before and after the latency rounds, the
network's FLOPs are counted from the model (:mod:`benchmarks.flops`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.flops import FlopCount, flops_per_image
from benchmarks.op_profile import Profile, ort_profile, torch_profile
from benchmarks.peak import Peak, best_sgemm_rate, measure_peak
from benchmarks.variants import BASELINE, LOGITS_ONLY, WITH_OOD, all_variants
from export.runtimes.errors import Unavailable, first_line
from export.runtimes.open import Sources, open_variant
from export.runtimes.runner import Bound, Runner
from export.runtimes.timing import (
    DEFAULT_BLOCK_S,
    Ratio,
    Samples,
    Stats,
    measure_interleaved,
    summarise,
)
from export.runtimes.timing import ratio as latency_ratio
from export.runtimes.torch_runner import float64_reference
from export.runtimes.variant import FOLDED, INT8, UNFOLDED, OrtOptions, Variant

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES = (1, 8, 64, 256)


class BenchmarkError(ValueError):
    """A checkpoint, ONNX folder or option the benchmark cannot use; the message says why."""


@dataclass
class SweepConfig:
    """Everything a run depends on; the defaults are the CLI's."""

    checkpoint: str
    onnx_dir: str | None = None
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    rounds: int = 20
    warmup: int = 5
    block_s: float = DEFAULT_BLOCK_S
    variants: tuple[str, ...] | None = None  # names to run (the baseline always runs)
    cuda_only: bool = False  # the CUDA variants and the baseline only
    peak_size: int = 2048
    peak_repeats: int = 5
    seed: int = 0
    profile: bool = True  # per-op profiles at the smallest and largest batch (CPU)


@dataclass
class Cell:
    """One variant at one batch size."""

    variant: Variant
    batch: int
    status: str  # "run" | "not run" | "failed parity"
    reason: str | None = None
    stats: Stats | None = None
    speedup: Ratio | None = None  # vs the baseline, same rounds
    max_abs_err: float | None = None
    tolerance_ratio: float | None = None  # max |Δ| / (atol + rtol·|ref|); pass iff <= 1
    samples: Samples | None = None


@dataclass
class SweepResult:
    config: SweepConfig
    variants: list[Variant]
    cells: dict[tuple[str, int], Cell]
    fold_pairs: dict[tuple[str, int], Ratio]  # (family, batch) → unfolded / folded latency
    flops: dict[str, FlopCount]  # "unfolded" / "folded" per image
    peak: Peak
    cuda_peak_flops_per_s: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    # batch → folded-with-ood_score / folded-logits-only latency (ORT, same rounds)
    ood_cost: dict[int, Ratio] = field(default_factory=dict)
    # (family, batch) → fp32 folded latency / int8 latency, same runtime and options
    int8_pairs: dict[tuple[str, int], Ratio] = field(default_factory=dict)

    @property
    def flops_per_image(self) -> float:
        """The work every variant must do: the folded network's FLOPs (see the report)."""
        return self.flops[FOLDED].per_image

    def peak_for(self, variant: Variant) -> float | None:
        return self.cuda_peak_flops_per_s if variant.cuda else self.peak.flops_per_s


def select_variants(cfg: SweepConfig) -> list[Variant]:
    """The variants ``cfg`` asks for, the baseline first; BenchmarkError for unknown names."""
    catalogue = all_variants()
    names = [v.name for v in catalogue]
    chosen = catalogue
    if cfg.variants:
        unknown = sorted(set(cfg.variants) - set(names))
        if unknown:
            raise BenchmarkError(
                f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(names)}"
            )
        chosen = [v for v in catalogue if v.name in cfg.variants or v.name == BASELINE]
    if cfg.cuda_only:
        chosen = [v for v in chosen if v.cuda or v.name == BASELINE]
    return chosen


def _check_config(cfg: SweepConfig) -> None:
    if not cfg.batch_sizes or any(b < 1 for b in cfg.batch_sizes):
        raise BenchmarkError(f"batch sizes must be >= 1, got {list(cfg.batch_sizes)}")
    if cfg.rounds < 1 or cfg.warmup < 1:
        raise BenchmarkError(f"--repeats and --warmup must be >= 1 ({cfg.rounds}, {cfg.warmup})")
    if cfg.block_s <= 0:
        raise BenchmarkError(f"the block time must be > 0, got {cfg.block_s}")


# ----------------------------------------------------------------------------------------------
# Sources: the checkpoint, its fold, its ONNX files (exported to a temp folder when missing).


def _onnx_files(cfg: SweepConfig, tmp: Path) -> dict[str, Path]:
    from export.errors import ExportError
    from export.pipeline import ExportConfig, export_checkpoint, onnx_paths
    from export.proof import proven_files

    if cfg.onnx_dir is not None:
        if all(p.is_file() for p in onnx_paths(cfg.onnx_dir, cfg.checkpoint).values()):
            try:
                return proven_files(cfg.checkpoint, cfg.onnx_dir)
            except ExportError as e:
                raise BenchmarkError(str(e)) from e
        log.warning(
            "no ONNX files for %s in %s: exporting to a temp folder", cfg.checkpoint, cfg.onnx_dir
        )
    result = export_checkpoint(ExportConfig(checkpoint=cfg.checkpoint, out=str(tmp)))
    if not result.parity.passed:
        raise BenchmarkError(
            f"the export of {cfg.checkpoint} failed parity: {result.parity.summary()}"
        )
    return result.files


def _sources(cfg: SweepConfig, tmp: Path) -> tuple[Sources, Sources, Checkpoint]:
    """The served networks and files, and the same folded network without its OOD score.

    The second :class:`Sources` runs :data:`benchmarks.variants.LOGITS_ONLY`: the folded
    classifier alone, exported here beside the served files, so that the OOD score's cost is
    measured as the only difference between two graphs timed in the same rounds.
    """
    import bnfold
    from bnfold.checkpoint import CheckpointError, load_checkpoint
    from export import onnx_writer
    from export.networks import served_networks

    try:
        ckpt = load_checkpoint(cfg.checkpoint)
        served = served_networks(ckpt, cfg.checkpoint)
    except (CheckpointError, ValueError) as e:
        raise BenchmarkError(str(e)) from e
    size = ckpt.input_size
    files = _onnx_files(cfg, tmp)
    sources = Sources(served.unfolded, served.folded, files, size, served.output_names)
    classifier = ckpt.build_model(allow_folded=False)
    folded = bnfold.fold(classifier, torch.zeros(2, 3, *size)).model.eval()
    logits_file = tmp / "logits-only.folded.onnx"
    onnx_writer.save(onnx_writer.to_onnx(folded, size), logits_file)
    plain = {UNFOLDED: files[UNFOLDED], FOLDED: logits_file}
    logits_only = Sources(classifier, folded, plain, size)
    return sources, logits_only, ckpt


# ----------------------------------------------------------------------------------------------
# Parity of one runner's output.


def _parity(
    variant: Variant, got: dict[str, np.ndarray], ref: dict[str, np.ndarray]
) -> tuple[bool, float, float | None]:
    """Every output of the reference within export's tolerance, logits' argmax identical.

    A reduced-precision variant (int8, bf16) is held to what it can promise on this random
    batch: every output there, of the right shape and finite; its max |Δ logits| is reported. Its
    decisions are proven where they mean something, on real images, by ``python -m export``
    (:mod:`export.int8_proof`); random inputs sit off the data manifold, near the boundary.
    The logits-only variant has no ``ood_score`` by design: its logits are checked alone.
    """
    from bnfold.parity import compare
    from export.parity_run import tolerance

    wanted = ["logits"] if variant.family == LOGITS_ONLY else list(ref)
    if any(k not in got or got[k].shape != ref[k].shape for k in wanted):
        return False, float("inf"), float("inf")
    if not variant.exact:
        if not all(np.isfinite(got[k]).all() for k in wanted):
            return False, float("inf"), float("inf")
        max_abs = float(np.abs(got["logits"].astype(np.float64) - ref["logits"]).max())
        return True, max_abs, None  # no fp32 tolerance to be a ratio of
    tol = tolerance(variant)  # bnfold.parity counts NaN/Inf as an infinite error

    def pick(outputs: dict[str, np.ndarray]) -> Callable[[object], list[np.ndarray]]:
        return lambda _: [outputs[k] for k in wanted]

    result = compare(pick(ref), {"got": pick(got)}, [None], atol=tol.atol, rtol=tol.rtol)
    found = result.candidates["got"]
    return found.passed, found.max_abs_error, found.tolerance_ratio


# ----------------------------------------------------------------------------------------------
# The run.


def _meta(cfg: SweepConfig) -> dict[str, Any]:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_before": list(os.getloadavg()),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "checkpoint": str(cfg.checkpoint),
    }


def _load_all(
    variants: list[Variant], sources: Sources, logits_only: Sources
) -> tuple[dict[str, Runner], dict]:
    runners: dict[str, Runner] = {}
    unavailable: dict[str, str] = {}
    for variant in tqdm(variants, desc="load", unit="variant", leave=False, disable=None):
        opened = open_variant(variant, logits_only if variant.family == LOGITS_ONLY else sources)
        if isinstance(opened, Unavailable):
            unavailable[variant.name] = opened.reason
        else:
            runners[variant.name] = opened
    return runners, unavailable


def leaves_threads_spinning(variant: Variant) -> bool:
    """Whether ``variant``'s idle thread pool keeps spinning long enough to slow the next one.

    True for an ORT CPU session with more than one intra-op thread (ORT's default is one per
    core): its pool spins for some 30-50 ms after a call (see :mod:`export.runtimes.timing`).
    PyTorch's OpenMP pool is not paused after: its spin is short (a one-thread ORT session
    right after a two-thread PyTorch call ran at 7.8 ms instead of 7.2 ms, batch 256), and
    a pause would let the pool fall asleep, so that PyTorch's own next block would time
    waking it up (84 ms instead of 0.4 ms per call at batch 1 with another process on a core).
    """
    if variant.cuda or variant.runtime not in ("onnxruntime", "openvino"):
        return False
    return (variant.options.threads or os.cpu_count() or 1) > 1


def _bind_and_check(
    variant: Variant, runner: Runner, batch: np.ndarray, ref: dict[str, np.ndarray]
) -> tuple[Bound | None, Cell]:
    """The bound runner, or a not-run / failed-parity cell instead of one."""
    b = batch.shape[0]
    try:
        bound = runner.bind(batch)
        with bound.setting():
            bound.step()
        got = bound.read()
    except Unavailable as e:
        return None, Cell(variant, b, "not run", reason=str(e))
    except Exception as e:  # a runtime that crashes at this batch size is reported, not fatal
        log.debug("%s failed at batch %d", variant.name, b, exc_info=True)
        return None, Cell(variant, b, "not run", reason=f"failed: {first_line(e)}")
    passed, max_abs, tol_ratio = _parity(variant, got, ref)
    if not passed:
        reason = f"output differs from the reference (tolerance ratio {tol_ratio:.3g})"
        cell = Cell(
            variant, b, "failed parity", reason, max_abs_err=max_abs, tolerance_ratio=tol_ratio
        )
        return None, cell
    return bound, Cell(variant, b, "run", max_abs_err=max_abs, tolerance_ratio=tol_ratio)


def _sweep_batch(
    cfg: SweepConfig,
    variants: list[Variant],
    loaded: dict[str, Runner],
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    input_size: tuple[int, int],
    b: int,
) -> dict[str, Cell]:
    generator = torch.Generator().manual_seed(cfg.seed + b)
    batch = torch.randn(b, 3, *input_size, generator=generator).numpy()
    ref = reference(batch)
    runners, cells = {}, {}
    for variant in variants:
        if variant.name not in loaded:
            continue
        bound, cell = _bind_and_check(variant, loaded[variant.name], batch, ref)
        cells[variant.name] = cell
        if bound is not None:
            runners[variant.name] = bound
    if BASELINE not in runners:
        raise BenchmarkError(
            f"the baseline {BASELINE} did not run at batch {b}: {cells[BASELINE].reason}"
        )
    by_name = {v.name: v for v in variants}
    groups = {name: f"{by_name[name].runtime}-{by_name[name].device}" for name in runners}
    samples = measure_interleaved(
        runners,
        rounds=cfg.rounds,
        warmup=cfg.warmup,
        block_s=cfg.block_s,
        groups=groups,
        seed=cfg.seed + b,
        pause_after=[name for name in runners if leaves_threads_spinning(by_name[name])],
    )
    for name, s in samples.items():
        cell = cells[name]
        cell.samples = s
        cell.stats = summarise(s)
        cell.speedup = latency_ratio(samples[BASELINE], s)
    return cells


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Measure every selected variant at every batch size; see the module docstring."""
    _check_config(cfg)
    variants = select_variants(cfg)
    meta = _meta(cfg)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rmb-bench-onnx-") as tmp:
        sources, logits_only, ckpt = _sources(cfg, Path(tmp))
        input_size = ckpt.input_size
        meta["onnx_files"] = {k: str(v) for k, v in sources.files.items()}
        flops = {  # the classifier's: the OOD score's few extra ops are not counted as work
            UNFOLDED: flops_per_image(logits_only.unfolded, input_size),
            FOLDED: flops_per_image(logits_only.folded, input_size),
        }
        peak = measure_peak(cfg.peak_size, cfg.peak_repeats)
        loaded, unavailable = _load_all(variants, sources, logits_only)
        cuda_used = any(v.cuda for v in variants if v.name in loaded)
        reference = float64_reference(sources.unfolded, sources.output_names)
        cells: dict[tuple[str, int], Cell] = {}
        for b in tqdm(cfg.batch_sizes, desc="batch sizes", unit="size", leave=False, disable=None):
            found = _sweep_batch(cfg, variants, loaded, reference, input_size, b)
            for variant in variants:
                cells[(variant.name, b)] = found.get(variant.name) or Cell(
                    variant, b, "not run", reason=unavailable.get(variant.name)
                )
        peak = peak.merged(measure_peak(cfg.peak_size, cfg.peak_repeats))
        cuda_peak = best_sgemm_rate(4096, device="cuda") if cuda_used else None
        profiles = _profiles(cfg, sources, input_size) if cfg.profile and not cfg.cuda_only else []
    meta["load_average_after"] = list(os.getloadavg())
    meta["seconds"] = time.perf_counter() - start
    return SweepResult(
        config=cfg,
        variants=variants,
        cells=cells,
        fold_pairs=_fold_pairs(variants, cells, cfg.batch_sizes),
        ood_cost=_ood_cost(cells, cfg.batch_sizes),
        int8_pairs=_fold_pairs(variants, cells, cfg.batch_sizes, (FOLDED, INT8)),
        flops=flops,
        peak=peak,
        cuda_peak_flops_per_s=cuda_peak,
        meta=meta,
        profiles=profiles,
    )


def _profiles(cfg: SweepConfig, sources: Sources, input_size: tuple[int, int]) -> list[Profile]:
    """The baseline, ORT without optimisations (both files) and the tuned ORT session, op by op.

    At the smallest and the largest batch size: the evidence for the batch-1 and batch-256
    targets and for what folding saves in a runtime that does not fuse on its own.
    """
    out = []
    for b in sorted({min(cfg.batch_sizes), max(cfg.batch_sizes)}):
        generator = torch.Generator().manual_seed(cfg.seed + b)
        batch = torch.randn(b, 3, *input_size, generator=generator).numpy()
        out.append(torch_profile(sources.unfolded, batch, f"{BASELINE} (module hooks)"))
        for folded in (False, True):
            kind = FOLDED if folded else UNFOLDED
            out.append(
                ort_profile(
                    sources.onnx(folded), OrtOptions("disabled"), batch, f"ort-disabled/{kind}"
                )
            )
        tuned = OrtOptions("all", threads=1)
        out.append(
            ort_profile(sources.onnx(True), tuned, batch, "ort-all-t1/folded (ORT profiler)")
        )
        if INT8 in sources.files:
            label = "ort-all-t1/int8 (ORT profiler)"
            out.append(ort_profile(sources.files[INT8], tuned, batch, label))
    return out


def _fold_pairs(
    variants: list[Variant],
    cells: dict[tuple[str, int], Cell],
    batch_sizes: tuple[int, ...],
    kinds: tuple[str, str] = (UNFOLDED, FOLDED),
) -> dict[tuple[str, int], Ratio]:
    """Latency of ``kinds[0]`` over ``kinds[1]`` for every family that ran both, per batch size.

    Unfolded over folded by default; (folded, int8) gives what int8 gains in the same runtime.
    """
    pairs = {}
    families = {v.family for v in variants}
    for family in sorted(families):
        for b in batch_sizes:
            u = cells.get((f"{family}/{kinds[0]}", b))
            f = cells.get((f"{family}/{kinds[1]}", b))
            if u and f and u.samples is not None and f.samples is not None:
                pairs[(family, b)] = latency_ratio(u.samples, f.samples)
    return pairs


def _ood_cost(cells: dict[tuple[str, int], Cell], batch_sizes: tuple[int, ...]) -> dict[int, Ratio]:
    """With-``ood_score`` over logits-only latency of the folded file (ORT, same rounds)."""
    out = {}
    for b in batch_sizes:
        with_ood = cells.get((f"{WITH_OOD}/{FOLDED}", b))
        alone = cells.get((f"{LOGITS_ONLY}/{FOLDED}", b))
        if with_ood and alone and with_ood.samples is not None and alone.samples is not None:
            out[b] = latency_ratio(with_ood.samples, alone.samples)
    return out
