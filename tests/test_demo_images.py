"""demo.images: each kind of upload becomes the RGB picture a viewer would show, or a refusal.

References: PIL's own decoders and conversions, the exact compositing formula, and
``train.preprocess.open_image`` for real photos (what evaluation fed the model).
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import pytest
from PIL import Image

from demo.images import (
    MAX_PIXELS,
    ImageRejected,
    decode_data_url,
    decode_image,
    load_upload,
    read_upload,
)
from train.preprocess import open_image, to_rgb

pytest_plugins = ["demo_fixtures"]


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def noise(width: int = 64, height: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


# ----------------------------------------------------------------------------------------------
# What a photo becomes


@pytest.mark.realdata
def test_real_photos_decode_exactly_as_training_decodes_them(rmb_data_dir):
    """The demo must feed the model what evaluation fed it: same JPEG draft scale, same pixels."""
    photos = sorted(rmb_data_dir.glob("*/*.jpg"))[::20]
    assert len(photos) >= 10
    for path in photos:
        decoded = load_upload(path)
        reference = open_image(path)
        assert decoded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(reference), err_msg=str(path))


@pytest.mark.parametrize("alpha", [0, 64, 128, 255])
def test_transparency_is_composited_on_white(alpha):
    colour = np.array([200, 30, 90])
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = alpha
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    expected = np.round(colour * alpha / 255 + 255 * (1 - alpha / 255))
    np.testing.assert_allclose(pixels(decoded)[0, 0], expected, atol=1)
    assert decoded.mode == "RGB"


def test_gray_with_alpha_and_palette_transparency_are_composited_on_white():
    la = Image.fromarray(np.dstack([np.full((4, 4), 10, np.uint8), np.zeros((4, 4), np.uint8)]))
    assert la.mode == "LA"
    assert (pixels(decode_image(encode(la, "PNG"))) == 255).all()
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 12, 34, 56] + [0] * 762)
    gif = encode(palette, "GIF", transparency=1)  # index 1 (dark blue) is transparent
    assert (pixels(decode_image(gif)) == 255).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    """PIL's convert("RGB") clips 16-bit values above 255 to white; we scale by 1/257."""
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    image = Image.fromarray(levels * 257)
    assert image.mode == "I;16"
    decoded = pixels(decode_image(encode(image, "PNG")))
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], levels)


def test_sixteen_bit_rgb_png_keeps_its_colours():
    from demo_fixtures import png16_rgb

    rng = np.random.default_rng(1)
    levels = rng.integers(0, 256, (6, 5, 3)).astype(np.uint16)
    decoded = pixels(decode_image(png16_rgb(levels * 257)))
    np.testing.assert_array_equal(decoded, levels)


def test_thirty_two_bit_and_float_grayscale_become_8_bit():
    wide = Image.fromarray(np.arange(16, dtype=np.int32).reshape(4, 4) * 4000)  # mode "I"
    np.testing.assert_array_equal(
        pixels(to_rgb(wide))[..., 0], np.round(np.asarray(wide) / 257).astype(int)
    )
    narrow = Image.fromarray(np.arange(16, dtype=np.int32).reshape(4, 4))  # fits in 8 bits
    np.testing.assert_array_equal(pixels(to_rgb(narrow))[..., 1], np.asarray(narrow))
    floats = Image.fromarray(np.array([[-5.0, 12.4], [300.0, 99.0]], dtype=np.float32))
    np.testing.assert_array_equal(pixels(to_rgb(floats))[..., 2], [[0, 12], [255, 99]])


def test_cmyk_jpeg_becomes_the_rgb_pil_decodes():
    source = noise().convert("CMYK")
    data = encode(source, "JPEG", quality=95)
    reference = Image.open(io.BytesIO(data)).convert("RGB")
    decoded = decode_image(data)
    np.testing.assert_array_equal(pixels(decoded), pixels(reference))
    np.testing.assert_allclose(pixels(decoded), pixels(noise()), atol=60)  # still the picture


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_grayscale_bilevel_and_palette_images_become_rgb(mode):
    image = noise().convert(mode)
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(pixels(decoded), pixels(image))


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (10, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = pixels(decode_image(buffer.getvalue()))
    assert (decoded == [255, 0, 0]).all()


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),  # camera held rotated: pixels stored 90° off
        (8, Image.Transpose.ROTATE_270),
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
    ],
)
def test_exif_orientation_is_applied(orientation, stored_as):
    upright = noise(48, 20)
    stored = upright.transpose(stored_as)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, "PNG", exif=exif))
    assert decoded.size == upright.size
    np.testing.assert_array_equal(pixels(decoded), pixels(upright))


def test_a_one_pixel_image_is_a_valid_image():
    decoded = decode_image(encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    assert decoded.size == (1, 1)
    assert pixels(decoded)[0, 0].tolist() == [1, 2, 3]


# ----------------------------------------------------------------------------------------------
# What is refused, and how


def truncated_jpeg() -> bytes:
    data = encode(noise(400, 300), "JPEG", quality=90)
    return data[: len(data) // 3]


REFUSED = {
    "empty": (b"", "empty"),
    "text": (b"a shopping list, not a banknote\n", "not an image"),
    "html": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "not an image"),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    "truncated jpeg": (truncated_jpeg(), "corrupt or truncated"),
    "jpeg header only": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "corrupt"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_unusable_files_are_refused_with_a_reason(name):
    data, reason = REFUSED[name]
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30_000, 30_000),  # 900 MP: over twice PIL's limit, PIL raises on open
        (10_000, 9_000),  # 90 MP: over PIL's limit, PIL only warns; we make it an error
        (8_000, 7_000),  # 56 MP: under PIL's limit, over ours
    ],
)
def test_decompression_bombs_are_refused_from_the_header(width, height):
    from demo_fixtures import pixel_bomb_png

    assert width * height > MAX_PIXELS
    filters_before = list(warnings.filters)
    with pytest.raises(ImageRejected, match="decompression"):
        decode_image(pixel_bomb_png(width, height))
    assert warnings.filters == filters_before, "the warnings filter must not leak"


@pytest.mark.parametrize(("width", "height"), [(10_000, 9_000), (30_000, 30_000)])
def test_pils_own_bomb_guard_holds_even_when_our_limit_is_raised(width, height):
    """PIL warns above 89 MP and raises above 179 MP: a warning must refuse too, not pass."""
    from demo_fixtures import pixel_bomb_png

    with pytest.raises(ImageRejected, match="decompression"):
        decode_image(pixel_bomb_png(width, height), max_pixels=10**10)


def test_the_pixel_limit_is_a_parameter():
    data = encode(noise(100, 100), "PNG")
    assert decode_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageRejected, match="megapixels"):
        decode_image(data, max_pixels=9_999)


def test_read_upload_refuses_empty_and_oversized_files(tmp_path):
    path = tmp_path / "upload.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageRejected, match="empty"):
        read_upload(path)
    path.write_bytes(b"x" * 1000)
    assert read_upload(path, max_bytes=1000) == b"x" * 1000
    with pytest.raises(ImageRejected, match="upload limit"):
        read_upload(path, max_bytes=999)
    with pytest.raises(ImageRejected, match="could not be read"):
        read_upload(tmp_path / "missing.jpg")


def test_data_urls_decode_and_are_checked():
    png = encode(noise(5, 4), "PNG")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert decode_data_url(url) == png
    with pytest.raises(ImageRejected, match="upload limit"):
        decode_data_url(url, max_bytes=len(png) - 1)
    with pytest.raises(ImageRejected, match="malformed"):
        decode_data_url("data:image/png," + "abc")
    with pytest.raises(ImageRejected, match="base64"):
        decode_data_url("data:image/png;base64,***")
