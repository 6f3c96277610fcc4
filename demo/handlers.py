"""What each button of the page does: plain functions over a loaded RuntimeSet, no page needed.

The page calls them with raw values (every event runs with ``preprocess=False``), and so can
anyone through the API, with anything: NaN, None, 1e30, a list. So each handler checks every
value first and refuses a bad one with :class:`gradio.Error` and a message naming the field and
what it takes; the client then sees that message instead of ``"error": null``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import gradio as gr

from demo import folding, plots, tables
from demo.images import (
    MAX_UPLOAD_BYTES,
    ImageRejected,
    decode_data_url,
    decode_image,
    load_upload,
)
from demo.inference import BATCH_SIZES, classify, sweep
from demo.runtimes import RuntimeSet

log = logging.getLogger(__name__)

MAX_RUNS = 200
MAX_SWEEP_RUNS = 100
MAX_SEED = 2**32 - 1
DEPTHS = (2, 200)


def refuse(message: str, title: str = "Error") -> gr.Error:
    """The error a client sees: ``message`` as is, no traceback in the server log."""
    return gr.Error(message, title=title, print_exception=False)


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; a :class:`gradio.Error` saying so otherwise."""
    wanted = f"{what} must be a whole number from {low} to {high}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise refuse(wanted)
    try:
        number = float(value)
    except ValueError:
        raise refuse(wanted) from None
    if not math.isfinite(number) or number != math.floor(number) or not low <= number <= high:
        raise refuse(wanted)
    return int(number)


def upload_source(payload: Any) -> str:
    """The uploaded file's path (or a ``data:`` URL) from gr.Image's raw payload.

    The classify event runs with ``preprocess=False`` so that gr.Image does not decode the
    upload with PIL itself: corrupt files and decompression bombs must reach
    :mod:`demo.images` undecoded. Gradio still checks, before this runs, that the path lies in
    its upload cache.
    """
    if payload is None:
        raise refuse("no image: upload, paste or photograph a banknote first")
    if not isinstance(payload, dict):
        raise refuse("the image arrived in an unknown form: upload it again")
    if isinstance(payload.get("path"), str) and payload["path"]:
        return payload["path"]
    url = payload.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        return url
    raise refuse("the image arrived without a file: upload it again")


def classify_upload(
    runtimes: RuntimeSet, payload: Any, runs: Any, max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[Any, ...]:
    """/classify: the label (``unknown`` or the reference probabilities), the per-variant table,
    the latency bars, and why the label is what it is (appended last: older clients that read
    the first three outputs keep working)."""
    runs = whole_number(runs, "runs", 1, MAX_RUNS)
    upload = upload_source(payload)
    try:
        if upload.startswith("data:"):
            image = decode_image(decode_data_url(upload, max_bytes))
        else:
            image = load_upload(upload, max_bytes=max_bytes)
    except ImageRejected as e:
        log.info("upload refused: %s", e)
        raise refuse(str(e), title="Image refused") from e
    result = classify(runtimes, image, runs=runs)
    table, latency = tables.classification_table(result), tables.latency_frame(result)
    return tables.label_value(result), table, latency, tables.verdict_markdown(result)


def benchmark(runtimes: RuntimeSet, max_batch: Any, runs: Any) -> tuple[Any, ...]:
    """/benchmark: images per second at every batch size up to ``max_batch``."""
    largest = whole_number(max_batch, "the largest batch size", 1, max(BATCH_SIZES))
    if largest not in BATCH_SIZES:
        sizes = ", ".join(map(str, BATCH_SIZES))
        raise refuse(f"the largest batch size must be one of {sizes}, got {max_batch!r}")
    runs = whole_number(runs, "runs", 1, MAX_SWEEP_RUNS)
    points = sweep(runtimes, [s for s in BATCH_SIZES if s <= largest], runs=runs)
    summary = tables.speedup_markdown(points)
    return tables.sweep_table(points), plots.throughput_figure(points), summary


def layer_figure(runtimes: RuntimeSet, name: Any) -> Any:
    """/layer_weights: one layer's weights before and after folding."""
    layers = folding.weight_layers(runtimes.unfolded, runtimes.folded)
    if not isinstance(name, str) or name not in layers:
        raise refuse(f"no layer {name!r} to compare: choose one of {', '.join(layers)}")
    layer = folding.layer_weights(runtimes.unfolded, runtimes.folded, name, runtimes.fold_report)
    return plots.weights_figure(layer)


def init_study(seed: Any, depth: Any) -> tuple[Any, ...]:
    """/init_study: std per layer of the course's deep MLP under each initialisation."""
    from train.init_study import run_init_study, summary_table

    seed = whole_number(seed, "seed", 0, MAX_SEED)
    depth = whole_number(depth, "layers", *DEPTHS)
    results = run_init_study(seed=seed, depth=depth)
    return plots.init_study_image(results), f"```\n{summary_table(results)}\n```"
