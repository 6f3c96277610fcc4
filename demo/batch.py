"""The Batch tab: several photos (or a zip of them) in, a table and a CSV of labels out.

:func:`classify_files` is the plain handler (tested without Gradio); :func:`build_tab` lays out
the tab and wires it to ``api_name="classify_batch"``, so programs can call it over HTTP too.
Each file is checked by :mod:`demo.images` like a single upload; a refused file gets its reason
in the ``error`` column and the others are still classified. Labels come from the float64
reference, as the Classify tab's label does: ``unknown`` when its OOD score is above the
threshold, with the score in its own column.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from demo.images import MAX_UPLOAD_BYTES, ImageRejected, decode_image, read_upload
from demo.inference import UNKNOWN
from export.networks import OODInfo
from train.preprocess import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

MAX_FILES = 200  # per batch, zip members included


class BatchRejected(ValueError):
    """The batch as a whole cannot be classified (no files, too many, unreadable zip)."""


def _members(path: Path, max_bytes: int, room: int) -> list[tuple[str, bytes | ImageRejected]]:
    """(name, bytes or the reason it is refused) for each image inside a zip.

    Counted before anything is inflated, and each member read through a bounded stream: a zip
    of thousands of small entries that inflate to megabytes each never reaches memory.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BatchRejected(f"{path.name} is not a readable zip file: send photos or a zip") from e
    out: list[tuple[str, bytes | ImageRejected]] = []
    with archive:
        infos = [
            i
            for i in archive.infolist()
            if not i.is_dir() and i.filename.lower().endswith(IMAGE_SUFFIXES)
        ]
        _check_count(len(infos), room)
        for info in infos:
            if info.file_size > max_bytes:  # the declared size, checked before inflating
                mib = max_bytes / 2**20
                out.append(
                    (info.filename, ImageRejected(f"over the {mib:.0f} MiB limit per photo"))
                )
                continue
            with archive.open(info) as member:
                out.append((info.filename, member.read(max_bytes + 1)))
    return out


def _check_count(count: int, room: int) -> None:
    if count > room:
        total = MAX_FILES - room + count
        raise BatchRejected(f"{total} photos, over the {MAX_FILES} per batch: split them")


def gather(paths: Sequence[str | Path], max_bytes: int = MAX_UPLOAD_BYTES) -> list[tuple]:
    """(name, bytes or refusal) for every photo uploaded, zips opened, at most MAX_FILES."""
    items: list[tuple[str, bytes | ImageRejected]] = []
    for raw in paths:
        path = Path(raw)
        if path.suffix.lower() == ".zip":
            items += _members(path, max_bytes, MAX_FILES - len(items))
            continue
        try:
            items.append((path.name, read_upload(path, max_bytes)))
        except ImageRejected as e:
            items.append((path.name, e))
    if not items:
        raise BatchRejected("no photos: upload JPEG/PNG/... files or a zip of them")
    _check_count(len(items), MAX_FILES)
    return items


Prediction = tuple[np.ndarray, float | None]  # probabilities, OOD score (None: the model has none)


def classify_files(
    paths: Sequence[str | Path],
    predict: Callable[[Any], Prediction],
    class_names: Sequence[str],
    out_dir: str | Path,
    *,
    ood: OODInfo | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> tuple[list[list[Any]], list[str], Path]:
    """(rows, headers, CSV path): one row per photo, ``predict(image)`` giving its prediction.

    With ``ood``, a photo whose score is above the threshold is labelled :data:`UNKNOWN`.
    """
    from bnfold.atomic import atomic_path

    headers = ["file", "label", *(f"p({c})" for c in class_names), "ood_score", "error"]
    rows = []
    for name, data in gather(paths, max_bytes):
        try:
            if isinstance(data, ImageRejected):
                raise data
            if len(data) > max_bytes:
                raise ImageRejected(f"over the {max_bytes / 2**20:.0f} MiB limit per photo")
            probs, score = predict(decode_image(data))
        except ImageRejected as e:
            rows.append([name, "", *([None] * len(class_names)), None, str(e)])
            continue
        unknown = ood is not None and score is not None and ood.is_unknown(score)
        label = UNKNOWN if unknown else class_names[int(np.argmax(probs))]
        shown = None if score is None else round(float(score), 6)
        rows.append([name, label, *(round(float(p), 6) for p in probs), shown, ""])
    out = Path(out_dir) / "labels.csv"
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        writer.writerows(rows)
    log.info("batch of %d photos classified", len(rows))
    return rows, headers, out


def build_tab(runtimes: Any, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """The Batch tab, inside the caller's ``gr.Tabs()``; its event is ``/classify_batch``."""
    import gradio as gr
    import pandas as pd

    from demo.inference import model_input, softmax

    def predict(image: Any) -> Prediction:
        with runtimes.lock:
            outputs = runtimes.reference_outputs(model_input(image, runtimes))
        score = outputs.get("ood_score")
        return softmax(outputs["logits"])[0], None if score is None else float(score[0])

    def on_batch(files: list[str] | None) -> tuple[pd.DataFrame, str]:
        try:
            rows, headers, out = classify_files(
                files or [],
                predict,
                runtimes.class_names,
                tempfile.mkdtemp(prefix="rmb-batch-"),
                ood=runtimes.ood,
                max_bytes=max_upload_bytes,
            )
        except BatchRejected as e:
            raise gr.Error(str(e), print_exception=False) from e
        return pd.DataFrame(rows, columns=headers), str(out)

    with gr.Tab("Batch", id="batch"):
        gr.Markdown(
            f"Several photos, or a zip of them (up to {MAX_FILES}): one label per photo, as a "
            "table and a CSV. Programs can call it as `/classify_batch` (see the README)."
        )
        files = gr.File(file_count="multiple", label="photos or a .zip", type="filepath")
        button = gr.Button("Classify all", variant="primary")
        table = gr.Dataframe(label="labels", interactive=False)
        csv_file = gr.File(label="labels.csv")
        button.click(
            on_batch,
            inputs=[files],
            outputs=[table, csv_file],
            api_name="classify_batch",
            concurrency_limit=1,
            concurrency_id="batch",
        )
