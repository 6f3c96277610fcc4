"""The served model: the folded ONNX file, its metadata, and the project's preprocessing.

Every call into preprocessing (:mod:`demo.images`, :mod:`train.preprocess`) and into ONNX
Runtime session creation lives here and nowhere else in :mod:`serve`, so that a change of those
layers is one edit. Classes, mean, std and input size come from the file's ``metadata_props``
(written by :mod:`export.metadata`): a deployed ``.onnx`` travels without its checkpoint.

A file with a second output ``ood_score`` (shape N) and an ``ood_threshold`` metadata key
answers ``ood_score`` and ``unknown`` (``ood_score > ood_threshold``) too; without them both
keys are left out of the answer rather than guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.metadata import OOD_METHOD, OOD_THRESHOLD
from export.runtimes.runner import OOD_SCORE

log = logging.getLogger(__name__)


class ModelFileError(ValueError):
    """The ONNX file cannot be served; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class ModelInfo:
    """What a request needs to know about the model, read once from the ONNX metadata."""

    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    ood_threshold: float | None
    ood_method: str | None


def read_info(source: str | Path | bytes) -> ModelInfo:
    """The serving facts of an exported ONNX file (path or bytes), or :class:`ModelFileError`."""
    import onnx

    from export.metadata import CLASS_NAMES, INPUT_SIZE, MEAN, STD, read_metadata

    path = "the ONNX bytes" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            proto = onnx.load_model_from_string(source)
        else:
            proto = onnx.load_model(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path} is not a readable ONNX file ({type(e).__name__})") from e
    meta = read_metadata(proto)
    missing = [k for k in (CLASS_NAMES, MEAN, STD, INPUT_SIZE) if k not in meta]
    if missing:
        raise ModelFileError(
            f"{path} lacks metadata {', '.join(missing)}: re-export it with python -m export"
        )
    threshold = meta.get(OOD_THRESHOLD)
    outputs = [o.name for o in proto.graph.output]
    if threshold is not None and OOD_SCORE not in outputs:
        raise ModelFileError(f"{path} has {OOD_THRESHOLD} metadata but no {OOD_SCORE} output")
    return ModelInfo(
        class_names=tuple(str(c) for c in meta[CLASS_NAMES]),
        mean=tuple(float(v) for v in meta[MEAN]),
        std=tuple(float(v) for v in meta[STD]),
        input_size=(int(meta[INPUT_SIZE][0]), int(meta[INPUT_SIZE][1])),
        ood_threshold=None if threshold is None else float(threshold),
        ood_method=meta.get(OOD_METHOD),
    )


class ServedModel:
    """One ORT session over the folded file: bytes → pixels → batched answers.

    :meth:`pixels` runs per request (in a worker thread: PIL releases the GIL while it decodes);
    :meth:`predict` runs once per dynamic batch, as one ``session.run``.
    """

    def __init__(
        self, source: str | Path | bytes, *, threads: int = 1, max_pixels: int | None = None
    ) -> None:
        from demo.images import MAX_PIXELS
        from export.runtimes.sessions import ort_session
        from export.runtimes.variant import OrtOptions

        self.info = read_info(source)
        self.max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
        self.session = ort_session(source, OrtOptions(level="all", threads=threads))
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = [names[0]] + ([OOD_SCORE] if self.info.ood_threshold is not None else [])
        log.info("serving classes %s, outputs %s", self.info.class_names, self.outputs)

    def pixels(self, data: bytes) -> np.ndarray:
        """Untrusted image bytes → uint8 (3, H, W); ``demo.images.ImageRejected`` if unusable."""
        from demo.images import decode_image
        from train.preprocess import to_uint8_tensor

        size = self.info.input_size
        image = decode_image(data, max_pixels=self.max_pixels, size=size)
        return to_uint8_tensor(image, size).numpy()

    def predict(self, pixels: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """One answer per image of ``pixels`` (uint8 (3, H, W) each), from one ORT call."""
        import torch

        from train.preprocess import normalize

        batch = torch.from_numpy(np.stack(pixels))
        x = normalize(batch, self.info.mean, self.info.std).numpy()
        results = self.session.run(self.outputs, {self.input_name: x})
        return answers(results[0], results[1] if len(results) > 1 else None, self.info)


def answers(logits: np.ndarray, ood: np.ndarray | None, info: ModelInfo) -> list[dict[str, Any]]:
    """The JSON answer per row: label, probabilities, and the OOD verdict when there is one.

    An unknown photo is labelled ``unknown`` (as the demo's label is); its probabilities still
    say what the network would have answered.
    """
    from demo.inference import UNKNOWN, softmax

    out = []
    for i, probs in enumerate(softmax(logits)):
        answer: dict[str, Any] = {
            "label": info.class_names[int(probs.argmax())],
            "probabilities": dict(zip(info.class_names, map(float, probs), strict=True)),
        }
        if ood is not None and info.ood_threshold is not None:
            answer["ood_score"] = float(ood[i])
            answer["unknown"] = bool(ood[i] > info.ood_threshold)
            if answer["unknown"]:
                answer["label"] = UNKNOWN
        out.append(answer)
    return out
