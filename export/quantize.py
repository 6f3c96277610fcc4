"""int8 from the folded ONNX file: static quantisation calibrated on the training images.

Folding comes first: with BatchNorm inside the convolution's weights, each layer is quantised
once, with one scale per output channel of the folded weight, instead of quantising a
convolution and then a BatchNorm whose per-channel scale would stretch the int8 grid.

The recipe (chosen by measurement, README "int8"): QDQ format (QuantizeLinear/DequantizeLinear
pairs around fp32 ops), which onnxruntime fuses into QLinearConv/QGemm and which OpenVINO reads
directly; uint8 activations and int8 weights (U8S8: the VNNI instruction ``vpdpbusd``
multiplies u8 by s8); weights per output channel; MinMax calibration on the checkpoint's
training split. Only the part of the graph the ``logits`` output needs is quantised: any other
output (such as an ``ood_score`` computed from the logits) keeps its fp32 nodes, so an
"unknown" threshold calibrated in fp32 still means what it meant. The node that writes
``logits`` stays fp32 too: a classifier's last layer is tiny (84×2 in LeNet) and quantising its
output was the largest error (max |Δ logits| 1.26 against 0.43 with it in fp32, default model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from export.runtimes.runner import LOGITS
from export.runtimes.variant import INT8

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 16


@dataclass(frozen=True)
class QuantConfig:
    """How the folded file is quantised; the defaults are the shipped recipe."""

    quant_format: str = "QDQ"  # or "QOperator" (QLinearConv nodes, which OpenVINO cannot read)
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights: only for CPUs without VNNI (saturation)
    exclude: tuple[str, ...] = ()  # node names left in fp32 besides the non-logits part


def int8_path(out: str | Path, checkpoint: str | Path) -> Path:
    """``<out>/<stem>.folded.int8.onnx``."""
    return Path(out) / f"{Path(checkpoint).stem}.folded.{INT8}.onnx"


def non_logits_nodes(model) -> list[str]:
    """Names of the nodes no path to ``logits`` goes through (kept in fp32).

    Walks back from ``logits`` over the producers of each input; every node not reached
    serves only the other outputs.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    needed: set[int] = set()
    stack = [LOGITS]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.input)
    return [n.name for n in model.graph.node if id(n) not in needed]


class _Batches:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over an N×3×H×W array."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = CALIBRATION_BATCH):
        self._it: Iterator[dict[str, np.ndarray]] = (
            {input_name: np.ascontiguousarray(images[i : i + batch], np.float32)}
            for i in range(0, len(images), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_folded(
    folded: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    config: QuantConfig | None = None,
) -> Path:
    """Write the int8 version of ``folded`` to ``out``, calibrated on ``calibration``.

    ``calibration``: normalised float32 training images, N×3×H×W. Raises ExportError when
    there are none (a scale from no data would be a guess).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    config = config or QuantConfig()
    if len(calibration) == 0:
        raise ExportError(
            "no training images to calibrate the int8 file on: pass --data DIR with the "
            "checkpoint's photos"
        )
    proto = onnx.load_model(str(folded))
    writes_logits = [n.name for n in proto.graph.node if LOGITS in n.output]
    keep = [*non_logits_nodes(proto), *writes_logits, *config.exclude]
    input_name = proto.graph.input[0].name
    reader = _Batches(input_name, calibration)
    CalibrationDataReader.register(_Batches)
    quantize_static(
        str(folded),
        str(out),
        reader,
        quant_format=QuantFormat[config.quant_format],
        activation_type=QuantType[config.activation_type],
        weight_type=QuantType[config.weight_type],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        nodes_to_exclude=keep,
        calibrate_method=CalibrationMethod.MinMax,
    )
    _copy_metadata(proto, Path(out))
    log.info(
        "wrote %s (%s %s/%s, per-channel %s, %d calibration images, %d node(s) kept fp32)",
        Path(out).name,
        config.quant_format,
        config.activation_type,
        config.weight_type,
        config.per_channel,
        len(calibration),
        len(keep),
    )
    return Path(out)


def _copy_metadata(source, path: Path) -> None:
    """The folded file's metadata (class names, mean/std, checkpoint sha256) on the int8 file."""
    import onnx

    from bnfold.atomic import atomic_write_bytes

    proto = onnx.load_model(str(path))
    have = {p.key for p in proto.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in have:
            proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key="quantization", value="int8 static QDQ, calibrated on train")
    atomic_write_bytes(path, proto.SerializeToString())
