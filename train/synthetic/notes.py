"""The 1-yuan and 100-yuan note designs, drawn from scratch because photos cannot ship.

Each drawing imitates the layout a 32×32 LeNet can see of the 4th-series notes (1 yuan:
pink/red-brown, two portraits on the right, dark corner numerals; 100 yuan: blue-grey, four grey
profiles, pale watermark on the left, dark band at the bottom).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from train.synthetic.fields import guilloche
from train.synthetic.glyphs import (
    GLYPH_BAI,
    GLYPH_YI,
    GLYPH_YUAN,
    digit_one,
    digits_100,
    text_row,
)
from train.synthetic.paper import NOTE_SIZE, margin, printed_paper, serial
from train.synthetic.pen import Pen


def draw_note_1(rng: np.random.Generator) -> Image.Image:
    """The 4th-series 1-yuan note's layout, in its canonical pink/red-brown colours."""
    w, h = NOTE_SIZE
    paper, dark, mid = (230, 176, 158), (108, 36, 36), (168, 92, 86)
    # Engraved faces print only a little lighter than the block around them.
    k = rng.uniform(0.45, 0.9)
    light_face = tuple(int(m + k * (f - m)) for m, f in zip(mid, (222, 176, 164), strict=True))
    pattern = guilloche(h, w, rng, lines=rng.uniform(55, 80), wave=rng.uniform(0.6, 1.4))
    img = printed_paper(NOTE_SIZE, paper, mid, pattern, rng.uniform(0.45, 0.75))
    pen = Pen(img, rng)

    # Central floral area: paler, with pastel flowers.
    pen.nudge()
    pen.rect((0.2, 0.18, 0.54, 0.72), (232, 200, 180, int(rng.uniform(0, 110))))
    petals = ((150, 172, 206), (170, 196, 140), (226, 150, 172), (222, 204, 140), (190, 160, 210))
    for _ in range(48):
        cu, cv = rng.uniform(0.2, 0.54), rng.uniform(0.18, 0.72)
        r = rng.uniform(0.008, 0.022)
        color = petals[int(rng.integers(len(petals)))]
        pen.ellipse((cu - r, cv - 2.1 * r, cu + r, cv + 2.1 * r), (*color, 150), (*dark, 150))
    # Emblem top-left and flower emblem under it.
    pen.nudge()
    pen.ellipse((0.075, 0.13, 0.15, 0.4), dark)
    pen.ellipse((0.088, 0.17, 0.137, 0.33), (*mid, 255))
    for k in range(5):
        pen.ellipse((0.1 + 0.01 * k - 0.004, 0.19, 0.1 + 0.01 * k + 0.004, 0.21), (232, 200, 120))
    pen.rect((0.09, 0.27, 0.135, 0.32), (232, 200, 150))
    pen.poly([(0.11, 0.48), (0.14, 0.55), (0.11, 0.62), (0.08, 0.55)], (150, 160, 210, 220))
    pen.poly([(0.11, 0.51), (0.125, 0.55), (0.11, 0.59), (0.095, 0.55)], (220, 120, 150, 230))
    # "中国人民银行" top row and the large "壹圆".
    pen.nudge()
    text_row(pen, 0.19, 0.5, 0.07, 0.15, dark)
    pen.nudge()
    pen.strokes((0.25, 0.33, 0.33, 0.55), GLYPH_YI, dark)
    pen.nudge()
    pen.strokes((0.36, 0.33, 0.44, 0.55), GLYPH_YUAN, dark)
    # Portraits: engraved mid-dark block on the right with two women facing left.
    pen.nudge()
    pen.rect((0.52, 0.06, 0.89, 0.94), (*mid, int(rng.uniform(190, 250))))
    pen.hatch((0.52, 0.06, 0.89, 0.94), (*dark, int(rng.uniform(80, 140))))
    pen.nudge()
    headdress = (*light_face, int(rng.uniform(80, 180)))
    pen.poly([(0.54, 0.3), (0.56, 0.08), (0.66, 0.07), (0.68, 0.32), (0.55, 0.36)], headdress)
    pen.hatch((0.54, 0.08, 0.68, 0.34), (*dark, 120), spacing=0.016)
    clothes = (*mid, int(rng.uniform(120, 230)))
    pen.poly([(0.53, 0.72), (0.7, 0.66), (0.72, 0.94), (0.52, 0.94)], clothes)
    pen.ellipse((0.535, 0.3, 0.615, 0.62), light_face)  # left woman's face
    pen.poly([(0.56, 0.58), (0.61, 0.58), (0.62, 0.74), (0.55, 0.74)], light_face)  # neck
    pen.nudge()
    pen.ellipse((0.7, 0.12, 0.86, 0.64), (*dark, int(rng.uniform(150, 240))))  # hair and bun
    pen.poly([(0.64, 0.16), (0.72, 0.1), (0.76, 0.3), (0.66, 0.34)], (*dark, 200))
    pen.ellipse((0.625, 0.32, 0.71, 0.64), light_face)  # right woman's face
    pen.poly([(0.66, 0.6), (0.72, 0.6), (0.74, 0.78), (0.66, 0.78)], light_face)  # neck
    pen.poly([(0.64, 0.78), (0.84, 0.7), (0.88, 0.94), (0.62, 0.94)], (*dark, 160))  # clothes
    pen.ellipse((0.655, 0.56, 0.675, 0.64), outline=dark)  # earrings
    pen.ellipse((0.735, 0.55, 0.755, 0.63), outline=dark)
    pen.hatch((0.53, 0.3, 0.74, 0.94), (*mid, 90), spacing=0.011)
    # Right strip with the small "1", bottom-left band and bottom-right box with "1".
    pen.nudge()
    pen.rect((0.89, 0.05, 0.97, 0.95), (*paper, int(rng.uniform(60, 160))))
    digit_one(pen, (0.91, 0.12, 0.95, 0.26), dark)
    pen.nudge()
    pen.rect((0.05, 0.72, 0.5, 0.86), dark)
    for k in range(4):
        cu = 0.2 + 0.085 * k
        pen.poly([(cu, 0.735), (cu + 0.03, 0.79), (cu, 0.845), (cu - 0.03, 0.79)], (*mid, 140))
    pen.rect((0.07, 0.7, 0.15, 0.88), (*mid, 255))
    digit_one(pen, (0.085, 0.71, 0.135, 0.87), dark)
    pen.nudge()
    pen.rect((0.75, 0.7, 0.96, 0.9), dark)
    pen.poly([(0.855, 0.715), (0.94, 0.8), (0.855, 0.885), (0.77, 0.8)], (*mid, 255))
    digit_one(pen, (0.835, 0.73, 0.875, 0.87), dark)
    serial(pen, rng, 0.52, 0.74, (150, 40, 40))
    margin(pen, rng, (242, 218, 208))
    return img


def draw_note_100(rng: np.random.Generator) -> Image.Image:
    """The 4th-series 100-yuan note's layout, in its canonical blue-grey colours."""
    w, h = NOTE_SIZE
    paper, dark, mid = (190, 196, 214), (36, 48, 66), (100, 114, 146)
    face, shade = (204, 202, 176), (126, 128, 108)  # the profiles print olive-grey
    pattern = guilloche(h, w, rng, lines=rng.uniform(60, 90), wave=rng.uniform(0.3, 1.0))
    img = printed_paper(NOTE_SIZE, paper, mid, pattern, rng.uniform(0.4, 0.8))
    pen = Pen(img, rng)

    # Pale watermark area on the left and pastel rosettes behind the portraits.
    pen.nudge()
    pen.rect((0.03, 0.04, 0.25, 0.76), (238, 234, 216, int(rng.uniform(190, 250))))
    pen.nudge()
    panel = (int(rng.uniform(60, 120)), int(rng.uniform(110, 160)), int(rng.uniform(160, 200)))
    pen.rect((0.73, 0.04, 0.97, 0.8), (*panel, int(rng.uniform(80, 220))))  # blue right panel
    for _ in range(14):
        cu, cv = rng.uniform(0.26, 0.74), rng.uniform(0.08, 0.75)
        r = rng.uniform(0.02, 0.045)
        color = ((214, 168, 196), (168, 200, 220), (200, 186, 226))[int(rng.integers(3))]
        pen.ellipse((cu - r, cv - 2.1 * r, cu + r, cv + 2.1 * r), (*color, 110))
    pen.nudge()
    text_row(pen, 0.06, 0.33, 0.06, 0.14, dark)
    # Four grey profiles facing left, the rightmost largest and in front.
    pen.nudge()
    pen.rect((0.27, 0.12, 0.72, 0.74), (*shade, int(rng.uniform(120, 230))))
    pen.hatch((0.27, 0.12, 0.72, 0.74), (*dark, int(rng.uniform(30, 90))))
    face = tuple(int(c * rng.uniform(0.8, 1.05)) for c in face)
    back = (104, 108, 96, int(rng.uniform(100, 220)))  # the shaded back of each head
    heads = ((0.335, 0.42, 0.055, 0.24), (0.415, 0.4, 0.055, 0.25), (0.5, 0.41, 0.056, 0.25))
    for cu, cv, ru, rv in (*heads, (0.605, 0.37, 0.07, 0.29)):
        pen.nudge()
        pen.poly(
            [
                (cu - ru, cv + 0.5 * rv),
                (cu + ru, cv + 0.4 * rv),
                (cu + 1.6 * ru, 0.76),
                (cu - 1.4 * ru, 0.76),
            ],
            back[:3],
        )  # neck and coat
        pen.poly(
            [(cu - 0.2 * ru, cv + 0.9 * rv), (cu + 0.3 * ru, 0.76), (cu - 1.1 * ru, 0.76)],
            (*face, 255),
        )  # collar
        pen.ellipse((cu - 0.85 * ru, cv - rv, cu + ru, cv + rv * 0.95), (*face, 255), back[:3])
        pen.ellipse((cu + 0.1 * ru, cv - rv, cu + ru, cv + 0.2 * rv), back)  # hair
        pen.poly(
            [
                (cu - 0.8 * ru, cv - 0.1 * rv),
                (cu - 1.15 * ru, cv + 0.15 * rv),
                (cu - 0.8 * ru, cv + 0.3 * rv),
            ],
            (*face, 255),
        )  # nose
        pen.ellipse((cu + 0.2 * ru, cv - 0.1 * rv, cu + 0.45 * ru, cv + 0.25 * rv), (*shade, 255))
    pen.hatch((0.28, 0.14, 0.7, 0.76), (*shade, 70), spacing=0.011)
    # Right panel: big "100", ornament, serial number and dots.
    pen.nudge()
    digits_100(pen, (0.765, 0.09, 0.945, 0.33), dark, paper)
    pen.nudge()
    lace = (*dark, int(rng.uniform(120, 230)))  # the dense ornament under the numeral
    for cu, cv in ((0.8, 0.4), (0.86, 0.37), (0.92, 0.4), (0.83, 0.47), (0.89, 0.47), (0.86, 0.53)):
        pen.poly([(cu, cv - 0.05), (cu + 0.025, cv), (cu, cv + 0.05), (cu - 0.025, cv)], lace)
    serial(pen, rng, 0.76, 0.56, (40, 40, 60))
    for k in range(5):
        pen.ellipse((0.8 + 0.025 * k, 0.66, 0.81 + 0.025 * k, 0.685), dark)
    # Bottom: "100" on the left, dark band, and the dark plaque carrying "壹佰圆".
    pen.nudge()
    digits_100(pen, (0.09, 0.64, 0.24, 0.79), dark, (*paper, 255))
    pen.nudge()
    pen.rect((0.03, 0.79, 0.97, 0.9), (*dark, int(rng.uniform(170, 240))))
    pen.poly([(0.42, 0.81), (0.47, 0.845), (0.42, 0.88), (0.37, 0.845)], (*mid, 255))
    pen.nudge()
    pen.ellipse((0.57, 0.62, 0.86, 0.91), dark)
    for k, glyph in enumerate((GLYPH_YI, GLYPH_BAI, GLYPH_YUAN)):
        pen.strokes((0.625 + 0.07 * k, 0.68, 0.675 + 0.07 * k, 0.84), glyph, (214, 218, 222))
    pen.rect((0.0, 0.04, 0.03, 0.96), (*mid, 160))
    pen.rect((0.97, 0.04, 1.0, 0.96), (*mid, 160))
    margin(pen, rng, (228, 230, 234))
    return img


DRAWERS = {"1": draw_note_1, "100": draw_note_100}
