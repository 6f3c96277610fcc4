"""Blocky characters and numerals drawn from rectangles, so the notes need no fonts."""

from __future__ import annotations

from train.synthetic.pen import Box, Color, Pen

# Blocky stand-ins for the characters, in glyph-box units (no fonts needed).
GLYPH_YUAN: tuple[Box, ...] = (  # 圆
    (0.0, 0.0, 1.0, 0.12),
    (0.0, 0.0, 0.13, 1.0),
    (0.87, 0.0, 1.0, 1.0),
    (0.0, 0.88, 1.0, 1.0),
    (0.3, 0.2, 0.7, 0.3),
    (0.25, 0.4, 0.75, 0.48),
    (0.25, 0.4, 0.34, 0.74),
    (0.66, 0.4, 0.75, 0.74),
    (0.46, 0.48, 0.55, 0.7),
    (0.3, 0.72, 0.45, 0.8),
    (0.55, 0.72, 0.7, 0.8),
)
GLYPH_YI: tuple[Box, ...] = (  # 壹
    (0.45, 0.0, 0.56, 0.22),
    (0.12, 0.08, 0.88, 0.16),
    (0.28, 0.2, 0.72, 0.26),
    (0.04, 0.3, 0.96, 0.37),
    (0.04, 0.3, 0.13, 0.46),
    (0.87, 0.3, 0.96, 0.46),
    (0.2, 0.44, 0.8, 0.5),
    (0.25, 0.55, 0.75, 0.61),
    (0.25, 0.55, 0.33, 0.74),
    (0.67, 0.55, 0.75, 0.74),
    (0.25, 0.68, 0.75, 0.74),
    (0.3, 0.78, 0.37, 0.88),
    (0.63, 0.78, 0.7, 0.88),
    (0.08, 0.9, 0.92, 0.98),
)
GLYPH_BAI: tuple[Box, ...] = (  # 佰
    (0.12, 0.0, 0.21, 1.0),
    (0.0, 0.28, 0.14, 0.38),
    (0.34, 0.04, 0.98, 0.13),
    (0.4, 0.26, 0.49, 0.98),
    (0.82, 0.26, 0.91, 0.98),
    (0.4, 0.26, 0.91, 0.34),
    (0.4, 0.58, 0.91, 0.65),
    (0.4, 0.89, 0.91, 0.98),
)
_GLYPH_SMALL: tuple[tuple[Box, ...], ...] = (  # 中国人民银行: generic blocks, tiny on the note
    ((0.42, 0.0, 0.58, 1.0), (0.1, 0.25, 0.9, 0.4), (0.1, 0.25, 0.25, 0.7), (0.75, 0.25, 0.9, 0.7)),
    ((0.0, 0.0, 1.0, 0.15), (0.0, 0.0, 0.15, 1.0), (0.85, 0.0, 1.0, 1.0), (0.0, 0.85, 1.0, 1.0)),
    ((0.4, 0.0, 0.6, 0.5), (0.1, 0.45, 0.45, 1.0), (0.55, 0.45, 0.9, 1.0)),
    ((0.1, 0.0, 0.9, 0.15), (0.1, 0.0, 0.25, 1.0), (0.1, 0.45, 0.9, 0.6), (0.55, 0.6, 0.95, 0.95)),
    ((0.0, 0.0, 0.3, 1.0), (0.45, 0.0, 1.0, 0.15), (0.45, 0.4, 1.0, 0.55), (0.6, 0.55, 0.75, 1.0)),
    (
        (0.0, 0.1, 0.35, 1.0),
        (0.45, 0.05, 1.0, 0.18),
        (0.45, 0.35, 1.0, 0.48),
        (0.7, 0.35, 0.85, 1.0),
    ),
)


def digit_one(pen: Pen, b: Box, fill: Color) -> None:
    pen.strokes(b, ((0.42, 0.0, 0.68, 1.0), (0.22, 0.88, 0.88, 1.0)), fill)
    flag = [(0.42, 0.0), (0.68, 0.0), (0.6, 0.2), (0.15, 0.32), (0.15, 0.2)]
    pen.poly([pen.within(b, x, y) for x, y in flag], fill)


def _digit_zero(pen: Pen, b: Box, fill: Color, paper: Color) -> None:
    u0, v0, u1, v1 = b
    w = u1 - u0
    pen.ellipse(b, fill=fill)
    pen.ellipse((u0 + 0.3 * w, v0 + 0.16 * (v1 - v0), u1 - 0.3 * w, v1 - 0.16 * (v1 - v0)), paper)


def _digit_two(pen: Pen, b: Box, fill: Color) -> None:
    pen.strokes(b, ((0.1, 0.0, 0.9, 0.17), (0.7, 0.0, 0.92, 0.45), (0.05, 0.83, 0.95, 1.0)), fill)
    diagonal = [(0.7, 0.38), (0.92, 0.45), (0.3, 0.86), (0.05, 0.86)]
    pen.poly([pen.within(b, x, y) for x, y in diagonal], fill)


def _digit_five(pen: Pen, b: Box, fill: Color) -> None:
    strokes = (
        (0.15, 0.0, 0.95, 0.16),
        (0.15, 0.0, 0.36, 0.52),
        (0.15, 0.4, 0.85, 0.55),
        (0.72, 0.45, 0.95, 0.92),
        (0.05, 0.84, 0.85, 1.0),
    )
    pen.strokes(b, strokes, fill)


def numeral(pen: Pen, text: str, b: Box, fill: Color) -> None:
    """A denomination such as "5", "20" or "100" across box ``b``; zeros are open rings.

    Unlike :func:`digits_100` the zeros' holes stay unpainted, so the numeral can sit on any
    background (a colour field, the watermark area, a landscape).
    """
    u0, v0, u1, v1 = b
    step = (u1 - u0) / len(text)
    for i, ch in enumerate(text):
        cell = (u0 + i * step, v0, u0 + (i + 0.9) * step, v1)
        if ch == "0":
            pen.ring(cell, fill, 0.28 * (cell[2] - cell[0]))
        elif ch == "1":
            digit_one(pen, cell, fill)
        elif ch == "2":
            _digit_two(pen, cell, fill)
        elif ch == "5":
            _digit_five(pen, cell, fill)
        else:
            raise ValueError(f"no glyph for digit {ch!r}: the notes use only 0, 1, 2 and 5")


def digits_100(pen: Pen, b: Box, fill: Color, paper: Color) -> None:
    u0, v0, u1, v1 = b
    w = (u1 - u0) / 3.0
    digit_one(pen, (u0, v0, u0 + w * 0.9, v1), fill)
    _digit_zero(pen, (u0 + w, v0, u0 + w * 1.95, v1), fill, paper)
    _digit_zero(pen, (u0 + 2 * w, v0, u0 + w * 2.95, v1), fill, paper)


def text_row(pen: Pen, u0: float, u1: float, v0: float, v1: float, fill: Color) -> None:
    step = (u1 - u0) / len(_GLYPH_SMALL)
    for i, glyph in enumerate(_GLYPH_SMALL):
        pen.strokes((u0 + i * step, v0, u0 + (i + 0.7) * step, v1), glyph, fill)
