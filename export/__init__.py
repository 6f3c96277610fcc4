"""ONNX export of the unfolded and folded networks, with parity proofs (``python -m export``).

Modules, one job each:

- :mod:`export.onnx_writer`: PyTorch → ONNX keeping every BatchNorm; checker; atomic save.
- :mod:`export.metadata`: what a deployed file says about itself (classes, mean/std, sha256).
- :mod:`export.inputs`: the valid/test images and random batches parity runs on.
- :mod:`export.runtimes`: the one runtime layer (variants, sessions, runners, timing), used by
  parity, the demo and the benchmarks; CUDA chosen at run time.
- :mod:`export.parity_run`: the variants, their tolerances, ``parity.json`` / ``parity.md``.
- :mod:`export.proof`: whether ``parity.json`` proves the files of a checkpoint.
- :mod:`export.triton`: a Triton model repository with ``config.pbtxt`` per model.
- :mod:`export.pipeline`: all of the above for one checkpoint (what the CLI calls).

Nothing is imported here, so ``python -m export --help`` loads neither torch nor onnx.
"""
