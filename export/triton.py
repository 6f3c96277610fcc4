"""A Triton Inference Server model repository for the exported files.

Layout (one model per file, version 1)::

    DIR/<name>_folded/config.pbtxt      DIR/<name>_unfolded/config.pbtxt
    DIR/<name>_folded/labels.txt        DIR/<name>_unfolded/labels.txt
    DIR/<name>_folded/1/model.onnx      DIR/<name>_unfolded/1/model.onnx

``config.pbtxt`` is Triton's ``ModelConfig`` in protobuf text format, written from the ONNX file's
own inputs and outputs (dims without the batch axis, which ``max_batch_size`` stands for). It asks
for two instance groups, one on the GPU and one on the CPU, so a GPU server also keeps a CPU
instance; Triton refuses to load a model with a KIND_GPU group on a machine without a GPU, so
``cpu_only=True`` writes the CPU group alone. ``labels.txt`` holds the class names, one per line,
which Triton's classification extension returns in place of indices (for outputs with a class
axis only, so ``logits`` and not ``ood_score``).

A tensor whose only axis is the batch (``ood_score``, shape N) has no dims left once the batch
axis is taken off, and Triton's ModelConfig needs a non-empty ``dims`` with
``max_batch_size > 0``: it is declared as ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``, the
form Triton's model-configuration guide gives for it; clients receive it as N×1.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import onnx

from export.errors import ExportError

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 64
MAX_QUEUE_DELAY_US = 100
LABELS_FILE = "labels.txt"

#: ONNX element type → Triton ``DataType`` name.
TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.STRING: "TYPE_STRING",
}


def tensor_spec(value: onnx.ValueInfoProto) -> tuple[str, str, list[int]]:
    """(name, Triton data type, dims without the batch axis; -1 for a variable dim)."""
    ttype = value.type.tensor_type
    if ttype.elem_type not in TRITON_TYPES:
        raise ExportError(f"tensor {value.name!r} has an element type Triton's ONNX backend lacks")
    dims = list(ttype.shape.dim)
    if not dims or dims[0].HasField("dim_value"):
        raise ExportError(
            f"tensor {value.name!r} has no dynamic batch axis, so Triton cannot batch it: "
            "re-export with python -m export"
        )
    rest = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
    return value.name, TRITON_TYPES[ttype.elem_type], rest


def _io_block(kind: str, specs: list[tuple[str, str, list[int]]], labels: bool) -> list[str]:
    lines = [f"{kind} ["]
    for i, (name, dtype, dims) in enumerate(specs):
        lines += ["  {", f'    name: "{name}"', f"    data_type: {dtype}"]
        if dims:
            lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
        else:  # batch axis only (see the module doc)
            lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        if labels and dims:
            lines.append(f'    label_filename: "{LABELS_FILE}"')
        lines.append("  }," if i < len(specs) - 1 else "  }")
    return [*lines, "]"]


def model_config(
    name: str,
    proto: onnx.ModelProto,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    cpu_only: bool = False,
    labels: bool = True,
) -> str:
    """The ``config.pbtxt`` text of ``proto`` served as model ``name``."""
    if max_batch_size < 1:
        raise ExportError(f"--triton-max-batch-size must be >= 1, got {max_batch_size}")
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [tensor_spec(v) for v in proto.graph.input if v.name not in initializers]
    outputs = [tensor_spec(v) for v in proto.graph.output]
    groups = ["  { count: 1, kind: KIND_CPU }"]
    if not cpu_only:
        groups.insert(0, "  { count: 1, kind: KIND_GPU },")
    lines = [
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        *_io_block("input", inputs, labels=False),
        *_io_block("output", outputs, labels=labels),
        "dynamic_batching {",
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}",
        "}",
        "instance_group [",
        *groups,
        "]",
    ]
    return "\n".join(lines) + "\n"


def write_repository(
    repo_dir: str | Path,
    models: dict[str, Path],
    class_names: list[str],
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    cpu_only: bool = False,
) -> list[Path]:
    """Write one Triton model per ``{model name: ONNX file}``; return the model folders."""
    from bnfold.atomic import atomic_path, atomic_write_bytes

    written = []
    for name, onnx_path in models.items():
        proto = onnx.load_model(onnx_path)
        text = model_config(name, proto, max_batch_size=max_batch_size, cpu_only=cpu_only)
        model_dir = Path(repo_dir) / name
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "1" / "model.onnx") as tmp:
            shutil.copyfile(onnx_path, tmp)
        atomic_write_bytes(model_dir / LABELS_FILE, "".join(f"{c}\n" for c in class_names).encode())
        atomic_write_bytes(model_dir / "config.pbtxt", text.encode())
        written.append(model_dir)
        log.info("Triton model %s -> %s", name, model_dir)
    return written
