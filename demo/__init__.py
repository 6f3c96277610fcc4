"""The Gradio demo: what BatchNorm folding changes on a real photo, and what it costs.

``python -m demo`` serves it. Library modules (no Gradio): :mod:`demo.images` (upload
decoding and refusal), :mod:`demo.runtimes` (the nine variants of :mod:`export.runtimes`),
:mod:`demo.inference` (classify, sweep), :mod:`demo.folding` (fold report, weights),
:mod:`demo.tables`, :mod:`demo.plots`, :mod:`demo.examples`, :mod:`demo.artifacts`. The page
itself is :func:`demo.app.build_app`.
"""
