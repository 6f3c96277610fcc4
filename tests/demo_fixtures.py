"""Session fixtures for the demo tests: real artifacts made once, one real server for all.

``demo_artifacts`` trains BN-LeNet on the real RMB photos (the course's defaults, about 5 s) and
exports it with the real ``python -m export``; ``demo_server`` launches ``python -m demo`` on
them in a subprocess on a free localhost port, exactly as a user would, and stops it at the end
of the session. Test modules load this file with ``pytest_plugins = ["demo_fixtures"]``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER_UPLOAD_CAP_MB = 1  # small, so the over-cap upload test sends only ~1.5 MB
SERVER_START_TIMEOUT_S = 120


@dataclass(frozen=True)
class DemoArtifacts:
    """A checkpoint trained on the real photos and its exported ONNX files."""

    checkpoint: Path
    onnx_dir: Path
    data_dir: Path
    ckpt: dict[str, Any]

    @property
    def unfolded_onnx(self) -> Path:
        return self.onnx_dir / f"{self.checkpoint.stem}.unfolded.onnx"

    @property
    def folded_onnx(self) -> Path:
        return self.onnx_dir / f"{self.checkpoint.stem}.folded.onnx"

    def test_photos(self) -> list[tuple[str, Path]]:
        """(class, path) of every photo of the checkpoint's held-out test split."""
        return [(p.split("/")[0], self.data_dir / p) for p in self.ckpt["split"]["test"]]


@dataclass(frozen=True)
class DemoServer:
    url: str
    log: Path
    artifacts: DemoArtifacts
    upload_cap_bytes: int


def _real_data_dir() -> Path:
    # The session-scoped twin of conftest's ``rmb_data_dir`` (which is function-scoped).
    value = os.environ.get("RMB_DATA_DIR", "")
    if not value or not Path(value).is_dir():
        pytest.skip("RMB_DATA_DIR is not set to a folder: the demo tests need the real RMB photos")
    return Path(value)


@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory: pytest.TempPathFactory) -> DemoArtifacts:
    """Train (real photos, course defaults) and export with the real CLIs, once per session."""
    from export.__main__ import get_args_parser as export_parser
    from export.__main__ import main as export_main
    from train.checkpoint import load_checkpoint
    from train.trainer import TrainConfig, fit

    data_dir = _real_data_dir()
    root = tmp_path_factory.mktemp("demo-artifacts")
    checkpoint = root / "bn-lenet.pt"
    onnx_dir = root / "onnx"
    fit(TrainConfig(data=str(data_dir), out=str(checkpoint)))
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"python -m demo exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}gradio_api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"python -m demo did not serve {url} in {SERVER_START_TIMEOUT_S} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def demo_server(
    demo_artifacts: DemoArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoServer]:
    """``python -m demo`` on the session's artifacts, on a free 127.0.0.1 port."""
    root = tmp_path_factory.mktemp("demo-server")
    port = free_port()
    log = root / "server.log"
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(root / "gradio-cache"),
        "PYTHONUNBUFFERED": "1",
        # This checkout's code, not whichever checkout the venv has installed (cwd is root).
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [
        sys.executable,
        "-m",
        "demo",
        "--checkpoint",
        str(demo_artifacts.checkpoint),
        "--onnx-dir",
        str(demo_artifacts.onnx_dir),
        "--port",
        str(port),
        "--max-upload-mb",
        str(SERVER_UPLOAD_CAP_MB),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(proc, url, log)
        yield DemoServer(url, log, demo_artifacts, SERVER_UPLOAD_CAP_MB * 2**20)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


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
