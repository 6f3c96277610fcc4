"""What the inference benchmark concludes: FLOP rates, targets, the recommendation, JSON, markdown.

FLOP rates use one number for every variant, the folded network's FLOPs per image: the work the
function needs. An unfolded variant that also executes its BatchNorms does ~1% more arithmetic,
which counts as overhead, not as useful work. CUDA variants are compared to a CUDA sgemm peak,
CPU variants to the CPU one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from benchmarks.floor import floor_ratio, floor_seconds
from benchmarks.op_profile import profile_markdown
from benchmarks.sweep import Cell, SweepResult
from benchmarks.variants import BASELINE, LOGITS_ONLY, how
from export.runtimes.timing import Ratio
from export.runtimes.variant import FOLDED, OPENVINO, UNFOLDED, Variant

# The goals of issue 6 for this project's CPU (ratios from one run).
BATCH1_SPEEDUP_GOAL = 15.0
BATCH256_PEAK_GOAL = 0.40
FOLD_GAIN_GOALS = {"pytorch-eager": 1.2, "ort-disabled": 1.1}
OOD_COST_GOAL = 0.10  # issue 9: the OOD score costs <= 10% extra batch-1 latency in ORT
# The goals of issue 11.
FLOOR_BATCH1_GOAL = 1.5  # recommended batch-1 variant within 1.5× of the one-thread floor
INT8_GAIN_GOAL = 1.5  # int8 ≥ 1.5× the fp32 folded throughput at batch 256, same runtime
FLOOR_THREADS = (1, 2)
FLOP_CONVENTION = (  # benchmarks.flops' docstring, in one line
    "2 FLOPs per multiply-accumulate for Conv/Linear (bias not counted separately, as "
    "torch.utils.flop_counter), 2 per element for eval BatchNorm, 1 for ReLU, kernel-1 "
    "comparisons per MaxPool output"
)


def gflops(result: SweepResult, cell: Cell) -> float | None:
    if cell.stats is None:
        return None
    return cell.batch * result.flops_per_image / cell.stats.median_s / 1e9


def peak_fraction(result: SweepResult, cell: Cell) -> float | None:
    rate, peak = gflops(result, cell), result.peak_for(cell.variant)
    if rate is None or not peak:
        return None
    return rate * 1e9 / peak


def floor_ratios(result: SweepResult, cell: Cell) -> dict[int, float | None]:
    """The cell's median over the 1- and 2-thread compute floors (CPU cells; else empty)."""
    if cell.stats is None or cell.variant.cuda:
        return {}
    return {
        t: floor_ratio(cell.stats.median_s, result.flops_per_image, cell.batch, result.peak, t)
        for t in FLOOR_THREADS
    }


def _fastest(cells: list[Cell]) -> Cell:
    return min(cells, key=lambda c: c.stats.median_s)


def _ran(result: SweepResult, b: int, *, cuda: bool = False) -> list[Cell]:
    """The cells that ran at batch ``b``; not the logits-only twin, which only measures the OOD
    score's cost (it lacks ``ood_score``, so it is no way to serve the model)."""
    return [
        c
        for (name, batch), c in result.cells.items()
        if batch == b
        and c.status == "run"
        and c.variant.cuda == cuda
        and c.variant.family != LOGITS_ONLY
    ]


# ----------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run (batch size or variant not run)


def _ratio_text(r: Ratio) -> str:
    return f"×{r.value:.2f} [{r.p10:.2f}–{r.p90:.2f}]"


def _speedup_text(cell: Cell) -> str:
    s = cell.speedup
    return f"×{s.value:.1f} [{s.p10:.1f}–{s.p90:.1f}] ({cell.variant.name})"


def _target(name: str, goal: str, found: tuple[str, bool] | None, missing: str) -> Target:
    """``found`` (what was measured, whether it meets the goal), else ``missing``: not measured."""
    return Target(name, goal, *(found or (missing, None)))


def targets(result: SweepResult) -> list[Target]:
    """The issue's CPU goals, each with what this run measured."""
    batch1 = [c for c in _ran(result, 1) if c.variant.folded and c.variant.exact]
    best = max(batch1, key=lambda c: c.speedup.value, default=None)
    found = best and (_speedup_text(best), best.speedup.value >= BATCH1_SPEEDUP_GOAL)
    goal = f">= {BATCH1_SPEEDUP_GOAL:g}× eager unfolded"
    out = [_target("batch 1 speed-up", goal, found, "batch 1 not run")]
    big = [c for c in _ran(result, 256) if c.variant.exact]  # an fp32 peak for fp32 work
    best = max(big, key=lambda c: peak_fraction(result, c) or 0.0, default=None)
    found = None
    if best:
        frac = peak_fraction(result, best) or 0.0
        text = f"{100 * frac:.0f}% ({gflops(result, best):.1f} GFLOP/s, {best.variant.name})"
        found = (text, frac >= BATCH256_PEAK_GOAL)
    goal = f">= {100 * BATCH256_PEAK_GOAL:.0f}%"
    out += [_target("batch 256 share of sgemm peak", goal, found, "batch 256 not run")]
    out.append(ood_cost_target(result))
    for family, goal in FOLD_GAIN_GOALS.items():
        pair = result.fold_pairs.get((family, 1))
        found = pair and (_ratio_text(pair), pair.value >= goal)
        name = f"batch 1 folded vs unfolded, {family}"
        out.append(_target(name, f">= {goal:g}×", found, "not run"))
    # Issue 11: batch 1 within 1.5× of the floor; int8 >= 1.5× fp32 at batch 256, same runtime.
    exact1 = [c for c in _ran(result, 1) if c.variant.exact]
    best = _fastest(exact1) if exact1 else None
    found = None
    if best:
        r = floor_ratios(result, best)[1]
        text = f"{r:.2f}× ({best.variant.name}, {1e6 * best.stats.median_s:.1f} µs)"
        found = (text, r <= FLOOR_BATCH1_GOAL)
    name = "batch 1 fastest fp32 variant vs the 1-thread floor"
    out.append(_target(name, f"<= {FLOOR_BATCH1_GOAL:g}×", found, "batch 1 not run"))
    pairs = {f: r for (f, b), r in result.int8_pairs.items() if b == 256}
    family = max(pairs, key=lambda f: pairs[f].value, default=None)
    found = family and (
        f"{_ratio_text(pairs[family])} ({family})",
        pairs[family].value >= INT8_GAIN_GOAL,
    )
    name, missing = "batch 256 int8 vs fp32 folded, same runtime", "no int8 pair at batch 256"
    out.append(_target(name, f">= {INT8_GAIN_GOAL:g}×", found, missing))
    if result.fold_pairs:
        worst_key = min(result.fold_pairs, key=lambda k: result.fold_pairs[k].value)
        worst = result.fold_pairs[worst_key]
        slower = [f"{f} @ {b}" for (f, b), r in result.fold_pairs.items() if r.slower_beyond_noise]
        text = (
            f"slower beyond noise: {', '.join(slower)}"
            if slower
            else f"none; lowest {_ratio_text(worst)} ({worst_key[0]} @ batch {worst_key[1]})"
        )
        goal = "p90 of per-round ratio >= 1"
        out.append(Target("folded never slower beyond noise", goal, text, not slower))
    return out


# ----------------------------------------------------------------------------------------------
# Recommendation


def ood_cost_target(result: SweepResult) -> Target:
    """Extra batch-1 latency of the folded file with ``ood_score`` over the logits-only graph."""
    name, goal = "batch 1 OOD score cost (ORT, folded)", f"<= +{100 * OOD_COST_GOAL:.0f}%"
    cost = result.ood_cost.get(1)
    if cost is None:
        return Target(name, goal, "not run (batch 1, or ort-all-t1-iobind and its twin)", None)
    text = (
        f"+{100 * (cost.value - 1):.1f}% [{100 * (cost.p10 - 1):+.1f}…{100 * (cost.p90 - 1):+.1f}%]"
        " (ort-all-t1-iobind/folded vs its logits-only twin)"
    )
    return Target(name, goal, text, cost.value - 1 <= OOD_COST_GOAL)


def recommendation(result: SweepResult) -> dict[str, Any]:
    """The fastest CPU variant per batch size, and the one best across all of them.

    "Best across all" is the highest geometric mean of the speed-ups over the batch sizes,
    among variants that ran at every one; CUDA variants get their own per-batch pick.
    """
    sizes = result.config.batch_sizes
    per_batch = {}
    cuda_per_batch = {}
    int8_per_batch = {}
    peers_ahead = {}
    for b in sizes:
        ran = _ran(result, b)
        exact = [c for c in ran if c.variant.exact]
        if exact:
            fastest = _fastest(exact)
            per_batch[b] = fastest.variant.name
            if fastest.variant.runtime == OPENVINO:
                ours = [c for c in exact if c.variant.runtime != OPENVINO]
                mine = _fastest(ours) if ours else None
                if mine is not None:
                    gain = mine.stats.median_s / fastest.stats.median_s
                    peers_ahead[b] = f"{fastest.variant.name} (×{gain:.2f} vs {mine.variant.name})"
        int8 = [c for c in ran if c.variant.int8]
        if int8:
            int8_per_batch[b] = _fastest(int8).variant.name
        gpu = _ran(result, b, cuda=True)
        if gpu:
            cuda_per_batch[b] = _fastest(gpu).variant.name
    scores = {}
    for v in result.variants:
        if v.cuda or v.family == LOGITS_ONLY or not v.exact or v.runtime == OPENVINO:
            continue
        cells = [result.cells[(v.name, b)] for b in sizes]
        if all(c.status == "run" for c in cells):
            scores[v.name] = math.exp(sum(math.log(c.speedup.value) for c in cells) / len(cells))
    overall = max(scores, key=scores.get) if scores else None
    variant = next((v for v in result.variants if v.name == overall), None)
    lines = []
    if overall is not None:
        gains = ", ".join(
            f"batch {b}: ×{result.cells[(overall, b)].speedup.value:.1f}" for b in sizes
        )
        lines.append(
            f"Recommended on this CPU: {overall} — {how(variant)} ({gains} vs {BASELINE})."
        )
    listings = {
        "Fastest fp32 per batch size: ": per_batch,
        "A peer is faster in fp32 at batch ": peers_ahead,
        "Fastest int8 (decisions proven by python -m export, not fp32-exact): ": int8_per_batch,
        "Fastest on CUDA: ": cuda_per_batch,
    }
    lines += [
        title + "; ".join(f"{b}: {n}" for b, n in found.items()) + "."
        for title, found in listings.items()
        if found
    ]
    return {
        "overall": overall,
        "how": how(variant) if variant else None,
        "geomean_speedup": scores.get(overall) if overall else None,
        "per_batch": {str(b): n for b, n in per_batch.items()},
        "cuda_per_batch": {str(b): n for b, n in cuda_per_batch.items()},
        "int8_per_batch": {str(b): n for b, n in int8_per_batch.items()},
        "peers_ahead": {str(b): t for b, t in peers_ahead.items()},
        "text": " ".join(lines) if lines else "nothing ran: no recommendation",
    }


# ----------------------------------------------------------------------------------------------
# JSON


def _variant_dict(v: Variant) -> dict[str, Any]:
    return {
        "name": v.name,
        "runtime": v.runtime,
        "device": v.device,
        "folded": v.folded,
        "family": v.family,
        "how": how(v),
        "options": dataclasses.asdict(v.options),
        "baseline": v.name == BASELINE,
    }


def _cell_dict(result: SweepResult, c: Cell) -> dict[str, Any]:
    out: dict[str, Any] = {
        "variant": c.variant.name,
        "batch": c.batch,
        "status": c.status,
        "reason": c.reason,
        "max_abs_err": c.max_abs_err,
        "tolerance_ratio": c.tolerance_ratio,
    }
    if c.stats is not None:
        out.update(
            median_ms=1e3 * c.stats.median_s,
            p90_ms=1e3 * c.stats.p90_s,
            images_per_s=c.stats.throughput(c.batch),
            speedup_vs_baseline=c.speedup.value,
            speedup_p10=c.speedup.p10,
            speedup_p90=c.speedup.p90,
            gflops=gflops(result, c),
            peak_fraction=peak_fraction(result, c),
            calls=c.stats.calls,
            rounds=c.stats.rounds,
            floor_ratio_1_thread=floor_ratios(result, c).get(1),
            floor_ratio_2_threads=floor_ratios(result, c).get(2),
        )
    return out


def _pair_dict(key: tuple[str, int], r: Ratio) -> dict[str, Any]:
    return {"family": key[0], "batch": key[1], "speedup": r.value, "p10": r.p10, "p90": r.p90}


def to_dict(result: SweepResult, command: str | None = None) -> dict[str, Any]:
    cfg = dataclasses.asdict(result.config)
    return {
        "command": command,
        "meta": result.meta,
        "config": cfg,
        "baseline": BASELINE,
        "batch_sizes": list(result.config.batch_sizes),
        "flop_convention": FLOP_CONVENTION,
        "flops_per_image": {k: result.flops[k].to_dict() for k in (UNFOLDED, FOLDED)},
        "flops_per_image_for_rates": result.flops_per_image,
        "peak": result.peak.to_dict(),
        "cuda_peak_flops_per_s": result.cuda_peak_flops_per_s,
        "variants": [_variant_dict(v) for v in result.variants],
        "results": [_cell_dict(result, c) for c in result.cells.values()],
        "floor_s_per_image": {
            str(t): floor_seconds(result.flops_per_image, 1, r)
            for t, r in result.peak.by_threads.items()
        },
        "int8_pairs": [_pair_dict(key, r) for key, r in result.int8_pairs.items()],
        "fold_pairs": [
            {**_pair_dict(key, r), "slower_beyond_noise": r.slower_beyond_noise}
            for key, r in result.fold_pairs.items()
        ],
        "ood_cost": [  # folded with ood_score / logits-only latency, same rounds
            {"batch": b, "ratio": r.value, "p10": r.p10, "p90": r.p90}
            for b, r in result.ood_cost.items()
        ],
        "targets": [dataclasses.asdict(t) for t in targets(result)],
        "recommendation": recommendation(result),
        "profiles": [p.to_dict() for p in result.profiles],
    }


# ----------------------------------------------------------------------------------------------
# Markdown


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def to_markdown(result: SweepResult, command: str | None = None) -> str:
    m, sizes = result.meta, result.config.batch_sizes
    peak = result.peak
    by_threads = ", ".join(
        f"{t} thread{'s' * (t > 1)}: {r / 1e9:.0f}" for t, r in peak.by_threads.items()
    )
    floors = ", ".join(
        f"{1e6 * floor_seconds(result.flops_per_image, 1, r):.1f} µs at {t} thread{'s' * (t > 1)}"
        for t, r in peak.by_threads.items()
    )
    lines = ["# Inference latency: PyTorch, ONNX Runtime and OpenVINO; fp32 and int8", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"Machine: {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs); torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads), onnxruntime {m.get('onnxruntime')}. "
        f"Run {m.get('started')}, {m.get('seconds', 0):.0f} s. Load average (1/5/15 min): "
        f"{_load(m.get('load_average_before', []))} before, "
        f"{_load(m.get('load_average_after', []))} after.",
        "",
        f"Network: {result.flops[FOLDED].per_image / 1e6:.3f} MFLOP per image folded, "
        f"{result.flops[UNFOLDED].per_image / 1e6:.3f} unfolded ({FLOP_CONVENTION}). "
        f"Machine limit: fp32 sgemm {peak.size}³, best of {peak.repeats}: "
        f"**{peak.flops_per_s / 1e9:.0f} GFLOP/s** ({by_threads} GFLOP/s)"
        + (
            f"; CUDA sgemm {result.cuda_peak_flops_per_s / 1e9:.0f} GFLOP/s"
            if result.cuda_peak_flops_per_s
            else ""
        )
        + f". Compute floor per image (FLOPs / sgemm rate, same run): {floors}; the detail "
        "table gives each variant's median over the 1- and 2-thread floors (× floor).",
        "",
        f"Timing: {result.config.warmup} warm-up calls, then {result.config.rounds} interleaved "
        f"rounds; in each, every variant runs one block of calls (~5 ms, after one untimed "
        f"call; a 50 ms pause follows multi-thread ORT sessions, whose idle pools spin), "
        f"runtimes grouped, order shuffled per round (export/runtimes/timing.py). Every ratio "
        f"is against {BASELINE} in the same rounds; [p10–p90] is the spread of the per-round "
        f"ratio. On a shared two-core machine, 2-thread PyTorch variants are erratic when "
        f"another process holds a core (OpenMP barriers wait for a descheduled thread): compare "
        f"their p90 with their median.",
        "",
        "## Median latency in ms (× faster than " + BASELINE + ")",
        "",
        "| variant | " + " | ".join(f"batch {b}" for b in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for v in result.variants:
        row = []
        for b in sizes:
            c = result.cells[(v.name, b)]
            row.append(f"{_ms(c.stats.median_s)} (×{c.speedup.value:.1f})" if c.stats else "—")
        label = f"**{v.name}** (baseline)" if v.name == BASELINE else v.name
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += [
        "",
        "## Detail",
        "",
        "| variant | batch | median ms | p90 ms | images/s | × baseline [p10–p90] | GFLOP/s "
        "| % of peak | × floor 1t / 2t | max abs err |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in sizes:
        for v in result.variants:
            c = result.cells[(v.name, b)]
            if c.stats is None:
                continue
            s = c.speedup
            fl = floor_ratios(result, c)
            floor_text = " / ".join("—" if fl.get(t) is None else f"{fl[t]:.2f}" for t in (1, 2))
            lines.append(
                f"| {v.name} | {b} | {_ms(c.stats.median_s)} | {_ms(c.stats.p90_s)} "
                f"| {c.stats.throughput(b):,.0f} | ×{s.value:.2f} [{s.p10:.2f}–{s.p90:.2f}] "
                f"| {gflops(result, c):.2f} | {100 * (peak_fraction(result, c) or 0):.1f}% "
                f"| {floor_text if fl else '—'} | {c.max_abs_err:.1e} |"
            )
    lines += _pair_table(
        "Folded vs unfolded in the same runtime (unfolded latency / folded latency)",
        result.fold_pairs,
        sizes,
    )
    lines += _pair_table(
        "int8 vs fp32 folded in the same runtime (fp32 latency / int8 latency)",
        result.int8_pairs,
        sizes,
    )
    lines += [
        "",
        "## Targets (issues 6 and 11, CPU)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for t in targets(result):
        met = "—" if t.met is None else "yes" if t.met else "**no**"
        lines.append(f"| {t.name} | {t.goal} | {t.measured} | {met} |")
    lines += ["", "## Recommendation", "", recommendation(result)["text"], ""]
    if result.profiles:
        lines += ["## Where the time goes (per-op profiles, same run)", ""]
        lines += profile_markdown(result.profiles)
    lines += ["## Variants", "", "| variant | how |", "|---|---|"]
    lines += [f"| {v.name} | {how(v)} |" for v in result.variants]
    not_run = _not_run(result)
    if not_run:
        lines += ["", "## Not run", ""]
        lines += [f"- {name}: {reason}" for name, reason in not_run.items()]
    return "\n".join(lines) + "\n"


def _not_run(result: SweepResult) -> dict[str, str]:
    """name (and batch sizes, when it ran at some) → reason, for every cell that did not run."""
    out: dict[str, str] = {}
    for v in result.variants:
        cells = [result.cells[(v.name, b)] for b in result.config.batch_sizes]
        missing = [c for c in cells if c.status != "run"]
        if not missing:
            continue
        if len(missing) == len(cells):
            out[v.name] = f"{missing[0].status}: {missing[0].reason}"
        else:
            for c in missing:
                out[f"{v.name} @ batch {c.batch}"] = f"{c.status}: {c.reason}"
    return out


def _pair_table(title: str, pairs: dict[tuple[str, int], Ratio], sizes: list[int]) -> list[str]:
    """Markdown lines: one row per runtime family, one ×ratio [p10–p90] cell per batch size."""
    if not pairs:
        return []
    lines = ["", f"## {title}", "", "| runtime | " + " | ".join(f"batch {b}" for b in sizes) + " |"]
    lines.append("|---|" + "---:|" * len(sizes))
    for family in sorted({f for f, _ in pairs}):
        cells = [pairs.get((family, b)) for b in sizes]
        row = [_ratio_text(r) if r else "—" for r in cells]
        lines.append(f"| {family} | " + " | ".join(row) + " |")
    return lines
