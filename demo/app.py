"""The Gradio page: one builder per tab, each wiring widgets to a handler of :mod:`demo.handlers`.

Built in :func:`build_app` from an already loaded :class:`demo.runtimes.RuntimeSet`, so nothing
loads per request. Every event runs with ``preprocess=False``: the handlers get the raw values
and check them (Gradio's own conversion would turn a crafted value into an unexplained error),
and uploads reach :mod:`demo.images` as the raw file (Gradio's own PIL decode would open
corrupt files and decompression bombs before any check could refuse them).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from demo import batch, folding, handlers, tables
from demo.handlers import MAX_RUNS, MAX_SWEEP_RUNS
from demo.images import MAX_UPLOAD_BYTES
from demo.inference import BATCH_SIZES, DEFAULT_RUNS
from demo.runtimes import RuntimeSet

log = logging.getLogger(__name__)

#: Gradio's upload cache: every hour, delete the uploads older than an hour (default).
DEFAULT_CACHE_MAX_AGE_S = 3600
CLASSIFY_CONCURRENCY = 4
COLUMN_WIDTHS = ["11%", "5%", "15%", "8%", "8%", "8%", "7%", "7%", "10%", "10%", "5%", "6%"]
INTRO = """
# What BatchNorm folding changes, and what it costs

A BN-LeNet tells 1-yuan from 100-yuan notes. **Folding** merges each BatchNorm into the
convolution or linear layer before it (`w' = w·s`, `b' = (b − μ)·s + β`, `s = γ/√(σ² + ε)`), so
inference skips the BatchNorm entirely. Here the same network runs **unfolded and folded**, in
**PyTorch eager** and **ONNX Runtime**, on every device this machine has; each variant is
compared with a float64 reference.
"""
CSS = """
#intro p { max-width: 60rem; }
#variants-table, #variants-table * {
  font-family: ui-sans-serif, system-ui, sans-serif; font-variant-numeric: tabular-nums;
}
#table-notes { font-size: 0.85em; opacity: 0.8; }
/* Vega draws axis labels and the legend below the plot area: let them show. */
#latency-plot, #latency-plot svg { overflow: visible !important; }
#latency-plot { padding-bottom: 56px !important; }
footer { display: none !important; }
"""


def launch_options() -> dict[str, Any]:
    """Look-and-feel arguments for ``Blocks.launch`` (Gradio 6 takes them there): Gradio's Soft
    theme with system fonts (no font downloads from third-party servers), and :data:`CSS`."""
    theme = gr.themes.Soft(
        primary_hue="blue",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "monospace"],
    )
    return {"theme": theme, "css": CSS}


# ----------------------------------------------------------------------------------------------
# The page


def build_app(
    runtimes: RuntimeSet,
    *,
    examples: list[Path] | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    cache_max_age_s: int = DEFAULT_CACHE_MAX_AGE_S,
) -> gr.Blocks:
    """The demo's Blocks (not launched, queue not configured: the caller does both).

    ``cache_max_age_s``: uploads older than this are deleted from Gradio's cache, checked as
    often (``gr.Blocks(delete_cache=...)``, which also empties it when the server stops).
    """
    with gr.Blocks(
        title="BatchNorm folding demo",
        analytics_enabled=False,
        delete_cache=(cache_max_age_s, cache_max_age_s),
    ) as app:
        gr.Markdown(INTRO, elem_id="intro")
        gr.Markdown(tables.header_markdown(runtimes))
        with gr.Tabs():
            classify_tab(runtimes, examples or [], max_upload_bytes)
            benchmark_tab(runtimes)
            folding_tab(runtimes)
            why_tab()
            batch.build_tab(runtimes, max_upload_bytes=max_upload_bytes)
    return app


def classify_tab(runtimes: RuntimeSet, examples: list[Path], max_upload_bytes: int) -> None:
    """One photo through every variant: prediction, table, latency bars."""
    on_classify = partial(handlers.classify_upload, runtimes, max_bytes=max_upload_bytes)
    with gr.Tab("Classify", id="classify"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                image = gr.Image(
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard", "webcam"],
                    label="Banknote photo",
                    height=300,
                    elem_id="photo",
                )
                runs = gr.Slider(
                    1,
                    MAX_RUNS,
                    value=DEFAULT_RUNS,
                    step=1,
                    label="timed runs per variant (after 3 warm-up runs)",
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify-btn")
                if examples:
                    gr.Examples(
                        [[str(p)] for p in examples],
                        inputs=[image],
                        label="Examples",
                        examples_per_page=8,
                    )
            with gr.Column(scale=3, min_width=360):
                label = gr.Label(
                    num_top_classes=len(runtimes.class_names),
                    label="Predicted note, in yuan, or unknown (float64 reference)",
                    elem_id="prediction",
                )
                verdict = gr.Markdown(elem_id="verdict")
                latency = gr.BarPlot(
                    x="variant",
                    y="p50 ms",
                    color="BatchNorm",
                    color_map={"unfolded": "#64748b", "folded": "#f97316"},
                    y_title="p50 latency (ms)",
                    height=280,
                    label="Median latency per call, batch of 1",
                    elem_id="latency-plot",
                )
        table = gr.Dataframe(
            headers=tables.TABLE_HEADERS,
            label="Every variant on this image",
            interactive=False,
            wrap=True,
            column_widths=COLUMN_WIDTHS,
            elem_id="variants-table",
        )
        gr.Markdown(tables.TABLE_NOTES, elem_id="table-notes")
        gr.Markdown(tables.unavailable_markdown(runtimes), elem_id="unavailable")
        button.click(
            on_classify,
            inputs=[image, runs],
            outputs=[label, table, latency, verdict],
            api_name="classify",
            preprocess=False,
            # Decoding and formatting overlap; the timed runs themselves take turns on
            # runtimes.lock, so concurrent requests never time each other.
            concurrency_limit=CLASSIFY_CONCURRENCY,
            concurrency_id="classify",
        )


def benchmark_tab(runtimes: RuntimeSet) -> None:
    """Throughput of every variant over batch sizes."""
    with gr.Tab("Benchmark", id="benchmark"):
        gr.Markdown(
            "Random images in batches of 1 to 256: median latency over the timed runs, "
            "and images per second. Folding removes work per image, so its gain shows "
            "most where the runtime does not fuse BatchNorm itself.\n\n"
            "**Recommended for CPU deployment** (measured by `make bench`, "
            "benchmarks/inference.py): the folded ONNX file in ONNX Runtime with "
            "`ORT_ENABLE_ALL`, IO binding and a pre-allocated output — 1 intra-op thread "
            "for single images, 2 for batches of 8 and more."
        )
        with gr.Row():
            max_batch = gr.Dropdown(
                [str(s) for s in BATCH_SIZES], value="256", label="largest batch size"
            )
            runs = gr.Slider(1, MAX_SWEEP_RUNS, value=10, step=1, label="timed runs per point")
            button = gr.Button("Run the sweep", variant="primary")
        speedup = gr.Markdown()
        throughput = gr.Plot(label="Throughput")
        sweep_df = gr.Dataframe(label="Images per second", interactive=False)
        button.click(
            partial(handlers.benchmark, runtimes),
            inputs=[max_batch, runs],
            outputs=[sweep_df, throughput, speedup],
            api_name="benchmark",
            preprocess=False,
            concurrency_limit=1,
            concurrency_id="benchmark",
        )


def folding_tab(runtimes: RuntimeSet) -> None:
    """The fold report, the ONNX op counts, and one layer's weights before and after."""
    on_layer = partial(handlers.layer_figure, runtimes)
    layers = folding.weight_layers(runtimes.unfolded, runtimes.folded)
    first_folded = next(
        (r.target for r in runtimes.fold_report.records if r.folded and r.target in layers),
        layers[0] if layers else None,
    )
    with gr.Tab("What folding did", id="folding"):
        gr.Markdown(f"### Fold report: {folding.report_summary(runtimes.fold_report)}")
        gr.Dataframe(
            pd.DataFrame(
                folding.report_rows(runtimes.fold_report),
                columns=["BatchNorm", "what happened", "folded into", "why left"],
            ),
            interactive=False,
            show_label=False,
        )
        gr.Markdown("### ONNX op types, unfolded vs folded file")
        gr.Dataframe(
            pd.DataFrame(
                folding.op_count_rows(*(runtimes.onnx_paths[f] for f in (False, True))),
                columns=["op type", "unfolded", "folded", "change"],
            ),
            interactive=False,
            show_label=False,
        )
        gr.Markdown(
            "### Weights before and after\nEach output channel of the layer is "
            "multiplied by its own `s = γ/√(σ² + ε)`, so the points of one channel lie on "
            "a line through the origin of slope `s`; the bias absorbs the mean and β."
        )
        layer = gr.Dropdown(layers, value=first_folded, label="layer")
        weights = gr.Plot(on_layer(first_folded) if first_folded else None, label="weights")
        layer.change(
            on_layer,
            inputs=[layer],
            outputs=[weights],
            api_name="layer_weights",
            preprocess=False,
            concurrency_limit=2,
        )


def why_tab() -> None:
    """The course's init study: why BatchNorm at all."""
    with gr.Tab("Why BatchNorm", id="why"):
        gr.Markdown(
            "The course's 100-layer MLP (`Linear(256, 256)` + ReLU) on random inputs: the "
            "std of each layer's output under three initialisations, and with a BatchNorm "
            "before every ReLU. Without BN the signal vanishes or explodes (✕ marks the "
            "first layer whose std is nan); with BN it stays near 0.58 whatever the init."
        )
        with gr.Row():
            seed = gr.Number(1, precision=0, label="seed")
            depth = gr.Slider(*handlers.DEPTHS, value=100, step=1, label="layers")
            button = gr.Button("Run the study", variant="primary")
        plot = gr.Image(type="pil", label="std per layer", format="png", interactive=False)
        table = gr.Markdown()
        button.click(
            handlers.init_study,
            inputs=[seed, depth],
            outputs=[plot, table],
            api_name="init_study",
            preprocess=False,
            concurrency_limit=1,
        )
