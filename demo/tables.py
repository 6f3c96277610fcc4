"""What the page shows, as DataFrames and Markdown, from the dataclasses of demo.inference.

No Gradio here: the same tables serve the page and the ``/classify`` and ``/benchmark`` API.
"""

from __future__ import annotations

import pandas as pd

from demo.inference import UNKNOWN, Classification, Throughput
from demo.runtimes import TITLES, RuntimeSet, title
from export.runtimes.variant import PYTORCH, Variant

TABLE_HEADERS = [
    "runtime",
    "folded",
    "device / provider",
    "prediction",
    "confidence",
    "ood_score",
    "p50 ms",
    "p90 ms",
    "max |Δ logits| vs float64",
    "BatchNorm ops",
    "ops",
    "KiB",
]
TABLE_NOTES = (
    "p50 / p90: median and 90th percentile of one call on a batch of 1, over the timed runs "
    "after 3 warm-up calls, host-device copies included. max |Δ logits|: largest difference "
    "from the unfolded network run in float64. BatchNorm ops: in the model as stored; for ONNX "
    "Runtime also how many it still runs after fusing Conv+BatchNorm itself at load time. "
    "ops: graph nodes. KiB: the .onnx file, or the saved state_dict for PyTorch. ood_score: "
    "each variant's own out-of-distribution score (higher = less like the training photos); "
    "the float64 reference's decides *unknown*."
)


def classification_table(result: Classification) -> pd.DataFrame:
    """One row per variant that ran."""
    rows = []
    for r in result.results:
        facts = r.facts
        if facts.batchnorm_ops_run is None or facts.batchnorm_ops_run == facts.batchnorm_ops:
            bn = str(facts.batchnorm_ops)
        else:
            bn = f"{facts.batchnorm_ops} (ORT runs {facts.batchnorm_ops_run})"
        if r.variant.runtime != PYTORCH:
            device = f"{r.variant.device.upper()} ({r.device_label})"
        elif r.variant.device == "cuda":
            device = f"CUDA ({r.device_label})"
        else:
            device = "CPU"
        rows.append(
            [
                TITLES[r.variant.runtime],
                ("yes, int8" if r.variant.int8 else "yes") if r.variant.folded else "no",
                device,
                r.prediction,
                round(r.confidence, 6),
                "-" if r.ood_score is None else round(r.ood_score, 6),
                round(r.p50_ms, 3),
                round(r.p90_ms, 3),
                float(f"{r.max_abs_dlogits:.2e}"),
                bn,
                facts.ops if facts.ops is not None else "?",
                round(facts.size_bytes / 1024, 1),
            ]
        )
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def label_value(result: Classification) -> dict[str, float] | str:
    """What ``gr.Label`` shows: exactly ``unknown`` for an unknown photo, else the probabilities."""
    return UNKNOWN if result.unknown else result.probabilities


def verdict_markdown(result: Classification) -> str:
    """Why the label is what it is: the score against the threshold, and the network's answer."""
    answer = result.network_label
    network = f"**{answer}** ({100 * result.probabilities[answer]:.1f}%)"
    if result.ood is None:
        return (
            f"This checkpoint has no out-of-distribution score (it predates it), so every photo "
            f"gets a denomination: the network answers {network}."
        )
    ood = result.ood
    if result.unknown:
        return (
            f"**Unknown**: this photo does not look like the notes the model was trained on. "
            f"Its OOD score {result.ood_score:.4g} is above the threshold {ood.threshold:.4g} "
            f"(method `{ood.method}`, float64 reference). The network alone would have answered "
            f"{network}."
        )
    return (
        f"Known: OOD score {result.ood_score:.4g} ≤ threshold {ood.threshold:.4g} (method "
        f"`{ood.method}`), so the network's answer stands: {network}."
    )


def latency_frame(result: Classification) -> pd.DataFrame:
    """p50 latency per variant, for the bar chart."""
    return pd.DataFrame(
        {
            "variant": [_short(r.variant) for r in result.results],
            "p50 ms": [r.p50_ms for r in result.results],
            "BatchNorm": [
                "folded int8" if r.variant.int8 else "folded" if r.variant.folded else "unfolded"
                for r in result.results
            ],
        }
    )


def _short(variant: Variant) -> str:
    name = "PyTorch" if variant.runtime == PYTORCH else "ORT"
    return f"{name} {variant.device.upper()} {variant.kind}"


def unavailable_markdown(runtimes: RuntimeSet) -> str:
    """The variants this machine cannot run, each with its reason."""
    if not runtimes.unavailable:
        return f"All {len(runtimes.all_variants)} variants run on this machine."
    total = len(runtimes.all_variants)
    lines = [f"**Not available here** ({len(runtimes.unavailable)} of {total}):"]
    lines += [f"- {title(u.variant)}: {u.reason}" for u in runtimes.unavailable]
    return "\n".join(lines)


def sweep_table(points: list[Throughput]) -> pd.DataFrame:
    """Images per second: one row per batch size, one column per variant."""
    columns: dict[str, dict[int, float]] = {}
    for p in points:
        name = _short(p.variant) + " img/s"
        columns.setdefault(name, {})[p.batch_size] = round(p.images_per_s, 1)
    sizes = sorted({p.batch_size for p in points})
    frame = pd.DataFrame({"batch size": sizes})
    for name, values in columns.items():
        frame[name] = [values.get(size) for size in sizes]
    return frame


def speedup_markdown(points: list[Throughput]) -> str:
    """Folded vs unfolded throughput at the largest batch, per runtime and device."""
    if not points:
        return ""
    largest = max(p.batch_size for p in points)
    at = {
        (TITLES[p.variant.runtime], p.variant.device, p.variant.folded): p
        for p in points
        if p.batch_size == largest and not p.variant.int8  # fp32 pairs only
    }
    lines = [f"**Folded vs unfolded at batch {largest}:**"]
    for (backend, device, folded), point in sorted(at.items()):
        twin = at.get((backend, device, not folded))
        if folded and twin is not None:
            ratio = point.images_per_s / twin.images_per_s
            lines.append(
                f"- {backend} on {device.upper()}: {twin.images_per_s:,.0f} → "
                f"{point.images_per_s:,.0f} images/s (×{ratio:.2f})"
            )
    return "\n".join(lines)


def header_markdown(runtimes: RuntimeSet) -> str:
    ckpt = runtimes.checkpoint
    test_acc = ckpt.metrics.get("test_acc")
    acc = f", test accuracy {100 * test_acc:.1f}%" if isinstance(test_acc, float) else ""
    return (
        f"Model: **{ckpt.arch}**, classes {', '.join(runtimes.class_names)}, trained on "
        f"`{ckpt.data}`{acc}. Input {ckpt.input_size[0]}×{ckpt.input_size[1]}, "
        f"normalised with the training mean/std. **{len(runtimes.available)} of "
        f"{len(runtimes.all_variants)}** variants run here."
    )
