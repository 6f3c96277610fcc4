"""Which notes exist: every face and edition the generator draws, with its inks and motif.

Colours follow the notes' main colours (People's Bank of China descriptions): 5th series 1 yuan
olive/yellow-green, 5 purple, 10 blue, 20 brown, 50 green, 100 red; 4th series 1 yuan
red-brown/pink, 5 brown, 10 blue-black, 50 grey-green on yellowish paper, 100 blue-grey. Backs:
5th series 1 West Lake, 5 Mount Tai, 10 Three Gorges, 20 Guilin, 50 Potala Palace, 100 Great
Hall of the People; 4th series 1 Great Wall, 5 Yangtze gorges, 10 Everest, 50 Hukou falls,
100 Jinggang Mountains.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from train.synthetic.layout import NoteDesign

SERIES = ("4", "5", "all")  # what --series accepts
FRONT_SHARE = 0.7  # fronts are what people photograph most; backs still appear often
# With both series, today's notes (the 5th series, the ones in circulation) are two draws in three:
# a user's photo is far more likely to show one, and the 4th series keeps enough for the course
# photos (README, "The synthetic set": unseen 5th-series accuracy 97.3% -> 99.0% on seed 1).
TODAY_SHARE = 2 / 3

_INKS: dict[tuple[int, str], tuple[tuple[int, int, int], ...]] = {
    # (series, value): (tint, ink, mid, light)
    (5, "1"): ((198, 206, 142), (52, 68, 28), (118, 134, 62), (226, 230, 186)),
    (5, "5"): ((204, 176, 214), (74, 36, 96), (142, 96, 166), (232, 214, 238)),
    (5, "10"): ((180, 200, 228), (28, 46, 100), (80, 110, 170), (220, 230, 244)),
    (5, "20"): ((216, 194, 164), (90, 56, 32), (158, 116, 80), (238, 224, 204)),
    (5, "50"): ((166, 210, 182), (24, 78, 54), (70, 142, 104), (212, 236, 220)),
    (5, "100"): ((234, 156, 164), (140, 18, 40), (202, 70, 92), (246, 212, 214)),
    (4, "1"): ((226, 176, 160), (110, 36, 36), (170, 92, 86), (236, 206, 196)),
    (4, "5"): ((214, 190, 152), (92, 56, 30), (160, 118, 76), (234, 218, 190)),
    (4, "10"): ((176, 186, 208), (24, 30, 54), (70, 84, 120), (214, 220, 232)),
    (4, "50"): ((218, 206, 176), (46, 64, 54), (110, 126, 108), (236, 224, 208)),
    (4, "100"): ((190, 196, 214), (36, 48, 66), (100, 114, 146), (226, 228, 236)),
}
_BACKS = {
    (5, "1"): "west_lake",
    (5, "5"): "mountain",
    (5, "10"): "gorges",
    (5, "20"): "karst",
    (5, "50"): "potala",
    (5, "100"): "great_hall",
    (4, "1"): "great_wall",
    (4, "5"): "gorges",
    (4, "10"): "mountain",
    (4, "50"): "falls",
    (4, "100"): "mountain",
}
_EDITIONS = {
    (5, "1"): ("1999", "2019"),
    (5, "5"): ("1999", "2005", "2020"),
    (5, "10"): ("1999", "2005", "2019"),
    (5, "20"): ("1999", "2005", "2019"),
    (5, "50"): ("1999", "2005", "2019"),
    (5, "100"): ("1999", "2005", "2015"),  # the 2020 printings carry the 2015 design
    (4, "1"): ("1980", "1990", "1996"),
    (4, "5"): ("1980",),
    (4, "10"): ("1980",),
    (4, "50"): ("1980", "1990"),
    (4, "100"): ("1980", "1990"),
}
# The 4th series' 1- and 100-yuan fronts are the course photos: their detailed drawings in
# train.synthetic.notes keep the hue jitter they were tuned with.
_HUE = {(4, "1"): (-12, 14), (4, "100"): (-25, 25)}


def _designs(series: int, value: str) -> tuple[NoteDesign, ...]:
    tint, ink, mid, light = _INKS[(series, value)]
    out = []
    for edition in _EDITIONS[(series, value)]:
        late = edition >= "2015"
        front = NoteDesign(
            series=series,
            value=value,
            face="front",
            edition=edition,
            tint=tint,
            ink=ink,
            mid=mid,
            light=light,
            motif="mao" if series == 5 else ("heads3" if value == "50" else "heads2"),
            watermark=series == 5 or value not in ("1",),
            colour_shift=series == 5 and late and value != "1",
            thread=series == 5 and value not in ("1",),
            hue_shift=_HUE.get((series, value), (-10, 10)),
            detailed=series == 4 and value in ("1", "100"),
        )
        back = replace(front, face="back", motif=_BACKS[(series, value)], detailed=False)
        out += [front, back]
    return tuple(out)


def designs_for(value: str, series: str) -> tuple[NoteDesign, ...]:
    """Every face and edition of denomination ``value`` in ``series`` ("4", "5" or "all")."""
    if series not in SERIES:
        raise ValueError(f"series must be one of {', '.join(SERIES)}, got {series!r}")
    wanted = (4, 5) if series == "all" else (int(series),)
    found = tuple(d for s in wanted if (s, value) in _INKS for d in _designs(s, value))
    if not found:
        raise ValueError(f"no {value}-yuan note in series {series}: the 4th series has no 20")
    return found


def choose_design(value: str, series: str, rng: np.random.Generator) -> NoteDesign:
    """A face of a ``value`` note: series by TODAY_SHARE, face by FRONT_SHARE, any edition."""
    options = designs_for(value, series)
    present = {d.series for d in options}
    pick_series = (5 if rng.random() < TODAY_SHARE else 4) if len(present) == 2 else min(present)
    face = "front" if rng.random() < FRONT_SHARE else "back"
    pool = [d for d in options if d.series == pick_series and d.face == face]
    return pool[int(rng.integers(len(pool)))]
