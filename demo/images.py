"""Validate an uploaded file, then decode it the one way training and evaluation do.

An upload is untrusted bytes. Before anything reaches the model this module checks, in order:
size on disk (empty / over the cap), that PIL recognises one of a few raster formats, and the
pixel count from the header alone (decompression bombs are refused before any pixel is decoded).
Decoding itself (EXIF orientation, first frame, alpha over white, 16-bit, palette/CMYK/grayscale,
shrinking early so a large upload costs little memory) is :func:`train.preprocess.decode`; here a
corrupt or truncated file becomes an :class:`ImageRejected` with a reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from export.runtimes.errors import first_line
from train.preprocess import INPUT_SIZE, decode

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MiB: a phone photo is 2-8 MiB
MAX_PIXELS = 50_000_000  # 50 MP: above any phone camera, below PIL's own bomb warning (89 MP)
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")  # JPEG covers MPO; no EPS, PSD, ...
_ACCEPTED = "JPEG, PNG, GIF, BMP, WebP or TIFF"

# warnings.catch_warnings swaps a process-wide filter list: two threads interleaving their
# enter/exit could leave the other's filter behind, so header reads take turns (microseconds).
_WARNINGS_LOCK = threading.Lock()


class ImageRejected(ValueError):
    """An upload that is not a usable image; the message says why and what to send instead."""


class NotAnImage(ImageRejected):
    """The bytes are not one of the accepted raster formats (an HTTP service answers 415)."""


class TooManyPixels(ImageRejected):
    """The header declares more pixels than allowed (a decompression bomb; HTTP 413)."""


def read_upload(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of an uploaded file, refusing empty files and files over ``max_bytes``."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        reason = f"the upload could not be read ({type(e).__name__}): send it again"
        raise ImageRejected(reason) from e
    _check_size(size, max_bytes)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)  # the file may have grown since stat
    _check_size(len(data), max_bytes)
    return data


def decode_data_url(url: str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of a ``data:<mime>;base64,<payload>`` URL (what a pasted image may arrive as)."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ImageRejected("the image data URL is malformed: expected data:<type>;base64,<data>")
    _check_size(len(payload) * 3 // 4, max_bytes)  # before decoding a huge payload
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageRejected("the image data URL is not valid base64") from e
    _check_size(len(data), max_bytes)
    return data


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageRejected("the file is empty (0 bytes): send a photo")
    if size > max_bytes:
        raise ImageRejected(
            f"the file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB upload "
            "limit: send a smaller photo"
        )


def decode_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, size: tuple[int, int] = INPUT_SIZE
) -> Image.Image:
    """Untrusted image bytes → a small 8-bit RGB PIL image; :class:`ImageRejected` if unusable.

    The header is checked here (format, pixel count); decoding is :func:`train.preprocess.decode`,
    the path training and evaluation take, for the model input ``size`` (height, width).
    """
    if not data:
        raise ImageRejected("the file is empty (0 bytes): send a photo")
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, max_pixels)
    try:
        return decode(image, size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb(image.width * image.height, max_pixels) from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
        raise ImageRejected(
            f"the {image.format} file is corrupt or truncated ({first_line(e, 120)}): send the "
            "complete file"
        ) from e


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooManyPixels(
            f"the image declares too many pixels ({first_line(e, 120)}): a decompression bomb is "
            f"refused; send a photo of at most {max_pixels / 1e6:.0f} megapixels"
        ) from e
    except UnidentifiedImageError as e:
        raise NotAnImage(f"the file is not an image this demo reads: send a {_ACCEPTED}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageRejected(
            f"the file is corrupt ({first_line(e, 120)}): send a complete {_ACCEPTED} file"
        ) from e
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected(f"the image is {width}×{height} pixels: it has no pixels to classify")
    if width * height > max_pixels:
        raise _bomb(width * height, max_pixels)
    return image


def _bomb(pixels: int, max_pixels: int) -> TooManyPixels:
    return TooManyPixels(
        f"the image has {pixels / 1e6:.0f} megapixels, over the {max_pixels / 1e6:.0f} MP limit "
        "(decompression-bomb guard): send a smaller photo"
    )


def load_upload(
    path: str | Path, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """An uploaded file as an RGB image: :func:`read_upload` then :func:`decode_image`."""
    return decode_image(read_upload(path, max_bytes), max_pixels=max_pixels)
