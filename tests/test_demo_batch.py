"""The Batch tab's handler, and the demo called over plain HTTP with curl (``/call/<api>``).

Protects: every photo of a batch, loose or zipped, gets evaluation's label and probabilities;
a refused file gets its reason in its row and the rest are still classified; the CSV holds the
table; and a program with only curl can call ``/classify`` and ``/classify_batch`` on a real
``python -m demo`` (upload, call, read the event stream), as the README shows.
"""

from __future__ import annotations

import csv
import json
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from demo.batch import MAX_FILES, BatchRejected, classify_files
from demo.inference import UNKNOWN, softmax
from export.networks import OODInfo
from train.preprocess import MEAN, STD, normalize, open_image, to_uint8_tensor

pytest_plugins = ["demo_fixtures"]
pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def model(demo_artifacts):
    return demo_artifacts.ckpt.build_model(allow_folded=False).double().eval()


def reference(model, path: Path) -> np.ndarray:
    """Evaluation's probabilities: open_image → resize → normalise → float64."""
    with torch.no_grad():
        x = normalize(to_uint8_tensor(open_image(path)).unsqueeze(0), MEAN, STD).double()
        return softmax(model(x).numpy())[0]


def predictor(model, score: float | None = None):
    def predict(image) -> tuple[np.ndarray, float | None]:
        with torch.no_grad():
            x = normalize(to_uint8_tensor(image).unsqueeze(0), MEAN, STD).double()
            return softmax(model(x).numpy())[0], score

    return predict


@pytest.fixture(scope="module")
def photos(demo_artifacts) -> list[Path]:
    return [p for _, p in demo_artifacts.test_photos()[:6]]


def test_photos_and_zip_members_get_evaluations_labels(demo_artifacts, model, photos, tmp_path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in photos[3:]:
            zf.write(p, f"inner/{p.name}")
        zf.writestr("readme.txt", "skipped: not an image name")
    text = tmp_path / "broken.jpg"
    text.write_text("not an image")
    names = demo_artifacts.ckpt.class_names
    rows, headers, out = classify_files(
        [*photos[:3], archive, text], predictor(model), names, tmp_path
    )
    assert headers == ["file", "label", *(f"p({c})" for c in names), "ood_score", "error"]
    assert [r[0] for r in rows] == [
        *(p.name for p in photos[:3]),
        *(f"inner/{p.name}" for p in photos[3:]),
        "broken.jpg",
    ]
    for row, path in zip(rows[:-1], photos, strict=True):
        expected = reference(model, path)
        assert row[2:-2] == pytest.approx(expected.tolist(), abs=1e-6) and row[-2] is None
        assert row[1] == names[int(expected.argmax())] and row[-1] == ""
    assert rows[-1][1] == "" and "not an image" in rows[-1][-1]
    with open(out, newline="") as fh:
        written = list(csv.reader(fh))
    assert written[0] == headers
    assert [r[:2] for r in written[1:]] == [[r[0], r[1]] for r in rows]


def test_a_score_above_the_threshold_is_labelled_unknown(model, photos, tmp_path):
    ood = OODInfo(threshold=1.0, method="knn+msp")
    for score, label in ((1.5, UNKNOWN), (1.0, None)):
        rows, _, _ = classify_files(
            [photos[0]], predictor(model, score), ["1", "100"], tmp_path, ood=ood
        )
        expected = label or ["1", "100"][int(reference(model, photos[0]).argmax())]
        assert rows[0][1] == expected and rows[0][-2] == score


def test_empty_or_oversized_batches_are_refused(tmp_path, photos):
    with pytest.raises(BatchRejected, match="no photos"):
        classify_files([], lambda image: (np.ones(2), None), ["1", "100"], tmp_path)
    with pytest.raises(BatchRejected, match=f"over the {MAX_FILES}"):
        classify_files(
            [photos[0]] * (MAX_FILES + 1), lambda i: (np.ones(2), None), ["1", "100"], tmp_path
        )
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK not really")
    with pytest.raises(BatchRejected, match="not a readable zip"):
        classify_files([bad_zip], lambda image: (np.ones(2), None), ["1", "100"], tmp_path)


def test_a_zip_of_too_many_inflating_members_is_refused_before_inflating(tmp_path):
    """201 entries of 4 MiB of zeros (~4 KB each on disk) would be 800 MiB once read."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(MAX_FILES + 1):
            z.writestr(f"{i}.png", bytes(4 * 2**20))
    assert bomb.stat().st_size < 10 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(BatchRejected, match=f"{MAX_FILES + 1} photos, over the {MAX_FILES}"):
            classify_files([bomb], lambda image: (np.ones(2), None), ["1", "100"], tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse it"


# ----------------------------------------------------------------------------------------------
# Over plain HTTP, with curl, as the README shows


def curl(*args: str) -> bytes:
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--max-time", "60", *args],
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return done.stdout


def call(url: str, api: str, data: list) -> list:
    """POST /gradio_api/call/<api>, then GET its event stream; the ``complete`` event's data."""
    posted = curl("-H", "Content-Type: application/json", "-d", json.dumps({"data": data}),
                  f"{url}gradio_api/call/{api}")  # fmt: skip
    event_id = json.loads(posted)["event_id"]
    stream = curl(f"{url}gradio_api/call/{api}/{event_id}").decode()
    lines = stream.splitlines()
    assert "event: complete" in lines, stream[:500]
    return json.loads(lines[lines.index("event: complete") + 1].removeprefix("data:"))


def upload(url: str, *paths: Path) -> list[dict]:
    files = [a for p in paths for a in ("-F", f"files=@{p}")]
    server_paths = json.loads(curl(*files, f"{url}gradio_api/upload"))
    return [{"path": p, "meta": {"_type": "gradio.FileData"}} for p in server_paths]


def test_curl_calls_classify(demo_server, model, photos):
    url = demo_server.url
    (photo,) = upload(url, photos[0])
    label, _table, _plot, _verdict = call(url, "classify", [photo, 1])
    expected = reference(model, photos[0])
    names = demo_server.artifacts.ckpt.class_names
    assert label["label"] == names[int(expected.argmax())]
    got = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert [got[c] for c in names] == pytest.approx(expected.tolist(), abs=1e-9)


def test_curl_calls_classify_batch_and_downloads_the_csv(demo_server, model, photos, tmp_path):
    url = demo_server.url
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in photos[2:4]:
            zf.write(p, p.name)
    files = upload(url, photos[0], photos[1], archive)
    table, csv_file = call(url, "classify_batch", [files])
    names = demo_server.artifacts.ckpt.class_names
    rows = table["data"]
    assert [r[0] for r in rows] == [p.name for p in photos[:4]]
    for row, path in zip(rows, photos[:4], strict=True):
        assert row[1] == names[int(reference(model, path).argmax())]
        assert row[-2] <= demo_server.artifacts.ckpt.ood["threshold"]  # a note: known
    text = curl(csv_file["url"]).decode()
    assert text.splitlines()[0] == ",".join(table["headers"])
    assert len(text.splitlines()) == 1 + len(photos[:4])
