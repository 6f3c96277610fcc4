"""``python -m serve`` for real: local Ray in a loopback-only network namespace, curl as client.

Protects: real photos get evaluation's answers, singly, concurrently (dynamic batching) and as a
multipart list; every bad input gets a 4xx with a one-line JSON error and the service keeps
serving; two replicas start; SIGTERM stops the service with exit code 0 and leaves no Ray daemon.
Ray must not talk over this machine's own address, so the server and curl both run in
:class:`serve.netns.LoopbackNamespace` (root, as in CI).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from serve.netns import LoopbackNamespace, NamespaceUnavailable

pytest_plugins = ["demo_fixtures"]
pytestmark = pytest.mark.realdata

PORT = 8000  # the namespace is private: no other process can hold it
URL = f"http://127.0.0.1:{PORT}"
START_TIMEOUT_S = 120
MAX_BATCH = 8
MAX_BODY_MB = 2  # above a few real photos in one multipart request


@dataclass
class Server:
    ns: LoopbackNamespace
    proc: subprocess.Popen
    log: Path


def curl(ns: LoopbackNamespace, *args: str, timeout: float = 30) -> tuple[int, object]:
    """(HTTP status, decoded JSON body) of one curl run inside the namespace."""
    done = ns.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout), *args],
        capture_output=True,
        timeout=timeout + 10,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), json.loads(body) if body else None


def predict(ns: LoopbackNamespace, path: Path) -> tuple[int, object]:
    return curl(ns, "--data-binary", f"@{path}", "-H", "Content-Type: image/jpeg", f"{URL}/predict")


def wait_healthy(ns: LoopbackNamespace, proc: subprocess.Popen, log: Path) -> None:
    """Until ``GET /healthz`` answers 200 in ``ns``; fail with the log if serve exits or stalls."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"python -m serve exited with {proc.returncode}:\n{log.read_text()}")
        done = ns.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{URL}/healthz"],
            capture_output=True,
            text=True,
        )
        if done.stdout == "200":
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no /healthz in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module", params=["proxy", "haproxy"])
def server(request, demo_artifacts, tmp_path_factory) -> Iterator[Server]:
    """The service with each ingress: the default Python proxy and the opt-in HAProxy."""
    try:
        ns = LoopbackNamespace().__enter__()
    except NamespaceUnavailable as e:
        pytest.skip(f"the serve tests need a network namespace for Ray: {e}")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [
        sys.executable, "-m", "serve",
        "--checkpoint", str(demo_artifacts.checkpoint),
        "--onnx-dir", str(demo_artifacts.onnx_dir),
        "--port", str(PORT),
        "--replicas", "2",
        "--cpus-per-replica", "0.5",
        "--max-batch", str(MAX_BATCH),
        "--max-body-mb", str(MAX_BODY_MB),
        "--ingress", request.param,
    ]  # fmt: skip
    try:
        with open(log, "wb") as out:
            proc = ns.popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(ns, proc, log)
        yield Server(ns, proc, log)
    finally:
        ns.close()  # ends by PID whatever a failed run left in the namespace


@pytest.fixture(scope="module")
def reference(demo_artifacts):
    """Evaluation's probabilities per photo path (float64 PyTorch, the eval pipeline)."""
    from test_serve_model import reference_probabilities

    photos = [p for _, p in demo_artifacts.test_photos()]
    probs = reference_probabilities(demo_artifacts.ckpt, photos)
    names = list(demo_artifacts.ckpt.class_names)
    rows = zip(photos, probs, strict=True)
    return {p: dict(zip(names, row.tolist(), strict=True)) for p, row in rows}


def assert_answer(answer: dict, expected: dict[str, float]) -> None:
    """A real note: evaluation's probabilities and label, and known to the OOD score."""
    assert answer["probabilities"] == pytest.approx(expected, abs=1e-5)
    assert answer["label"] == max(expected, key=expected.__getitem__)
    assert answer["unknown"] is False and isinstance(answer["ood_score"], float)


def test_healthz_names_the_classes(server, demo_artifacts):
    status, body = curl(server.ns, f"{URL}/healthz")
    assert status == 200 and body["classes"] == list(demo_artifacts.ckpt.class_names)


def test_real_photos_get_evaluations_answers(server, reference):
    for path in list(reference)[:6]:
        status, answer = predict(server.ns, path)
        assert status == 200, answer
        assert_answer(answer, reference[path])


def test_a_photo_that_is_no_note_is_answered_unknown(server, demo_artifacts, tmp_path):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(noise).save(path)
    status, answer = predict(server.ns, path)
    assert status == 200, answer
    assert answer["label"] == "unknown" and answer["unknown"] is True
    assert answer["ood_score"] > float(demo_artifacts.ckpt.ood["threshold"])


def test_concurrent_requests_are_batched_and_all_answered(server, reference):
    paths = list(reference)[:16]
    procs = [
        server.ns.popen(
            ["curl", "-sS", "--max-time", "30", "--data-binary", f"@{p}", f"{URL}/predict"],
            stdout=subprocess.PIPE,
        )
        for p in paths
    ]
    for path, proc in zip(paths, procs, strict=True):
        out, _ = proc.communicate(timeout=60)
        assert_answer(json.loads(out), reference[path])


def test_multipart_answers_a_list_in_order(server, reference):
    paths = list(reference)[:5]
    files = [arg for i, p in enumerate(paths) for arg in ("-F", f"photo{i}=@{p}")]
    status, answers = curl(server.ns, *files, f"{URL}/predict")
    assert status == 200 and len(answers) == len(paths)
    for path, answer in zip(paths, answers, strict=True):
        assert answer["file"] == path.name
        assert_answer(answer, reference[path])


def _bad_inputs(folder: Path, photo: Path) -> dict[str, tuple[list[str], int, str]]:
    from demo_fixtures import pixel_bomb_png

    text = folder / "notes.txt"
    text.write_text("not an image\n")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(photo.read_bytes()[:2000])
    bomb = folder / "bomb.png"
    bomb.write_bytes(pixel_bomb_png(20_000, 20_000))
    big = folder / "big.bin"
    big.write_bytes(b"\xff" * (MAX_BODY_MB * 2**20 + 1))
    many = [a for i in range(MAX_BATCH + 1) for a in ("-F", f"f{i}=@{text}")]
    predict = f"{URL}/predict"
    over = f"over the {MAX_BODY_MB:.1f} MiB limit"
    return {
        "empty": (["-X", "POST", predict], 400, "empty"),
        "text": (["--data-binary", f"@{text}", predict], 415, "not an image"),
        "truncated": (["--data-binary", f"@{truncated}", predict], 422, "corrupt or truncated"),
        "bomb": (["--data-binary", f"@{bomb}", predict], 413, "megapixels"),
        "too large": (["--data-binary", f"@{big}", predict], 413, over),
        "too many files": ([*many, predict], 400, f"at most {MAX_BATCH} files"),
        "no files": (["-F", "note=hello", predict], 400, "no files"),
        "GET predict": ([predict], 405, "POST"),
        "unknown path": ([f"{URL}/nope"], 404, "no route"),
    }


def test_bad_input_gets_a_4xx_with_a_one_line_error(server, reference, tmp_path):
    photo = next(iter(reference))
    for case, (args, status, words) in _bad_inputs(tmp_path, photo).items():
        got, body = curl(server.ns, *args)
        assert got == status, (case, body)
        assert set(body) == {"error"} and "\n" not in body["error"], case
        assert words in body["error"], (case, body)
    status, answer = predict(server.ns, photo)  # still serving
    assert status == 200
    assert_answer(answer, reference[photo])


def test_a_bad_file_in_a_multipart_batch_fails_alone(server, reference, tmp_path):
    photo = next(iter(reference))
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    status, answers = curl(server.ns, "-F", f"a=@{photo}", "-F", f"b=@{text}", f"{URL}/predict")
    assert status == 200
    assert_answer(answers[0], reference[photo])
    assert answers[1]["file"] == "notes.txt" and "not an image" in answers[1]["error"]


def test_sigterm_stops_serve_and_leaves_no_ray_process(server):
    """Last in the module: the service shuts Serve and its local Ray down on SIGTERM."""
    assert server.ns.ray_daemons(), "Ray's daemons should be running while it serves"
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.log.read_text()[-3000:]
    deadline = time.monotonic() + 15
    while server.ns.ray_daemons() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.ns.ray_daemons() == [], "python -m serve left Ray daemons running"
