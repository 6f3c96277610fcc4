"""Session fixtures for the demo tests: real artifacts made once, one real server for all.

``demo_artifacts`` trains BN-LeNet with the product recipe (:mod:`train.recipe`, outlier
exposure on) on the real RMB photos when ``RMB_DATA_DIR`` names them (about 20 s); without them
(a fresh clone) it takes the session's default model, ``python -m train`` with no flags on the
synthetic set (the ``default_checkpoint`` fixture, trained once for all the tests that need it),
so a fresh clone tests the demo too, on the model a new user gets. A small synthetic set does
not do: 100 or 300 notes per class left a model that scored uniform noise below its threshold
or found no confident held-out note. Either is exported with the real ``python -m export``;
``demo_server`` launches ``python -m demo`` on them in a subprocess on a free localhost port,
exactly as a user would, and stops it at the end of the session. Test modules load this file
with ``pytest_plugins = ["demo_fixtures"]``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER_UPLOAD_CAP_MB = 1  # small, so the over-cap upload test sends only ~1.5 MB
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoArtifacts:
    """A checkpoint trained on the real photos (or synthetic notes) and its exported ONNX files."""

    checkpoint: Path
    onnx_dir: Path
    data_dir: Path
    ckpt: dict[str, Any]

    @property
    def unfolded_onnx(self) -> Path:
        return self.onnx_dir / f"{self.checkpoint.stem}.unfolded.onnx"

    @property
    def int8_onnx(self) -> Path:
        return self.onnx_dir / f"{self.checkpoint.stem}.folded.int8.onnx"

    @property
    def folded_onnx(self) -> Path:
        return self.onnx_dir / f"{self.checkpoint.stem}.folded.onnx"

    def test_photos(self) -> list[tuple[str, Path]]:
        """(class, path) of every photo of the checkpoint's held-out test split."""
        return [(p.split("/")[0], self.data_dir / p) for p in self.ckpt.split["test"]]


@dataclass(frozen=True)
class DemoServer:
    url: str
    log: Path
    artifacts: DemoArtifacts
    upload_cap_bytes: int


def _real_photos() -> Path | None:
    """The real photos named by RMB_DATA_DIR, None when it names no folder (a fresh clone)."""
    value = os.environ.get("RMB_DATA_DIR", "")
    return Path(value) if value and Path(value).is_dir() else None


def _trained_checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(checkpoint, its data folder): trained here on the real photos, else the default model."""
    from train.trainer import TrainConfig, fit, resolve_data_dir

    data_dir = _real_photos()
    if data_dir is None:
        checkpoint = request.getfixturevalue("default_checkpoint")
        synthetic, _ = resolve_data_dir(None, checkpoint.parent / "data")  # its cached set
        return checkpoint, synthetic
    checkpoint = tmp_path_factory.mktemp("demo-model") / "bn-lenet.pt"
    negatives = tmp_path_factory.mktemp("negatives")
    fit(TrainConfig(data=str(data_dir), out=str(checkpoint), synthetic_dir=str(negatives)))
    return checkpoint, data_dir


@pytest.fixture(scope="session")
def demo_artifacts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DemoArtifacts:
    """A model trained with the product recipe, exported with the real CLI, once per session."""
    from bnfold.checkpoint import load_checkpoint
    from export.__main__ import get_args_parser as export_parser
    from export.__main__ import main as export_main

    checkpoint, data_dir = _trained_checkpoint(request, tmp_path_factory)
    onnx_dir = tmp_path_factory.mktemp("demo-artifacts") / "onnx"
    args = ["--checkpoint", str(checkpoint), "--out", str(onnx_dir)]
    code = export_main(export_parser().parse_args(args))
    assert code == 0, f"python -m export failed with exit code {code}"
    return DemoArtifacts(checkpoint, onnx_dir, data_dir, load_checkpoint(checkpoint))


def local_client(url: str) -> Any:
    """A ``gradio_client.Client`` for a plain-http server on this machine.

    ``ssl_verify=False`` because there is no TLS on http://127.0.0.1 to verify, and with it on,
    gradio_client loads the CA bundle for each of the three HTTP clients it opens per call
    (about 95 ms of CPU per request here), which would make the test measure the client.
    """
    from gradio_client import Client

    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"local_client is for http://127.0.0.1 servers only, got {url}")
    return Client(url, verbose=False, ssl_verify=False)


def start_demo(
    artifacts: DemoArtifacts, root: Path, *flags: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str, Path]:
    """``python -m demo`` on ``artifacts`` in a subprocess, serving: (process, url, log file)."""
    from demo.process import ServerError
    from demo.process import start_demo as start

    log = root / "server.log"
    env = {
        "GRADIO_TEMP_DIR": str(root / "gradio-cache"),
        # This checkout's code, whichever checkout the venv was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    command = ["--checkpoint", str(artifacts.checkpoint), "--onnx-dir", str(artifacts.onnx_dir)]
    try:
        proc, url = start([*command, *flags], log, env=env, cwd=root)
    except ServerError as e:
        pytest.fail(str(e))
    return proc, url, log


@pytest.fixture(scope="session")
def demo_server(
    demo_artifacts: DemoArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoServer]:
    """``python -m demo`` on the session's artifacts, on a free 127.0.0.1 port."""
    from demo.process import stop

    root = tmp_path_factory.mktemp("demo-server")
    flags = ("--max-upload-mb", str(SERVER_UPLOAD_CAP_MB))
    proc, url, log = start_demo(demo_artifacts, root, *flags)
    try:
        yield DemoServer(url, log, demo_artifacts, SERVER_UPLOAD_CAP_MB * 2**20)
    finally:
        stop(proc)


# ----------------------------------------------------------------------------------------------
# Image files a user might send, good and bad, built byte by byte where PIL cannot write them.


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG of already-serialised scanlines (each starting with its filter byte)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def png16_rgb(pixels: Any) -> bytes:
    """A 16-bit-per-channel RGB PNG of a (H, W, 3) uint16 array (PIL cannot write these)."""
    height, width, _ = pixels.shape
    body = pixels.astype(">u2").reshape(height, width * 3)
    rows = b"".join(b"\x00" + row.tobytes() for row in body)
    return png_bytes(int(width), int(height), 16, 2, rows)


def pixel_bomb_png(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` grayscale pixels but carries one row of data.

    Tiny on disk, gigabytes once decoded: the decompression bomb a server must refuse from the
    header alone.
    """
    return png_bytes(width, height, 8, 0, b"\x00" * (width + 1))
