"""``python -m train.synthetic.sheet``: a contact sheet of synthetic notes, to look at them.

Numbers say how well a model reads the notes; only looking says whether they look like notes.
One row per (set, class): the training classes of each series, then the near-OOD denominations.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from train.cli import parse_and_run
from train.synthetic.photo import IMAGE_SIZE
from train.synthetic.render import (
    CLASSES,
    NEAR_OOD_CLASSES,
    render_jpeg,
    render_near_ood_jpeg,
)


def contact_sheet(seed: int = 0, per_row: int = 8) -> Image.Image:
    """Rows of ``per_row`` photos: series 4 and 5 of each class, then each near-OOD class."""
    rows: list[tuple[str, list[bytes]]] = []
    for series in ("4", "5"):
        for c, cls in enumerate(CLASSES):
            blobs = [render_jpeg(seed, c, i, series) for i in range(per_row)]
            rows.append((f"series {series}: {cls} yuan", blobs))
    for c, cls in enumerate(NEAR_OOD_CLASSES):
        rows.append(
            (f"near-OOD: {cls} yuan", [render_near_ood_jpeg(seed, c, i) for i in range(per_row)])
        )
    w, h = IMAGE_SIZE
    label_h = 14
    sheet = Image.new("RGB", (per_row * w, len(rows) * (h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, blobs) in enumerate(rows):
        top = r * (h + label_h)
        draw.text((4, top + 1), label, fill=(0, 0, 0))
        for i, blob in enumerate(blobs):
            sheet.paste(Image.open(io.BytesIO(blob)).convert("RGB"), (i * w, top + label_h))
    return sheet


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.synthetic.sheet",
        description="Write a PNG contact sheet of synthetic notes (both series, near-OOD).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out", default="artifacts/synthetic_contact_sheet.png", help="PNG file to write"
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed (training uses 0)")
    p.add_argument("--per-row", type=int, default=8, help="photos per row")
    return p


def main(args: argparse.Namespace) -> int:
    from train.atomic import atomic_path

    if args.seed < 0 or args.per_row < 1:
        raise ValueError("--seed must be >= 0 and --per-row >= 1")
    out = Path(args.out)
    with atomic_path(out) as tmp:
        contact_sheet(args.seed, args.per_row).save(tmp, "PNG")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(parse_and_run(get_args_parser(), main))
