"""The pictures on a note (portraits, flowers, landscapes), as shapes a 32×32 network can see.

Each motif draws into a box in note units with the note's own inks, so one function serves every
denomination: what tells notes apart at 32×32 is where the dark masses sit and their colour, not
the likeness.
"""

from __future__ import annotations

import itertools

import numpy as np

from train.synthetic.pen import Box, Color, Pen


def _lerp(a: Color, b: Color, t: float) -> Color:
    return tuple(int(x + t * (y - x)) for x, y in zip(a[:3], b[:3], strict=True))


def portrait_front(
    pen: Pen, b: Box, ink: Color, mid: Color, light: Color, rng: np.random.Generator
) -> None:
    """One engraved head and shoulders, turned slightly left (the 5th series' Mao Zedong).

    Dark suit filling the bottom of the box, a light face under a dark swept-back hairline, the
    whole overlaid with vertical engraving lines.
    """
    u0, v0, u1, v1 = b
    w, h = u1 - u0, v1 - v0
    cu = u0 + w * rng.uniform(0.45, 0.55)
    pen.nudge()
    pen.rect(b, (*mid, int(rng.uniform(60, 150))))  # the engraved background behind the head
    shoulders = [
        (u0 - 0.02 * w, v1),
        (u0 + 0.05 * w, v0 + 0.78 * h),
        (cu - 0.2 * w, v0 + 0.66 * h),
        (cu + 0.2 * w, v0 + 0.66 * h),
        (u1 - 0.02 * w, v0 + 0.8 * h),
        (u1 + 0.02 * w, v1),
    ]
    pen.poly(shoulders, (*ink, int(rng.uniform(200, 255))))
    face = _lerp(light, mid, rng.uniform(0.0, 0.45))
    pen.poly(
        [(cu - 0.1 * w, v0 + 0.6 * h), (cu + 0.1 * w, v0 + 0.6 * h), (cu, v0 + 0.84 * h)],
        face,
    )  # collar opening
    pen.ellipse((cu - 0.075 * w, v0 + 0.5 * h, cu + 0.075 * w, v0 + 0.72 * h), face)  # neck
    pen.ellipse((cu - 0.2 * w, v0 + 0.1 * h, cu + 0.2 * w, v0 + 0.64 * h), face, (*ink, 200))
    pen.ellipse((cu - 0.24 * w, v0 + 0.28 * h, cu - 0.16 * w, v0 + 0.44 * h), face)  # ears
    pen.ellipse((cu + 0.16 * w, v0 + 0.28 * h, cu + 0.24 * w, v0 + 0.44 * h), face)
    hair = [
        (cu - 0.21 * w, v0 + 0.3 * h),
        (cu - 0.2 * w, v0 + 0.1 * h),
        (cu, v0 + 0.03 * h),
        (cu + 0.2 * w, v0 + 0.1 * h),
        (cu + 0.21 * w, v0 + 0.3 * h),
        (cu + 0.12 * w, v0 + 0.17 * h),
        (cu - 0.12 * w, v0 + 0.17 * h),
    ]
    pen.poly(hair, (*ink, int(rng.uniform(190, 255))))
    for du in (-0.08, 0.08):  # eyes and brows: the darkest marks on the face
        pen.rect(
            (cu + du * w - 0.035 * w, v0 + 0.3 * h, cu + du * w + 0.035 * w, v0 + 0.33 * h), ink
        )
    pen.rect((cu - 0.05 * w, v0 + 0.5 * h, cu + 0.05 * w, v0 + 0.52 * h), (*mid, 220))  # mouth
    pen.hatch(b, (*ink, int(rng.uniform(40, 110))), spacing=0.01)


def profile_heads(
    pen: Pen, b: Box, n: int, ink: Color, mid: Color, light: Color, rng: np.random.Generator
) -> None:
    """``n`` overlapping heads in profile facing left, the rightmost in front (4th series)."""
    u0, v0, u1, v1 = b
    w, h = u1 - u0, v1 - v0
    pen.nudge()
    pen.rect(b, (*mid, int(rng.uniform(80, 200))))
    pen.hatch(b, (*ink, int(rng.uniform(40, 100))))
    step = w / (n + 0.6)
    for k in range(n):
        pen.nudge()
        ru, rv = 0.55 * step * (1.0 + 0.15 * (k == n - 1)), 0.3 * h
        cu, cv = u0 + (k + 0.8) * step, v0 + 0.38 * h
        face = _lerp(light, mid, rng.uniform(0.1, 0.6))
        hair = (*_lerp(ink, mid, rng.uniform(0.0, 0.5)), int(rng.uniform(160, 250)))
        body = [
            (cu - ru, cv + 0.6 * rv),
            (cu + ru, cv + 0.5 * rv),
            (cu + 1.5 * ru, v1),
            (cu - 1.3 * ru, v1),
        ]
        pen.poly(body, (*_lerp(ink, mid, rng.uniform(0.0, 0.7)), 230))
        pen.ellipse((cu - 0.85 * ru, cv - rv, cu + ru, cv + 0.95 * rv), face, (*ink, 180))
        pen.ellipse((cu - 0.2 * ru, cv - 1.1 * rv, cu + 1.1 * ru, cv + 0.3 * rv), hair)
        nose = [
            (cu - 0.8 * ru, cv - 0.1 * rv),
            (cu - 1.15 * ru, cv + 0.15 * rv),
            (cu - 0.8 * ru, cv + 0.3 * rv),
        ]
        pen.poly(nose, face)


def flower(pen: Pen, cu: float, cv: float, r: float, petal: Color, core: Color, n: int) -> None:
    """A flower of ``n`` petals around a core: the 5th series' flowers and watermarks."""
    for k in range(n):
        a = 2.0 * np.pi * k / n
        pu, pv = cu + 0.6 * r * np.cos(a), cv + 1.2 * r * np.sin(a)
        pen.ellipse((pu - 0.45 * r, pv - 0.9 * r, pu + 0.45 * r, pv + 0.9 * r), petal)
    pen.ellipse((cu - 0.3 * r, cv - 0.6 * r, cu + 0.3 * r, cv + 0.6 * r), core)


SCENES = ("great_hall", "west_lake", "mountain", "gorges", "karst", "potala", "great_wall", "falls")


def scene(
    pen: Pen,
    kind: str,
    b: Box,
    ink: Color,
    mid: Color,
    light: Color,
    rng: np.random.Generator,
) -> None:
    """A landscape or building on a note's back, named by ``kind`` (one of :data:`SCENES`)."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}: choose one of {', '.join(SCENES)}")
    u0, v0, u1, v1 = b
    w, h = u1 - u0, v1 - v0
    pen.nudge()
    pen.rect(b, (*light, int(rng.uniform(60, 170))))  # sky
    horizon = v0 + h * rng.uniform(0.55, 0.7)
    water = kind in ("west_lake", "gorges", "karst", "falls")
    if kind in ("mountain", "gorges", "karst", "potala", "great_wall", "falls"):
        pen.nudge()
        peaks = int(rng.integers(3, 7)) if kind != "karst" else int(rng.integers(5, 9))
        xs = np.sort(rng.uniform(u0, u1, size=peaks))
        pts = [(u0, horizon)]
        for x in xs:
            top = v0 + h * rng.uniform(0.08, 0.45)
            half = w * (0.03 if kind == "karst" else rng.uniform(0.06, 0.14))
            pts += [(x - half, horizon - 0.25 * (horizon - top)), (x, top)]
            pts += [(x + half, horizon - 0.25 * (horizon - top))]
        pts += [
            (u1, horizon),
            (u1, v1 if not water else horizon),
            (u0, v1 if not water else horizon),
        ]
        pen.poly(pts, (*mid, int(rng.uniform(170, 250))))
        pen.hatch((u0, v0 + 0.1 * h, u1, horizon), (*ink, int(rng.uniform(60, 140))), 0.009)
    if water:
        pen.nudge()
        pen.rect((u0, horizon, u1, v1), (*_lerp(light, mid, 0.4), 200))
        for k in range(int(rng.integers(5, 10))):
            vv = horizon + (k + 0.5) * (v1 - horizon) / 9.0
            pen.rect((u0, vv, u1, vv + 0.008), (*ink, 120))
    if kind == "great_hall":  # long colonnaded building with a raised centre
        pen.nudge()
        top = v0 + h * rng.uniform(0.3, 0.4)
        pen.rect((u0 + 0.05 * w, top + 0.08 * h, u1 - 0.05 * w, v0 + 0.82 * h), (*mid, 240))
        pen.rect((u0 + 0.3 * w, top, u1 - 0.3 * w, top + 0.1 * h), (*ink, 230))
        for k in range(14):
            x = u0 + 0.08 * w + k * 0.062 * w
            pen.rect((x, top + 0.2 * h, x + 0.018 * w, v0 + 0.8 * h), (*ink, 220))
        pen.rect((u0, v0 + 0.82 * h, u1, v1), (*_lerp(mid, light, 0.5), 220))  # the square
    elif kind == "west_lake":  # three small stone pagodas standing in the lake, a pavilion
        for k in range(3):
            pen.nudge()
            x = u0 + w * (0.2 + 0.3 * k + rng.uniform(-0.04, 0.04))
            pen.poly(
                [
                    (x - 0.02 * w, horizon + 0.15 * h),
                    (x + 0.02 * w, horizon + 0.15 * h),
                    (x, horizon - 0.25 * h),
                ],
                (*ink, 240),
            )
            pen.ellipse((x - 0.035 * w, horizon - 0.12 * h, x + 0.035 * w, horizon), (*ink, 240))
        pen.rect((u0, horizon - 0.08 * h, u1, horizon), (*mid, 200))  # far shore
    elif kind == "potala":  # white and dark tiers stacked on a hill
        pen.nudge()
        for k in range(4):
            top = horizon - (k + 1) * 0.12 * h
            half = (0.35 - 0.06 * k) * w
            color = light if k % 2 == 0 else ink
            pen.rect((u0 + 0.5 * w - half, top, u0 + 0.5 * w + half, top + 0.12 * h), (*color, 230))
    elif kind == "great_wall":  # a crenellated band snaking along the ridge, with towers
        pen.nudge()
        pts = [
            (u0 + w * t, horizon - h * (0.15 + 0.2 * np.sin(6.0 * t + rng.uniform(0, 6))))
            for t in np.linspace(0, 1, 9)
        ]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            pen.poly([(x0, y0), (x1, y1), (x1, y1 + 0.07 * h), (x0, y0 + 0.07 * h)], (*ink, 240))
            pen.rect((x1 - 0.02 * w, y1 - 0.08 * h, x1 + 0.02 * w, y1 + 0.04 * h), (*ink, 240))
    elif kind == "falls":  # a bright fall of water between dark banks
        pen.nudge()
        x = u0 + w * rng.uniform(0.35, 0.65)
        pen.rect((x - 0.12 * w, v0 + 0.2 * h, x + 0.12 * w, v1), (*light, 230))
    pen.hatch(b, (*ink, int(rng.uniform(20, 70))), spacing=0.012)
