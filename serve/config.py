"""What a deployment is configured with: plain values, importable without Ray (for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

APP_NAME = "rmb-bnfold"
DEFAULT_MAX_BATCH = 64
DEFAULT_BATCH_WAIT_MS = 2.0
DEFAULT_MAX_BODY_MB = 10.0
DEFAULT_DECODE_THREADS = 2


@dataclass(frozen=True)
class ServeConfig:
    """Everything a replica needs, passed to it by value (it may run on another machine)."""

    onnx_name: str
    onnx_bytes: bytes  # the file itself, so a replica on another machine needs no shared disk
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * 2**20)
    decode_threads: int = DEFAULT_DECODE_THREADS
    ort_threads: int = 1
