"""The one runtime layer: every way export, the demo and the benchmarks run the network.

:mod:`.variant` (``Variant``: runtime × folded × device × options), :mod:`.open`
(``open_variant(variant, sources) -> Runner | Unavailable``), :mod:`.runner` (numpy in, every
named output out), :mod:`.sessions` (the one onnxruntime session factory), :mod:`.torch_runner`,
:mod:`.ort_runner`, :mod:`.timing`, :mod:`.errors`. Adding a runtime means one opener in
:mod:`.open`. Nothing is imported here: importing the package loads neither torch nor ORT.
"""
