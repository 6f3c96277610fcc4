"""PyTorch → ONNX with every BatchNorm kept as a ``BatchNormalization`` node, checked and saved.

Both PyTorch exporters fold BatchNorm on their own, which would make an "unfolded" file folded by
accident: the TorchScript exporter folds Conv+BN while constant-folding, and the dynamo exporter's
optimiser folds Conv/Gemm+BN. So the TorchScript exporter runs with ``do_constant_folding=False``
and ``training=EVAL`` (BN nodes carry ``training_mode=0``), and the dynamo exporter with
``optimize=False``. TorchScript is the default: it takes ~0.2 s instead of ~3 s per file and writes
the plainer graph (Conv, BN, Relu, MaxPool, Flatten, Gemm), but PyTorch has deprecated it, hence
``exporter="dynamo"`` as the way forward. Either way the graph has one input ``image``
(N×3×H×W float32, normalised) and the outputs named by ``output_names`` (``logits``, and
``ood_score`` for a model that returns its OOD score too), all with a dynamic batch axis.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from export.errors import ExportError

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"
DEFAULT_OPSET = 18
MIN_OPSET = 17  # the project's floor: what current onnxruntime and Triton releases all run
_EXAMPLE_BATCH = 2  # torch.export specialises a batch of 1 into a constant


def opset_range(exporter: str) -> tuple[int, int]:
    """The opsets ``exporter`` can write with this torch and onnx, inclusive."""
    from torch.onnx import _constants

    if exporter == "torchscript":
        top = _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        low = MIN_OPSET
    else:
        top = _constants.ONNX_MAX_OPSET
        low = max(MIN_OPSET, 18)  # lower opsets go through a best-effort version converter
    return low, min(top, onnx.defs.onnx_opset_version())


def check_opset(opset: int, exporter: str) -> None:
    """Raise :class:`ExportError` unless ``exporter`` can write ``opset`` here."""
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}: choose one of {', '.join(EXPORTERS)}")
    low, high = opset_range(exporter)
    if not low <= opset <= high:
        raise ExportError(
            f"--opset {opset} is not supported with --exporter {exporter}: choose {low}..{high} "
            f"(the floor is this project's; the top is the lower of what torch "
            f"{torch.__version__}'s {exporter} exporter and onnx {onnx.__version__} support)"
        )


def to_onnx(
    model: nn.Module,
    input_size: tuple[int, int],
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    output_names: Sequence[str] = (OUTPUT_NAME,),
) -> onnx.ModelProto:
    """``model`` (in eval mode) as an ONNX model that keeps its BatchNorms; ``model`` is unchanged.

    ``output_names`` name the model's outputs in order (a tuple output has one per element).
    The caller checks the opset with :func:`check_opset` first.
    """
    if model.training:
        raise ExportError("export a model in eval mode: call model.eval() first")
    example = torch.zeros(_EXAMPLE_BATCH, 3, *input_size)
    names = list(output_names)
    if exporter == "torchscript":
        return _torchscript(model, example, opset, names)
    return _dynamo(model, example, opset, names)


def _torchscript(
    model: nn.Module, example: torch.Tensor, opset: int, names: list[str]
) -> onnx.ModelProto:
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # "You are using the legacy TorchScript-based ONNX export": known, see the module doc.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            do_constant_folding=False,  # constant folding would fold Conv+BN
            training=torch.onnx.TrainingMode.EVAL,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={name: {0: BATCH_AXIS} for name in (INPUT_NAME, *names)},
        )
    return onnx.load_model_from_string(buffer.getvalue())


def _dynamo(
    model: nn.Module, example: torch.Tensor, opset: int, names: list[str]
) -> onnx.ModelProto:
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        optimize=False,  # the optimiser would fold Conv/Gemm+BN
        verbose=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},),
    )
    return program.model_proto


def count_ops(proto: onnx.ModelProto, op_type: str) -> int:
    """How many nodes of the main graph are ``op_type`` (standard domain)."""
    return sum(n.op_type == op_type and n.domain in ("", "ai.onnx") for n in proto.graph.node)


def check(proto: onnx.ModelProto) -> None:
    """``onnx.checker`` with shape inference and per-node checks; ExportError if it fails."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        from export.runtimes.errors import first_line

        raise ExportError(f"the exported model fails onnx.checker: {first_line(e)}") from e


def save(proto: onnx.ModelProto, path: str | Path) -> None:
    """Write ``proto`` as one self-contained file, atomically.

    Tensors stay inside the protobuf (no external data: a LeNet is far below protobuf's 2 GiB
    limit), and the bytes go to a temp file that is renamed onto ``path`` only once complete, so
    an interrupted export leaves the previous file or none, never half of one.
    """
    from bnfold.atomic import atomic_path

    data = proto.SerializeToString()
    with atomic_path(path) as tmp:
        _write(tmp, data)
    log.debug("wrote %s (%d bytes)", path, len(data))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)  # a seam for the interrupted-write test; atomic_path fsyncs


def load(path: str | Path) -> onnx.ModelProto:
    """An existing exported file, with a one-line error when it is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path} (export it first: python -m export)")
    try:
        return onnx.load_model(path)
    except Exception as e:  # protobuf raises its own DecodeError, onnx various others
        raise ExportError(f"{path} is not a readable ONNX model ({type(e).__name__})") from e
