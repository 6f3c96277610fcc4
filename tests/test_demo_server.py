"""The served demo, through ``gradio_client`` against a real ``python -m demo`` on localhost.

Protects: real photos get the answer evaluation gives them; what is not a note (noise, a blank
sheet, a natural photo) is answered ``unknown``, with why and what the network would have said;
every variant's ood_score is in the table, folded and unfolded agreeing; every bad upload gets an
answer or a clear error and never takes the server down; concurrent clients all get answers;
only the example photos are served as files.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo.inference import softmax
from train.preprocess import normalize, open_image, to_uint8_tensor

pytest_plugins = ["demo_fixtures"]


@pytest.fixture(scope="module")
def client(demo_server) -> Client:
    from demo_fixtures import local_client

    return local_client(demo_server.url)


@pytest.fixture(scope="module")
def scored(demo_server) -> Callable[[Path], tuple[dict[str, float], float]]:
    """Class probabilities and OOD score as evaluation computes them: open_image → resize →
    normalise → the checkpoint's model with its OOD scorer (train.ood.scorer), float64."""
    from train.ood.scorer import OODScorer, WithOOD

    ckpt = demo_server.artifacts.ckpt
    model = WithOOD(ckpt.build_model(allow_folded=False), OODScorer.from_state(ckpt.ood))
    model = model.double().eval()

    def run(path: Path) -> tuple[dict[str, float], float]:
        pixels = to_uint8_tensor(open_image(path)).unsqueeze(0)
        batch = normalize(pixels, ckpt.mean, ckpt.std).double()
        with torch.no_grad():
            logits, score = model(batch)
        probabilities = softmax(logits.numpy())[0].tolist()
        return dict(zip(ckpt.class_names, probabilities, strict=True)), float(score[0])

    return run


@pytest.fixture(scope="module")
def reference(scored) -> Callable[[Path], dict[str, float]]:
    """Class probabilities as evaluation computes them."""
    return lambda path: scored(path)[0]


def classify(client: Client, path: Path, runs: int = 1) -> tuple[dict, dict]:
    label, table, _, _ = client.predict(handle_file(str(path)), runs, api_name="/classify")
    return label, table


def classify_why(client: Client, path: Path) -> tuple[dict, dict, str]:
    """The label, the table and the verdict text that says why."""
    label, table, _, verdict = client.predict(handle_file(str(path)), 1, api_name="/classify")
    return label, table, verdict


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_real_photos_get_the_answer_evaluation_gives(client, demo_server, scored):
    """Every held-out photo: same probabilities and unknown decision as the eval pipeline, the
    network's answer (given even when unknown) at the checkpoint's test accuracy."""
    photos = demo_server.artifacts.test_photos()
    threshold = demo_server.artifacts.ckpt.ood["threshold"]
    correct = known = 0
    for cls, path in photos:
        label, table, verdict = classify_why(client, path)
        expected, score = scored(path)
        network = max(expected, key=expected.__getitem__)
        predictions = {row[table["headers"].index("prediction")] for row in table["data"]}
        assert predictions == {network}, "every variant must agree on a real photo"
        if score > threshold:
            assert label["label"] == "unknown" and "would have answered **" + network in verdict
        else:
            assert confidences(label) == pytest.approx(expected, abs=1e-9), path.name
            assert label["label"] == network and verdict.startswith("Known")
            known += 1
        correct += network == cls
    accuracy = correct / len(photos)
    assert accuracy == pytest.approx(demo_server.artifacts.ckpt.metrics["test_acc"])
    assert accuracy >= 0.9
    assert known / len(photos) >= 0.9, f"{len(photos) - known} held-out photos called unknown"


def _non_notes(folder: Path) -> dict[str, Path]:
    """Images that are no banknote: uniform noise, a blank white sheet, a natural photo."""
    import matplotlib.cbook

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    paths = {"noise": folder / "noise.png", "white": folder / "white.png"}
    Image.fromarray(noise, "RGB").save(paths["noise"])
    Image.new("RGB", (320, 240), (255, 255, 255)).save(paths["white"])
    paths["grace_hopper"] = Path(
        matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    )
    return paths


def test_what_is_not_a_note_is_answered_unknown_and_the_page_says_why(
    client, demo_server, scored, tmp_path
):
    ood = demo_server.artifacts.ckpt.ood
    for name, path in _non_notes(tmp_path).items():
        label, table, verdict = classify_why(client, path)
        expected, score = scored(path)
        network = max(expected, key=expected.__getitem__)
        assert score > ood["threshold"], f"{name}: score {score:.4g} <= {ood['threshold']:.4g}"
        assert label["label"] == "unknown", name
        assert verdict.startswith("**Unknown**"), verdict
        assert f"{score:.4g} is above the threshold {ood['threshold']:.4g}" in verdict
        assert f"`{ood['method']}`" in verdict
        assert f"would have answered **{network}** ({100 * expected[network]:.1f}%)" in verdict
        scores = _scores_by_variant(table)
        assert all(s > ood["threshold"] for s in scores.values()), (name, scores)


def _scores_by_variant(table: dict) -> dict[tuple[str, str, str], float]:
    headers = table["headers"]
    return {
        (row[0], row[1], row[2].split(" ")[0]): row[headers.index("ood_score")]
        for row in table["data"]
    }


def test_a_course_photo_is_answered_with_its_class_and_the_scores_agree(
    client, photos, scored, demo_server
):
    """A confident held-out photo is known; every variant's ood_score is in the table, and
    folded and unfolded give the same score (the fold keeps the OOD score)."""
    threshold = demo_server.artifacts.ckpt.ood["threshold"]
    for cls, path in photos.items():
        label, table, verdict = classify_why(client, path)
        _, score = scored(path)
        assert label["label"] == cls and verdict.startswith("Known")
        scores = _scores_by_variant(table)
        assert len(scores) == len(table["data"]) >= 4
        for (runtime, folded, device), value in scores.items():
            assert value <= threshold  # every variant, int8 included, decides "known"
            if folded == "yes, int8":  # quantised features: its decision, not fp32 tolerance
                continue
            assert value == pytest.approx(score, abs=1e-4, rel=1e-4)
            if folded == "yes":
                twin = scores[(runtime, "no", device)]
                assert value == pytest.approx(twin, abs=1e-5, rel=1e-4)


def test_the_table_has_a_row_per_variant_that_runs(client, demo_server):
    _, path = demo_server.artifacts.test_photos()[0]
    _, table = classify(client, path, runs=5)
    headers = table["headers"]
    assert headers[:3] == ["runtime", "folded", "device / provider"]
    rows = {(r[0], r[1], r[2].split(" ")[0]) for r in table["data"]}
    for backend in ("PyTorch eager", "ONNX Runtime"):
        for folded in ("no", "yes"):
            assert (backend, folded, "CPU") in rows
    assert ("ONNX Runtime", "yes, int8", "CPU") in rows
    for row in table["data"]:
        record = dict(zip(headers, row, strict=True))
        assert 0 < record["p50 ms"] <= record["p90 ms"]
        # fp32 within 1e-4 of the float64 reference; int8 within a few quantisation steps
        bound = 0.5 if record["folded"] == "yes, int8" else 1e-4
        assert 0 <= record["max |Δ logits| vs float64"] < bound
        assert record["BatchNorm ops"].startswith("3" if record["folded"] == "no" else "0")


# ----------------------------------------------------------------------------------------------
# Bad input


def _save(image: Image.Image, path: Path, fmt: str, **options) -> Path:
    image.save(path, fmt, **options)
    return path


def _confident_photo(demo_server, scored, cls: str) -> Path:
    """A held-out photo of ``cls`` classified with confidence and not called unknown."""
    threshold = demo_server.artifacts.ckpt.ood["threshold"]
    for photo_cls, path in demo_server.artifacts.test_photos():
        probabilities, score = scored(path)
        if photo_cls == cls and probabilities[cls] > 0.95 and score <= threshold:
            return path
    raise AssertionError(f"no held-out photo of class {cls} is classified with confidence")


@pytest.fixture(scope="module")
def photos(demo_server, scored) -> dict[str, Path]:
    return {cls: _confident_photo(demo_server, scored, cls) for cls in ("1", "100")}


def make_bad_input(name: str, folder: Path, photo: Path, other: Path) -> Path:
    """The file for case ``name`` showing ``photo`` (``other``: a photo of the other note).

    Photos are shrunk to 480 px so that lossless formats stay under the server's upload cap.
    """
    from demo_fixtures import pixel_bomb_png

    picture = Image.open(photo).convert("RGB")
    picture.thumbnail((480, 480))
    path = folder / name
    if name == "corrupt.jpg":
        data = photo.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif name == "empty.jpg":
        path.write_bytes(b"")
    elif name == "notes.txt":
        path.write_text("1 yuan, 100 yuan: not a picture\n")
    elif name == "page.jpg":
        path.write_text("<!doctype html><html><body>not a jpeg</body></html>")
    elif name == "drawing.svg":
        path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="90" height="40"/>')
    elif name == "rgba.png":
        rgba = picture.convert("RGBA")
        alpha = np.full(rgba.size[::-1], 255, np.uint8)
        alpha[:, : rgba.size[0] // 10] = 0  # a transparent strip
        rgba.putalpha(Image.fromarray(alpha))
        _save(rgba, path, "PNG")
    elif name == "cmyk.jpg":
        _save(picture.convert("CMYK"), path, "JPEG", quality=95)
    elif name == "gray16.png":
        gray = np.asarray(picture.convert("L")).astype(np.uint16) * 257
        _save(Image.fromarray(gray), path, "PNG")
    elif name == "palette.gif":
        _save(picture.quantize(256), path, "GIF")
    elif name == "animated.gif":
        second = Image.open(other).convert("RGB").resize(picture.size)
        _save(picture, path, "GIF", save_all=True, append_images=[second], duration=200, loop=0)
    elif name == "rotated.jpg":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90° clockwise to display": the pixels are stored on their side
        stored = picture.transpose(Image.Transpose.ROTATE_90)
        _save(stored, path, "JPEG", quality=95, exif=exif)
    elif name == "one-pixel.png":
        _save(Image.new("RGB", (1, 1), (200, 40, 40)), path, "PNG")
    elif name == "bomb.png":
        path.write_bytes(pixel_bomb_png(30_000, 30_000))
    else:
        raise ValueError(f"unknown case {name}")
    return path


# name -> a regex the error must match, or "same" (the photo's class) or "any" (a valid label)
BAD_INPUTS = {
    "corrupt.jpg": "corrupt or truncated",
    "empty.jpg": "empty",
    "notes.txt": "not an image",
    "page.jpg": "not an image",
    "drawing.svg": "not an image",
    "rgba.png": "any",
    "cmyk.jpg": "same",
    "gray16.png": "any",
    "palette.gif": "same",
    "animated.gif": "same",  # the first frame shows the photo, the second the other note
    "rotated.jpg": "same",
    "one-pixel.png": "any",
    "bomb.png": "decompression",
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_get_an_answer_or_a_clear_error(client, photos, tmp_path, name):
    expected = BAD_INPUTS[name]
    path = make_bad_input(name, tmp_path, photos["1"], photos["100"])
    if expected in ("same", "any"):
        label, _ = classify(client, path)
        if expected == "any" and label["label"] == "unknown":  # a valid answer for odd images
            assert "confidences" not in label or not label["confidences"]
        else:
            probabilities = confidences(label)
            assert sum(probabilities.values()) == pytest.approx(1.0)
            assert set(probabilities) == {"1", "100"}
        if expected == "same":
            assert label["label"] == "1"
    else:
        with pytest.raises(AppError, match=expected):
            classify(client, path)
    label, _ = classify(client, photos["100"])  # and the server still answers
    assert label["label"] == "100"


@pytest.mark.parametrize("runs", ["many", "inf", None, -1, 0, 2.5, 10**9, [3]])
def test_a_nonsense_run_count_is_refused_clearly(client, photos, runs):
    with pytest.raises(AppError, match=r"runs must be a whole number from 1 to 200, got "):
        client.predict(handle_file(str(photos["1"])), runs, api_name="/classify")


# (endpoint, the request's data as JSON text, what the error must say). JSON text because a
# client library refuses to send NaN; a hand-made request does not.
CRAFTED = [
    ("classify", "[null, NaN]", "runs must be a whole number from 1 to 200, got nan"),
    ("benchmark", '["256", NaN]', "runs must be a whole number from 1 to 100, got nan"),
    ("benchmark", '["256", null]', "runs must be a whole number from 1 to 100, got None"),
    ("benchmark", '["256", -3]', "runs must be a whole number from 1 to 100, got -3"),
    (
        "benchmark",
        '["256", 1e12]',
        "runs must be a whole number from 1 to 100, got 1000000000000.0",
    ),
    ("benchmark", '["3", 2]', "the largest batch size must be one of 1, 2, 4, 8, 16"),
    ("benchmark", "[null, 2]", "the largest batch size must be a whole number from 1 to 256"),
    ("init_study", "[1e30, 40]", "seed must be a whole number from 0 to 4294967295, got 1e+30"),
    ("init_study", "[null, 40]", "seed must be a whole number from 0 to 4294967295, got None"),
    ("init_study", "[NaN, 40]", "seed must be a whole number from 0 to 4294967295, got nan"),
    ("init_study", "[1, Infinity]", "layers must be a whole number from 2 to 200, got inf"),
    ("init_study", "[1, 10000]", "layers must be a whole number from 2 to 200, got 10000"),
    ("layer_weights", '["bn1"]', "no layer 'bn1' to compare: choose one of conv1, conv2"),
    ("layer_weights", "[null]", "no layer None to compare"),
]


def call_raw(url: str, api: str, data: str) -> str:
    """POST ``{"data": <data>}`` as text to /gradio_api/call/<api>; the event stream's text."""
    call = f"{url}gradio_api/call/{api}"
    body = f'{{"data": {data}}}'
    headers = {"content-type": "application/json"}
    response = httpx.post(call, content=body, headers=headers, timeout=10)
    event = response.json()["event_id"]
    with httpx.stream("GET", f"{call}/{event}", timeout=60) as stream:
        return "".join(stream.iter_text())


@pytest.mark.parametrize(("api", "data", "message"), CRAFTED)
def test_crafted_api_values_get_a_message_not_a_null_error(demo_server, api, data, message):
    text = call_raw(demo_server.url, api, data)
    assert "event: error" in text
    assert "data: null" not in text
    assert message in text


def test_uploads_over_the_cap_are_refused_and_the_server_goes_on(client, demo_server, photos):
    big = np.random.default_rng(0).integers(0, 256, demo_server.upload_cap_bytes + 100_000)
    data = big.astype(np.uint8).tobytes()
    response = httpx.post(
        f"{demo_server.url}gradio_api/upload", files={"files": ("big.jpg", data)}, timeout=30
    )
    assert response.status_code == 413, response.text
    assert "size" in response.text.lower()
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(handle_file(_write(data)), 1, api_name="/classify")
    label, _ = classify(client, photos["1"])
    assert label["label"] == "1"


def _write(data: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as fh:
        fh.write(data)
    return fh.name


def test_only_the_example_photos_are_served_as_files(demo_server):
    config = httpx.get(f"{demo_server.url}config", timeout=10).json()
    urls = [
        sample[0]["url"]
        for component in config["components"]
        if component.get("type") == "dataset"
        for sample in component["props"]["samples"]
    ]
    assert len(urls) == 4
    photo = httpx.get(urls[0], timeout=10)
    assert photo.status_code == 200
    Image.open(io.BytesIO(photo.content)).verify()
    artifacts = demo_server.artifacts
    for secret in (Path("/etc/passwd"), artifacts.checkpoint, artifacts.folded_onnx):
        response = httpx.get(f"{demo_server.url}gradio_api/file={secret}", timeout=10)
        assert response.status_code in (403, 404), secret


def test_a_path_outside_the_upload_folder_is_not_read(demo_server):
    """A hand-made request naming a server file is refused before our code sees it."""
    import json

    payload = {
        "path": str(demo_server.artifacts.test_photos()[0][1]),
        "meta": {"_type": "gradio.FileData"},
    }
    text = call_raw(demo_server.url, "classify", json.dumps([payload, 1]))
    assert "event: error" in text
    assert "confidences" not in text


# ----------------------------------------------------------------------------------------------
# Load, and the other endpoints


@pytest.mark.slow
def test_eight_concurrent_clients_get_every_answer(demo_server, photos):
    clients, requests = 8, 25
    errors: list[BaseException] = []
    answers: list[tuple[str, str]] = []
    lock = threading.Lock()

    from demo_fixtures import local_client

    def user(index: int) -> None:
        own = local_client(demo_server.url)
        for i in range(requests):
            cls = ("1", "100")[(index + i) % 2]
            try:
                label, _ = classify(own, photos[cls], runs=5)
                with lock:
                    answers.append((cls, label["label"]))
            except BaseException as e:  # collected: the assertion below shows them all
                with lock:
                    errors.append(e)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
    assert len(answers) == clients * requests
    assert all(cls == label for cls, label in answers)


def test_benchmark_endpoint_sweeps_every_variant(client):
    table, plot, summary = client.predict("4", 2, api_name="/benchmark")
    assert table["headers"][0] == "batch size"
    assert [row[0] for row in table["data"]] == [1, 2, 4]
    variants = table["headers"][1:]
    assert len(variants) >= 4
    assert all(value > 0 for row in table["data"] for value in row[1:])
    assert plot["type"] == "matplotlib"
    assert "batch 4" in summary


def test_sigterm_removes_the_example_folder_and_old_uploads_are_pruned(
    demo_artifacts, photos, tmp_path
):
    import signal
    import time

    from demo_fixtures import local_client, start_demo

    from demo.process import stop

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    flags = ("--upload-max-age-s", "3")
    proc, url, _ = start_demo(demo_artifacts, tmp_path, *flags, env={"TMPDIR": str(tmp)})
    try:
        (examples,) = tmp.glob("rmb-demo-examples-*")
        assert any(examples.iterdir())
        files = {"files": ("note.jpg", photos["1"].read_bytes())}
        (uploaded,) = httpx.post(f"{url}gradio_api/upload", files=files, timeout=30).json()
        assert Path(uploaded).is_file() and Path(uploaded).is_relative_to(tmp_path)
        deadline = time.monotonic() + 20
        while Path(uploaded).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(uploaded).exists(), "the upload was never pruned"
        local_client(url).predict(handle_file(str(photos["1"])), 1, api_name="/classify")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    assert not examples.exists()


def test_init_study_and_layer_endpoints(client):
    image, table = client.predict(1, 40, api_name="/init_study")
    assert Image.open(image).size[0] > 100
    assert "normal" in table and "35" in table  # the course's nan layer with seed 1
    plot = client.predict("conv2", api_name="/layer_weights")
    assert plot["type"] == "matplotlib"
