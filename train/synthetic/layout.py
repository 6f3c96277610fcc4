"""Draw any note face from its :class:`NoteDesign`: the layouts of the 4th and 5th series.

The 4th series' 1- and 100-yuan fronts keep their detailed drawings in
:mod:`train.synthetic.notes`; every other face (5th-series fronts and backs, 4th-series backs,
and the other denominations used as near-out-of-distribution notes) is drawn here from a few
parameters: inks, which motif, where the watermark area and the numerals sit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from train.synthetic.fields import guilloche, low_frequency_noise
from train.synthetic.glyphs import GLYPH_YI, GLYPH_YUAN, numeral, text_row
from train.synthetic.motifs import flower, portrait_front, profile_heads, scene
from train.synthetic.paper import NOTE_SIZE, margin, printed_paper, serial
from train.synthetic.pen import Box, Color, Pen


@dataclass(frozen=True)
class NoteDesign:
    """One face of one edition of a note, as far as a 32×32 network can see it."""

    series: int  # 4 (1980/1990 designs) or 5 (1999 onwards)
    value: str  # the denomination as printed: "1", "5", "10", "20", "50", "100"
    face: str  # "front" or "back"
    edition: str  # e.g. "1999", "2015"
    tint: Color  # paper colour under the print
    ink: Color  # darkest ink: portrait, numerals, text
    mid: Color  # the note's main colour as the eye sees it
    light: Color  # pale ink: faces, sky, the watermark area's tint
    motif: str  # front: "mao" or "heads2"/"heads3"; back: a scene of motifs.SCENES
    watermark: bool = True  # an unprinted pale area (left on fronts, right on backs)
    colour_shift: bool = False  # 2015 100 yuan / 2019-2020 notes: a gold-green central numeral
    thread: bool = False  # a windowed security thread / holographic stripe
    hue_shift: tuple[int, int] = (-10, 10)  # print/ageing hue jitter, PIL's 0..255 hue scale
    detailed: bool = False  # drawn by train.synthetic.notes instead of this module

    @property
    def name(self) -> str:
        return f"s{self.series}-{self.value}-{self.edition}-{self.face}"


_GOLD, _GREEN_SHIFT = (196, 160, 60), (70, 140, 90)


def _base(design: NoteDesign, rng: np.random.Generator) -> Image.Image:
    """Paper with a colour gradient (the 5th series' rainbow print) and the guilloche over it."""
    w, h = NOTE_SIZE
    lines = rng.uniform(50, 90)
    pattern = guilloche(h, w, rng, lines=lines, wave=rng.uniform(0.4, 1.4))
    img = printed_paper(NOTE_SIZE, design.tint, design.mid, pattern, rng.uniform(0.35, 0.75))
    # A smooth second tint across the note: real notes are never one flat colour.
    field = (low_frequency_noise(h, w, rng, int(rng.integers(2, 5))) + 1.0) / 2.0
    other = np.array(design.light, dtype=np.float32)
    arr = np.asarray(img, dtype=np.float32)
    mix = (rng.uniform(0.1, 0.45) * field)[..., None]
    return Image.fromarray((arr * (1.0 - mix) + other * mix).astype(np.uint8), "RGB")


def _watermark(pen: Pen, b: Box, design: NoteDesign, rng: np.random.Generator) -> None:
    """The pale unprinted area and the faint shape of its watermark (a head or a flower)."""
    pen.nudge()
    pale = tuple(min(255, int(c + 0.75 * (250 - c))) for c in design.light)
    pen.rect(b, (*pale, int(rng.uniform(200, 255))))
    u0, v0, u1, v1 = b
    cu, cv = (u0 + u1) / 2, v0 + 0.45 * (v1 - v0)
    ghost = (*design.light, int(rng.uniform(40, 120)))
    if design.value in ("50", "100") or design.series == 4:
        pen.ellipse((cu - 0.05, cv - 0.2, cu + 0.05, cv + 0.2), ghost)  # a portrait watermark
        pen.ellipse((cu - 0.08, cv + 0.15, cu + 0.08, v1), ghost)
    else:
        flower(pen, cu, cv, 0.04, ghost, ghost, 5)


def _numeral(pen: Pen, design: NoteDesign, b: Box, fill: Color) -> None:
    """The denomination in box ``b``, narrowed for short numbers so digits keep their shape."""
    u0, v0, u1, v1 = b
    width = (u1 - u0) * len(design.value) / 3.0
    pen.nudge()
    numeral(pen, design.value, (u0, v0, u0 + max(width, 0.05), v1), fill)


def _front_5(pen: Pen, design: NoteDesign, rng: np.random.Generator) -> None:
    """5th series front: watermark area left, flower, numerals, one portrait on the right."""
    ink, mid, light = design.ink, design.mid, design.light
    if design.watermark:
        _watermark(pen, (0.03, 0.05, 0.25, 0.8), design, rng)
    pen.nudge()  # the flower of this denomination, left of the portrait
    for _ in range(int(rng.integers(3, 6))):
        cu, cv = rng.uniform(0.25, 0.45), rng.uniform(0.3, 0.75)
        flower(pen, cu, cv, rng.uniform(0.025, 0.05), (*mid, 170), (*ink, 200), 5)
    pen.nudge()
    text_row(pen, 0.22, 0.52, 0.07, 0.15, ink)  # 中国人民银行
    pen.nudge()
    pen.strokes((0.3, 0.2, 0.36, 0.33), GLYPH_YI, (*ink, 220))
    pen.strokes((0.38, 0.2, 0.44, 0.33), GLYPH_YUAN, (*ink, 220))
    # Large numeral lower left: the first thing a 32×32 view shows besides the portrait.
    _numeral(pen, design, (0.04, 0.66, 0.27, 0.92), (*ink, int(rng.uniform(180, 255))))
    if design.edition in ("1999", "2005"):
        _numeral(pen, design, (0.05, 0.06, 0.14, 0.2), ink)
    if design.colour_shift:
        shift = tuple(
            int(a + rng.uniform(0, 1) * (b - a)) for a, b in zip(_GOLD, _GREEN_SHIFT, strict=True)
        )
        _numeral(pen, design, (0.3, 0.45, 0.54, 0.78), (*shift, 240))
    if design.thread:
        pen.nudge()
        x = rng.uniform(0.5, 0.56)
        silver = (*(int(c * 0.5 + 110) for c in mid), 220)
        pen.rect((x, 0.0, x + rng.uniform(0.01, 0.03), 1.0), silver)
    portrait_front(pen, (0.56, 0.05, 0.9, 0.97), ink, mid, light, rng)
    pen.nudge()  # the right strip: a small numeral and a band of pattern
    pen.rect((0.9, 0.04, 0.97, 0.96), (*mid, int(rng.uniform(60, 180))))
    _numeral(pen, design, (0.9, 0.08, 0.97, 0.2), ink)
    serial(pen, rng, 0.05, 0.9 if design.edition < "2015" else 0.6, (*ink, 255))


def _front_4(pen: Pen, design: NoteDesign, rng: np.random.Generator) -> None:
    """4th series front (other than 1 and 100 yuan): emblem, numerals, heads on the right."""
    ink, mid, light = design.ink, design.mid, design.light
    if design.watermark:
        _watermark(pen, (0.03, 0.05, 0.22, 0.7), design, rng)
    pen.nudge()
    pen.ellipse((0.23, 0.1, 0.29, 0.32), ink)  # the national emblem
    text_row(pen, 0.3, 0.55, 0.07, 0.15, ink)
    pen.nudge()
    pen.strokes((0.3, 0.35, 0.37, 0.55), GLYPH_YI, ink)
    pen.strokes((0.39, 0.35, 0.46, 0.55), GLYPH_YUAN, ink)
    heads = 3 if design.motif == "heads3" else 2
    profile_heads(pen, (0.5, 0.06, 0.88, 0.8), heads, ink, mid, light, rng)
    pen.nudge()
    pen.rect((0.04, 0.78, 0.96, 0.92), (*ink, int(rng.uniform(160, 240))))  # dark bottom band
    _numeral(pen, design, (0.06, 0.62, 0.24, 0.8), ink)
    _numeral(pen, design, (0.8, 0.1, 0.96, 0.3), ink)
    serial(pen, rng, 0.55, 0.82, light)


def _back(pen: Pen, design: NoteDesign, rng: np.random.Generator) -> None:
    """A back: the landscape or building, numerals in the corners, the watermark area opposite."""
    ink, mid, light = design.ink, design.mid, design.light
    right = 0.76 if design.watermark else 0.92
    scene(pen, design.motif, (0.2, 0.14, right, 0.84), ink, mid, light, rng)
    if design.watermark:
        _watermark(pen, (0.77, 0.05, 0.97, 0.8), design, rng)
    pen.nudge()
    text_row(pen, 0.3, 0.6, 0.05, 0.12, ink)
    _numeral(pen, design, (0.04, 0.08, 0.26, 0.34), ink)  # the big numeral, upper left
    corner = (0.6, 0.84, 0.76, 0.97) if design.series == 5 else (0.78, 0.7, 0.95, 0.92)
    _numeral(pen, design, corner, (*ink, 230))
    pen.nudge()
    pen.rect((0.04, 0.4, 0.19, 0.9), (*mid, int(rng.uniform(90, 200))))  # the left ornament
    pen.hatch((0.04, 0.4, 0.19, 0.9), (*ink, 90), spacing=0.012)


def draw_design(design: NoteDesign, rng: np.random.Generator) -> Image.Image:
    """The unphotographed note face of ``design`` (NOTE_SIZE, RGB), varied by ``rng``."""
    img = _base(design, rng)
    pen = Pen(img, rng)
    face = _back if design.face == "back" else _front_5 if design.series == 5 else _front_4
    face(pen, design, rng)
    margin(pen, rng, (*(min(255, c + 30) for c in design.tint),))
    return img
