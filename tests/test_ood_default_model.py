"""Issue 9's "unknown" targets on the default model (``python -m train`` with no flags).

The ``default_checkpoint`` fixture (tests/conftest.py) trains it once per session; here its stored
OOD scorer is measured by ``train.ood``'s own study on sets training never saw: far-OOD kinds
from the evaluation seed with photos from matplotlib and gradio (training's photos come from
scikit-image), near-OOD 5/10/20/50-yuan notes from the evaluation seed, and the 200 course
photos. Floors are issue 9's targets; per-kind floors sit below the figures measured on three
training seeds (README, ``python -m train.ood``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bnfold.checkpoint import load_checkpoint
from train.ood.fit import DEFAULT_METHOD
from train.ood.scorer import OODScorer, WithOOD
from train.ood.sets import bundled_photos
from train.ood.study import StudyConfig, run_study
from train.preprocess import normalize, to_uint8_tensor

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

FAR_AUROC, FAR_FLAGGED, NEAR_AUROC = 0.99, 0.95, 0.90
COURSE_FALSE_REJECT, COURSE_ACCURACY_ACCEPTED = 0.02, 0.99
# Per far kind, share flagged at the stored threshold: below the lowest of three seeds
# (noise 98 %, solid 100 %, gradient 97 %, blank 100 %, text 95 %, photo 83 %).
KIND_FLAGGED = {"noise": 0.95, "solid": 0.95, "gradient": 0.95, "blank": 0.95, "text": 0.93}
KIND_FLAGGED["photo"] = 0.75


@pytest.fixture(scope="module")
def study(default_checkpoint, rmb_data_dir, tmp_path_factory):
    cfg = StudyConfig(
        checkpoint=str(default_checkpoint),
        inside=[str(rmb_data_dir)],
        out=str(tmp_path_factory.mktemp("ood-report")),
        methods=(DEFAULT_METHOD,),
        near_dir=str(default_checkpoint.parent / "data"),
    )
    report, _ = run_study(cfg)
    return report["methods"][DEFAULT_METHOD]


@pytest.fixture(scope="module")
def scored(default_checkpoint):
    """``score(pil_image) -> (ood_score, threshold)`` through the path a user's photo takes."""
    ckpt = load_checkpoint(default_checkpoint)
    scorer = OODScorer.from_state(ckpt.ood)
    model = WithOOD(ckpt.build_model(allow_folded=False), scorer).eval()

    @torch.no_grad()
    def score(image: Image.Image) -> tuple[float, float]:
        x = normalize(to_uint8_tensor(image)[None], tuple(ckpt.mean), tuple(ckpt.std))
        return float(model(x)[1][0]), scorer.threshold

    return score


def test_the_default_model_stores_the_chosen_method(default_checkpoint):
    assert load_checkpoint(default_checkpoint).ood["method"] == DEFAULT_METHOD


def test_far_ood_is_flagged(study):
    far = study["out"]["far"]
    assert far["auroc"] >= FAR_AUROC, far
    assert far["flagged"] >= FAR_FLAGGED, far


@pytest.mark.parametrize("kind", sorted(KIND_FLAGGED))
def test_every_far_kind_is_mostly_flagged(study, kind):
    got = study["out"]["far"]["kinds"][kind]["flagged"]
    assert got >= KIND_FLAGGED[kind], f"{kind}: {got:.1%} flagged"


def test_other_denominations_score_as_less_typical(study):
    assert study["out"]["near"]["auroc"] >= NEAR_AUROC, study["out"]["near"]


def test_course_photos_are_accepted_and_read_correctly(study, rmb_data_dir):
    course = study["in"][Path(rmb_data_dir).name]
    assert course["images"] == 200
    assert course["false_reject"] <= COURSE_FALSE_REJECT, course
    assert course["accuracy_accepted"] >= COURSE_ACCURACY_ACCEPTED, course


def _noise() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_noise, id="noise"),
        pytest.param(lambda: Image.new("RGB", (640, 480), (255, 255, 255)), id="white-sheet"),
        pytest.param(lambda: Image.new("RGB", (640, 480), (0, 160, 0)), id="plain-green"),
    ],
)
def test_non_notes_of_the_issue_are_unknown(scored, make):
    score, threshold = scored(make())
    assert score > threshold, f"score {score:.4g} <= threshold {threshold:.4g}"


@pytest.mark.parametrize("index", range(len(bundled_photos())))
def test_whole_natural_photos_are_unknown(scored, index):
    path = bundled_photos()[index]
    score, threshold = scored(Image.open(path).convert("RGB"))
    assert score > threshold, f"{path.name}: score {score:.4g} <= threshold {threshold:.4g}"


def test_course_photos_are_accepted_one_by_one(scored, rmb_data_dir):
    """The single-photo path (full-size PIL image, as the demo gets it) accepts real notes too."""
    photos = sorted(Path(rmb_data_dir).glob("*/*.jpg"))
    below = [s <= t for s, t in (scored(Image.open(p).convert("RGB")) for p in photos)]
    assert len(photos) == 200
    assert sum(below) / len(below) >= 1 - COURSE_FALSE_REJECT
