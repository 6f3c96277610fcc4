"""HTTP in and out of the service: which images a request carries, and one-line JSON errors.

A request is either the raw image bytes as the body (one answer) or ``multipart/form-data`` with
one or more files (a list of answers, in the order sent). The body is read in chunks and refused
past ``max_bytes`` before it is all in memory; a ``Content-Length`` over the limit is refused
before any of it is read. Nothing here knows about Ray or the model, so it is tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse

MULTIPART = "multipart/form-data"


class BadRequest(ValueError):
    """A request the service refuses; ``status`` is the 4xx to answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """One image of a request: its file name (``""`` for a raw body) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Images:
    """What a predict request carries; ``many`` is True for multipart (answered with a list)."""

    uploads: list[Upload]
    many: bool


def rejection_status(e: ValueError) -> int:
    """The 4xx for an image :func:`demo.images.decode_image` refused.

    415 when the bytes are not an accepted image format, 413 when the image declares too many
    pixels (a decompression bomb: the entity is too large, whatever its byte size), 422 when it
    is an image of an accepted format that cannot be used (corrupt, truncated, odd mode).
    """
    from demo.images import NotAnImage, TooManyPixels

    if isinstance(e, NotAnImage):
        return 415
    if isinstance(e, TooManyPixels):
        return 413
    return 422


def error(status: int, message: str) -> JSONResponse:
    """The one-line JSON error every refusal gets: ``{"error": "<why and what to do>"}``."""
    return JSONResponse({"error": message.replace("\n", " ")}, status_code=status)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing more than ``max_bytes`` (413) without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as e:
            raise BadRequest(400, f"Content-Length {declared!r} is not a number") from e
        if size > max_bytes:
            raise _too_large(size, max_bytes)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(total, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> BadRequest:
    return BadRequest(
        413,
        f"the request body is {size / 2**20:.1f} MiB or more, over the "
        f"{max_bytes / 2**20:.1f} MiB limit: send a smaller photo or fewer files per request",
    )


async def read_images(request: Request, *, max_bytes: int, max_files: int) -> Images:
    """The images of a ``POST /predict``: the raw body, or every file of a multipart form."""
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith(MULTIPART):
        if not body:
            raise BadRequest(400, "the request body is empty: POST the image bytes (a photo)")
        return Images([Upload("", body)], many=False)
    uploads = await _multipart_files(request, body, max_files)
    if not uploads:
        raise BadRequest(400, "the multipart form has no files: attach photos with -F file=@x.jpg")
    return Images(uploads, many=True)


async def _multipart_files(request: Request, body: bytes, max_files: int) -> list[Upload]:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, receive=replay).form(
            max_files=max_files, max_fields=max_files
        ) as form:
            uploads = []
            for field, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads.append(Upload(value.filename or field, await value.read()))
    except MultiPartException as e:
        raise BadRequest(
            400,
            f"the multipart form is malformed or has too many parts ({e.message}): "
            f"send at most {max_files} files",
        ) from e
    return uploads
