"""The one runtime layer: every way export, the demo and the benchmarks run the network.

A :class:`~export.runtimes.variant.Variant` names a runtime, the unfolded or folded network, a
device and the runtime's options; :func:`~export.runtimes.open.open_variant` turns it into a
:class:`~export.runtimes.runner.Runner` or an explained
:class:`~export.runtimes.errors.Unavailable`. Parity, the demo and the benchmarks are lists of
variants plus their presentation. Adding a runtime means one opener in :mod:`.open`.

Modules, one job each:

- :mod:`.variant`: ``Variant`` and the options of each runtime.
- :mod:`.errors`: ``Unavailable`` (cannot run here, and why) and ``first_line``.
- :mod:`.runner`: ``Runner``/``Bound``: numpy in, every named output out (``logits`` first).
- :mod:`.sessions`: the one onnxruntime session factory, CUDA counted only when it really runs.
- :mod:`.torch_runner` / :mod:`.ort_runner`: the two runtimes.
- :mod:`.devices`: is PyTorch CUDA here; TF32 off.
- :mod:`.open`: ``open_variant(variant, sources)``.
- :mod:`.timing`: latency measurement (per call, and interleaved rounds) and its statistics.

Nothing is imported here, so importing the package loads neither torch nor onnxruntime.
"""
