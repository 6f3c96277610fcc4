"""serve.http and serve.config, without Ray: what a request carries, and how it is refused.

Protects: a raw body is one image and a multipart form a list, in the order sent, named by file;
an empty body, a form without files, a form over ``max_files`` and a malformed form are 400; a
body over ``max_bytes`` is 413 whether its Content-Length says so (nothing read) or it streams
past the limit without one; a non-numeric Content-Length is 400; a decoder refusal maps to 415
(not an image), 413 (too many pixels) or 422 (a broken image); ``--ingress`` settings name
only the Ray Serve variables they mean to set and refuse an unknown mode; bad flags stop
parsing with one argparse error naming the flag, exit code 2, before Ray starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from starlette.requests import Request

from demo.images import ImageRejected, NotAnImage, TooManyPixels, decode_image
from serve.config import ingress_env
from serve.http import BadRequest, read_images, rejection_status

BOUNDARY = "rmbboundary"


def request(body: bytes, headers: dict[str, str], chunks: int = 1) -> Request:
    """A Starlette request whose body arrives in ``chunks`` pieces, as an ASGI server sends it."""
    step = max(1, -(-len(body) // chunks))
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def multipart(files: Sequence[tuple[str, str, bytes]], fields: Sequence[tuple[str, str]] = ()):
    """(body, headers) of a multipart form: files as (field, filename, bytes), then fields."""
    parts = []
    for field, filename, data in files:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    for field, value in fields:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'
        parts.append(head.encode() + value.encode() + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def read(req: Request, max_bytes: int = 1000, max_files: int = 3):
    return asyncio.run(read_images(req, max_bytes=max_bytes, max_files=max_files))


def refused(req: Request, **kwargs) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        read(req, **kwargs)
    return info.value


def test_a_raw_body_is_one_image():
    images = read(request(b"\xff\xd8jpeg", {"content-type": "image/jpeg"}, chunks=3))
    assert not images.many
    assert [(u.name, u.data) for u in images.uploads] == [("", b"\xff\xd8jpeg")]


def test_a_multipart_form_is_a_list_in_order_and_fields_are_ignored():
    body, headers = multipart([("a", "one.jpg", b"111"), ("b", "two.jpg", b"22")], [("x", "y")])
    images = read(request(body, headers))
    assert images.many
    assert [(u.name, u.data) for u in images.uploads] == [("one.jpg", b"111"), ("two.jpg", b"22")]


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("empty", 400, "body is empty"),
        ("no files", 400, "no files"),
        ("too many files", 400, "at most 3 files"),
        ("malformed", 400, "malformed"),
        ("declared too large", 413, "over the"),
        ("streamed too large", 413, "over the"),
        ("bad length", 400, "not a number"),
    ],
)
def test_bad_requests_are_refused_with_their_status(case, status, words):
    body, form = multipart([(f"f{i}", f"{i}.jpg", b"x") for i in range(4)])
    raw = {"content-type": "image/jpeg"}
    req = {
        "empty": lambda: request(b"", raw),
        "no files": lambda: request(*multipart([], [("note", "hello")])),
        "too many files": lambda: request(body, form),
        "malformed": lambda: request(b"--nope\r\ngarbage", form),
        "declared too large": lambda: request(b"x", {**raw, "content-length": "1001"}),
        "streamed too large": lambda: request(b"x" * 1001, raw, chunks=4),
        "bad length": lambda: request(b"x", {**raw, "content-length": "ten"}),
    }[case]()
    err = refused(req)
    assert err.status == status and words in str(err), (case, str(err))


def test_a_body_at_the_limit_is_accepted():
    images = read(request(b"x" * 1000, {"content-type": "image/jpeg"}, chunks=4))
    assert len(images.uploads[0].data) == 1000


def _jpeg() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="JPEG")
    return out.getvalue()


def _rejection(data: bytes, **kwargs) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, **kwargs)
    return info.value


def test_decoder_refusals_map_to_415_413_422():
    from demo_fixtures import pixel_bomb_png

    text = _rejection(b"just some text, not an image")
    bomb = _rejection(pixel_bomb_png(3000, 3000), max_pixels=1_000_000)
    broken = _rejection(_jpeg()[:400])  # a JPEG cut short: an image, but unusable
    assert isinstance(text, NotAnImage) and rejection_status(text) == 415
    assert isinstance(bomb, TooManyPixels) and rejection_status(bomb) == 413
    assert type(broken) is ImageRejected and rejection_status(broken) == 422


def test_ingress_settings():
    assert ingress_env("proxy", "/w") == {}
    env = ingress_env("haproxy", "/w")
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert all(k.startswith("RAY_SERVE_") for k in env)
    files = [v for k, v in env.items() if k.startswith("RAY_SERVE_HAPROXY_") and "/" in v]
    assert files and all(v.startswith("/w") for v in files), "HAProxy files outside workdir"
    with pytest.raises(ValueError, match="--ingress must be one of"):
        ingress_env("nginx", "/w")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--port", "65536", "must be at least 1 and at most 65535, got 65536"),
        ("--replicas", "0", "must be at least 1, got 0"),
        ("--max-batch", "-3", "must be at least 1, got -3"),
        ("--decode-threads", "0", "must be at least 1, got 0"),
        ("--batch-wait-ms", "-1", "must be at least 0, got -1"),
        ("--max-body-mb", "inf", "must be above 0, got inf"),
        ("--cpus-per-replica", "0", "must be above 0, got 0"),
    ],
)
def test_cli_refuses_bad_flags_before_ray_with_exit_2(capsys, flag, value, message):
    from serve.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main([flag, value])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"argument {flag}: {message}")


def test_cli_flags_accept_their_edges():
    from serve.__main__ import get_args_parser

    args = get_args_parser().parse_args(["--port", "65535", "--batch-wait-ms", "0"])
    assert (args.port, args.batch_wait_ms, args.cpus_per_replica) == (65535, 0.0, 1.0)
