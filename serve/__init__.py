"""Serving the folded model at scale: ``python -m serve`` deploys it on Ray Serve.

:mod:`serve.model` (ONNX file, metadata, preprocessing), :mod:`serve.http` (request parsing,
errors), :mod:`serve.config` (its settings), :mod:`serve.app` (the batched deployment),
:mod:`serve.netns` (a loopback-only network
namespace for running Ray on a shared machine), ``__main__`` (the CLI).
"""
