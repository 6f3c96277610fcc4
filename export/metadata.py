"""What an exported ONNX file says about itself, in ``metadata_props``.

A deployed ``.onnx`` travels without its checkpoint, so it carries what a consumer needs to feed
it (class names, mean, std, input size) and what an auditor needs to trace it (the checkpoint's
sha256, the fold report, the tool versions). A file with an ``ood_score`` output also carries
``ood_threshold`` (``repr`` of the float, so ``float()`` gives back the checkpoint's exact value)
and ``ood_method``: a photo is unknown when ``ood_score > ood_threshold``. Values are strings,
as ONNX requires; structured values are JSON so that any language can read them back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint
    from export.networks import OODInfo

CLASS_NAMES = "class_names"
MEAN = "mean"
STD = "std"
INPUT_SIZE = "input_size"
CHECKPOINT_SHA256 = "checkpoint_sha256"
FOLD_REPORT = "fold_report"
FOLDED = "folded"
ARCH = "arch"
EXPORTER = "exporter"
TORCH_VERSION = "torch_version"
ONNX_VERSION = "onnx_version"
OOD_THRESHOLD = "ood_threshold"  # repr of a float: unknown when ood_score > float(this)
OOD_METHOD = "ood_method"
JSON_KEYS = (CLASS_NAMES, MEAN, STD, INPUT_SIZE, FOLD_REPORT, FOLDED)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes: what ties an ONNX file to the checkpoint it came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_metadata(
    ckpt: Checkpoint,
    *,
    checkpoint_sha256: str,
    fold_report: dict[str, Any],
    folded: bool,
    exporter: str,
    ood: OODInfo | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` of one exported file (all values strings)."""
    import torch

    meta = {
        ARCH: str(ckpt.arch),
        CLASS_NAMES: json.dumps(list(ckpt.class_names)),
        MEAN: json.dumps([float(v) for v in ckpt.mean]),
        STD: json.dumps([float(v) for v in ckpt.std]),
        INPUT_SIZE: json.dumps([int(v) for v in ckpt.input_size]),
        CHECKPOINT_SHA256: checkpoint_sha256,
        FOLD_REPORT: json.dumps(fold_report),
        FOLDED: json.dumps(folded),
        EXPORTER: exporter,
        TORCH_VERSION: torch.__version__,
        ONNX_VERSION: onnx.__version__,
    }
    if ood is not None:
        meta[OOD_THRESHOLD] = repr(float(ood.threshold))
        meta[OOD_METHOD] = ood.method
    return meta


def with_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    """A copy of ``proto`` whose ``metadata_props`` are ``metadata`` (replacing same-named keys)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    kept = [p for p in out.metadata_props if p.key not in metadata]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    for key, value in metadata.items():
        out.metadata_props.add(key=key, value=value)
    return out


def read_metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    """``metadata_props`` as a dict, JSON values decoded."""
    raw = {p.key: p.value for p in proto.metadata_props}
    return {k: json.loads(v) if k in JSON_KEYS else v for k, v in raw.items()}
