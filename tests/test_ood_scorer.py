"""train.ood.scorer: WithOOD folds, exports to ONNX, and rebuilds from the checkpoint's dict.

What is protected: the score survives bnfold.fold (0 BatchNorms left, same scores within the
project's parity tolerance), both ONNX exporters write it as a second output that onnxruntime
computes like PyTorch, and the ``ood`` dict round-trips through torch.load(weights_only=True).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from factories import bn_lenet_with_running_stats

import bnfold
from bnfold.bn_stats import is_batchnorm
from train.dataset import ImageSet
from train.ood.fit import fit_scorer
from train.ood.scorer import OUTPUT_NAMES, OODScorer, WithOOD

# Every base method in one combined score: one export exercises all their ops.
ALL = "msp+energy+mahalanobis+knn+bn-stats+channel-stats"
ATOL, RTOL = 1e-5, 1e-4


def _images(n: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    # half of them smooth, so the statistics are not those of noise alone
    images[: n // 2] = images[: n // 2].float().mean(dim=(2, 3), keepdim=True).to(torch.uint8)
    return ImageSet(images, torch.arange(n) % 2, [f"{i}.png" for i in range(n)])


@pytest.fixture(scope="module")
def wrapped() -> dict[str, WithOOD]:
    torch.manual_seed(0)
    model = bn_lenet_with_running_stats(seed=0)
    train = _images(64, seed=1)
    return {m: WithOOD(model, fit_scorer(model, train, method=m)).eval() for m in (ALL, "knn")}


def _inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, 32, 32, generator=g)
    x[0] = 2.0  # a flat image: zero spatial variance in every channel
    return x


def _assert_scores_close(got, ref) -> None:
    torch.testing.assert_close(torch.as_tensor(got), ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("method", [ALL, "knn"])
def test_fold_removes_every_batchnorm_and_keeps_logits_and_scores(wrapped, method):
    model = wrapped[method]
    result = bnfold.fold(model, _inputs())
    assert result.report.num_folded == 3
    assert not any(is_batchnorm(m) for m in result.model.modules())
    with torch.no_grad():
        logits, score = model(_inputs())
        f_logits, f_score = result.model(_inputs())
    assert score.shape == (6,) and score.dtype == torch.float32
    assert bool(torch.isfinite(score).all())
    _assert_scores_close(f_logits, logits)
    _assert_scores_close(f_score, score)


def test_each_method_contributes_to_the_combined_score(wrapped):
    """Guards the test above: a combined score that ignored a method would still 'agree'."""
    stats = wrapped[ALL].scorer.stats()
    assert {k.split(".")[0] for k in stats} == set(ALL.split("+"))


def _onnx_scores(model: torch.nn.Module, exporter: str, x: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort

    kwargs = {
        "input_names": ["image"],
        "output_names": list(OUTPUT_NAMES),
        "opset_version": 18,
    }
    if exporter == "dynamo":
        program = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            optimize=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            **kwargs,
        )
        data = program.model_proto.SerializeToString()
    else:
        buf = io.BytesIO()
        dyn = {"image": {0: "batch"}, "logits": {0: "batch"}, "ood_score": {0: "batch"}}
        torch.onnx.export(model, (x,), buf, dynamo=False, dynamic_axes=dyn, **kwargs)
        data = buf.getvalue()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    return session.run(None, {"image": x.numpy()})


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_onnx_export_of_unfolded_and_folded_gives_the_same_scores(wrapped, exporter):
    model = wrapped[ALL]
    folded = bnfold.fold(model, _inputs()).model
    x = _inputs()
    with torch.no_grad():
        ref_logits, ref_score = model(x)
    for m in (model, folded):
        logits, score = _onnx_scores(m, exporter, x)
        assert score.shape == (6,) and score.dtype == np.float32
        _assert_scores_close(logits, ref_logits)
        _assert_scores_close(score, ref_score)


def test_ood_dict_round_trips_through_weights_only_load(wrapped):
    scorer = wrapped[ALL].scorer
    buf = io.BytesIO()
    torch.save({"ood": scorer.state()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["ood"]
    rebuilt = OODScorer.from_state(state)
    assert rebuilt.method == ALL and rebuilt.threshold == scorer.threshold
    assert rebuilt.stats()["knn.k"] == scorer.stats()["knn.k"]  # the int hyper-parameter
    model = wrapped[ALL].model
    with torch.no_grad():
        torch.testing.assert_close(
            WithOOD(model, rebuilt)(_inputs())[1], wrapped[ALL](_inputs())[1]
        )


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"format": 99, "method": "msp", "threshold": 1.0, "stats": {}}, "format 99"),
        ({"format": 1, "method": "msp", "stats": {}}, "lacks threshold"),
        ({"format": 1, "method": "softmax", "threshold": 1.0, "stats": {}}, "unknown OOD method"),
        ([1, 2], "not a dict"),
    ],
)
def test_a_broken_ood_dict_is_a_one_line_value_error(state, match):
    with pytest.raises(ValueError, match=match):
        OODScorer.from_state(state)


def test_with_ood_refuses_a_model_without_lenet_layers():
    with pytest.raises(ValueError, match="lacks conv1"):
        WithOOD(torch.nn.Linear(3, 2), OODScorer("msp", {}, 0.5))


def test_the_knn_bank_is_capped_and_k_scales_with_its_share():
    """The bank is embedded in every ONNX file: at most BANK_SIZE rows, k scaled to match."""
    from train.ood import methods

    n = methods.BANK_SIZE * 4
    g = torch.Generator().manual_seed(0)
    feats = methods.Features(
        torch.zeros(n, 2),
        torch.zeros(n, dtype=torch.int64),
        torch.randn(n, 84, generator=g),
        torch.zeros(n, 1),
        torch.zeros(n, 0),
    )
    stats = methods.fit_knn(feats, k=12)
    assert stats["bank"].shape == (methods.BANK_SIZE, 84) and int(stats["k"]) == 3
    torch.testing.assert_close(stats["bank"].norm(dim=1), torch.ones(methods.BANK_SIZE))
    assert torch.equal(stats["bank"], methods.fit_knn(feats, k=12)["bank"])  # seeded subset
    small = methods.fit_knn(methods.Features(*(t[:5] for t in feats.__dict__.values())), k=12)
    assert small["bank"].shape == (5, 84) and int(small["k"]) == 5


def _previous_knn(f: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """knn's score as first written: 1 - the k-th largest cosine similarity (the reference)."""
    unit = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 1.0 - (unit @ bank.T).topk(k, dim=1).values[:, k - 1]


@pytest.mark.parametrize("method", ["knn", ALL])
def test_knn_scores_equal_the_previous_formula(wrapped, method):
    """The served form (negated bank, Gemm bias, loc/scale folded in) changes no score beyond
    rounding, so thresholds calibrated with the previous formula stay valid; a zero feature
    row (every ReLU dead) still scores exactly 1 - 0, not NaN."""
    from train.ood import methods
    from train.ood.taps import lenet_taps

    scorer = wrapped[method].scorer
    prefix = "" if method == "knn" else "knn."
    stats = scorer.stats()
    bank, k = stats[f"{prefix}bank"], stats[f"{prefix}k"]
    with torch.no_grad():
        taps = lenet_taps(wrapped[method].model, _inputs())
    taps.penultimate[1] = 0.0
    ref = _previous_knn(taps.penultimate, bank, k)
    own = {key.removeprefix(prefix): v for key, v in stats.items() if key.startswith(prefix)}
    if method != "knn":
        ref = (ref - own["loc"]) / own["scale"]
    got = methods.score_knn(taps, {**own, **methods.prepare_knn(own, *_loc_scale(own))})
    _assert_scores_close(got, ref)
    assert bool(torch.isfinite(got).all())
    if method == "knn":
        assert float(got[1]) == 1.0


def _loc_scale(own: dict) -> tuple:
    return (own["loc"], own["scale"]) if "loc" in own else ()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_the_served_knn_score_is_four_onnxruntime_nodes(wrapped, exporter, tmp_path):
    """At batch 1 every node is a dispatch (README: the OOD score's cost): after ORT's
    optimiser, knn's part of the folded graph is one fused normalisation, one Gemm, TopK and
    the k-th column, nothing else."""
    import onnx
    import onnxruntime as ort

    from export.onnx_writer import save, to_onnx
    from export.quantize import non_logits_nodes

    folded = bnfold.fold(wrapped["knn"], _inputs()).model.eval()
    path, optimised = tmp_path / "knn.onnx", tmp_path / "knn.opt.onnx"
    save(to_onnx(folded, (32, 32), exporter=exporter, output_names=OUTPUT_NAMES), path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimised)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    proto = onnx.load(str(optimised))
    ood = set(non_logits_nodes(proto))
    ops = sorted(n.op_type for n in proto.graph.node if n.name in ood)
    assert ops == ["Gather", "Gemm", "SimplifiedLayerNormalization", "TopK"]
