"""benchmarks.inference and its helpers: runners compute the model, rounds interleave, the CLI
writes every variant. No timing is asserted: only structure, parity and arithmetic."""

from __future__ import annotations

import json
import random
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from factories import bn_lenet_onnx_pair

from benchmarks import sweep
from benchmarks.inference import JSON_NAME, MD_NAME, PNG_NAME, get_args_parser, main
from benchmarks.variants import (
    BASELINE,
    LOGITS_ONLY,
    all_variants,
    cpu_variants,
    cuda_variants,
    how,
)
from export.runtimes import timing
from export.runtimes.errors import Unavailable
from export.runtimes.open import Sources, open_variant
from export.runtimes.openvino_runner import openvino_unavailable
from export.runtimes.runner import Bound
from export.runtimes.torch_runner import compiler_unavailable
from export.runtimes.variant import Variant
from train.trainer import TrainConfig, fit

LENET_FLOPS = 1_313_332  # tests/test_bench_flops.py: the hand count of the folded 2-class net


def _run(*argv: str) -> int:
    return main(get_args_parser().parse_args(list(argv)))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """BN-LeNet with non-trivial BN statistics, its fold, and both ONNX files."""
    return bn_lenet_onnx_pair(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def checkpoint(module_image_folder, tmp_path_factory):
    data = module_image_folder(per_class=6)
    out = tmp_path_factory.mktemp("ckpt") / "bn-lenet.pt"
    fit(TrainConfig(data=str(data), epochs=1, batch_size=4, device="cpu", out=str(out)))
    return out


def _batch(n: int) -> np.ndarray:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(n)).numpy()


# ----------------------------------------------------------------------------------------------
# Parity of a timed output (the runners themselves: tests/test_export_runtimes.py)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
@pytest.mark.parametrize("variant", cuda_variants(), ids=lambda v: v.name)
def test_cuda_variants_are_unavailable_with_a_reason_on_cpu_machines(nets, variant):
    model, folded, files = nets
    opened = open_variant(variant, Sources(model, folded, files))
    assert isinstance(opened, Unavailable) and opened.variant == variant
    assert "cuda" in opened.reason.lower()


def test_parity_check_rejects_a_wrong_output():
    variant = cpu_variants()[0]
    logits = np.array([[1.0, -1.0], [0.5, 2.0]])
    ref = {"logits": logits, "ood_score": np.array([0.5, 1.5])}

    def got(**changed):
        return {k: v.astype(np.float32) for k, v in {**ref, **changed}.items()}

    ok, _, ratio = sweep._parity(variant, got(), ref)
    assert ok and ratio < 1
    assert not sweep._parity(variant, got(logits=logits + 1e-3), ref)[0]
    assert not sweep._parity(variant, got(logits=logits[:, ::-1]), ref)[0]  # wrong argmax too
    assert not sweep._parity(variant, got(logits=logits[:1]), ref)[0]  # wrong shape
    assert not sweep._parity(variant, got(ood_score=ref["ood_score"] + 1e-3), ref)[0]
    assert not sweep._parity(variant, {"logits": got()["logits"]}, ref)[0]  # an output missing
    nan = np.full_like(logits, np.nan)
    assert not sweep._parity(variant, got(logits=nan), {**ref, "logits": nan})[0]
    # The logits-only twin (the OOD score's cost) lacks ood_score by design; its logits count.
    twin = next(v for v in cpu_variants() if v.family == LOGITS_ONLY)
    assert sweep._parity(twin, {"logits": got()["logits"]}, ref)[0]
    assert not sweep._parity(twin, {"logits": got(logits=logits + 1e-3)["logits"]}, ref)[0]


# ----------------------------------------------------------------------------------------------
# Timing: interleaving and ratios (structure and arithmetic, no clocks).


def test_summarise_and_ratio_arithmetic():
    base = timing.Samples([[2.0, 4.0], [4.0, 4.0], [6.0, 6.0]])
    other = timing.Samples([[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]])
    stats = timing.summarise(base)
    assert stats.median_s == 4.0
    assert stats.p90_s == pytest.approx(np.percentile([2, 4, 4, 4, 6, 6], 90))
    assert (stats.calls, stats.rounds) == (6, 3)
    assert stats.throughput(8) == 2.0
    r = timing.ratio(base, other)
    assert r.value == 2.0  # median 4 / median 2
    per_round = np.array([3.0, 2.0, 3.0])
    assert (r.p10, r.p90) == (np.percentile(per_round, 10), np.percentile(per_round, 90))
    assert not r.slower_beyond_noise
    assert timing.ratio(other, base).slower_beyond_noise
    with pytest.raises(ValueError, match="same rounds"):
        timing.ratio(base, timing.Samples([[1.0]]))


def test_round_order_keeps_groups_together_and_varies():
    names = ["a1", "a2", "a3", "b1", "b2", "c"]
    groups = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b"}
    rng = random.Random(0)
    orders = [timing.round_order(names, groups, rng) for _ in range(30)]
    for order in orders:
        assert sorted(order) == sorted(names)
        labels = [groups.get(n, n) for n in order]
        runs = [g for i, g in enumerate(labels) if i == 0 or labels[i - 1] != g]
        assert len(runs) == 3  # each group in one contiguous run
    predecessors = {tuple(o[o.index("a1") - 1 : o.index("a1") + 1]) for o in orders}
    assert len(predecessors) > 1  # a1 does not always follow the same variant


def test_measure_interleaved_runs_every_variant_every_round(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(timing.time, "sleep", slept.append)
    entered: list[str] = []
    calls: dict[str, int] = {}

    def fake(name: str) -> Bound:
        @contextmanager
        def setting():
            entered.append(name)
            yield

        def step() -> None:
            calls[name] = calls.get(name, 0) + 1

        return Bound(step, lambda: {"logits": np.zeros(1)}, setting)

    names = ["x", "y", "z"]
    samples = timing.measure_interleaved(
        {n: fake(n) for n in names},
        rounds=4,
        warmup=2,
        block_s=1.0,
        max_block_calls=3,
        settle=1,
        pause_after=["y"],
        pause_s=0.25,
    )
    assert slept == [0.25] * (1 + 4)  # after y's warm-up and after each of its blocks
    assert entered[:3] == names  # the warm-up, in order
    for r in range(4):
        assert sorted(entered[3 + 3 * r : 6 + 3 * r]) == names  # every round: each once
    for n in names:
        assert len(samples[n].rounds) == 4
        assert all(len(block) == 3 for block in samples[n].rounds)  # capped block size
        assert calls[n] == (2 + 1) + 4 * (3 + 1)  # warm-up + settle, then settle + block
    with pytest.raises(ValueError, match="rounds"):
        timing.measure_interleaved({"x": fake("x")}, rounds=0, warmup=1)


@pytest.mark.parametrize(
    ("name", "spins"),
    [
        ("ort-all-t1-iobind/folded", False),
        ("ort-all-t2-iobind/folded", True),
        ("pytorch-compile-t1/folded", False),
        (BASELINE, False),  # PyTorch's pool is never paused after: see the docstring
        ("pytorch-cuda/folded", False),
        ("ort-cuda-iobind/folded", False),
    ],
)
def test_which_variants_are_followed_by_a_pause(name, spins):
    variant = next(v for v in all_variants() if v.name == name)
    assert sweep.leaves_threads_spinning(variant) is spins


def test_ort_default_threads_pause_exactly_when_there_is_more_than_one_core():
    import os

    ort_default = next(v for v in all_variants() if v.name == "ort-default/folded")
    assert sweep.leaves_threads_spinning(ort_default) is ((os.cpu_count() or 1) > 1)


# ----------------------------------------------------------------------------------------------
# The CLI


def test_variant_selection():
    cfg = sweep.SweepConfig("ckpt", cuda_only=True)
    chosen = [v.name for v in sweep.select_variants(cfg)]
    assert chosen == [BASELINE] + [v.name for v in cuda_variants()]
    picked = sweep.select_variants(sweep.SweepConfig("ckpt", variants=("ort-default/folded",)))
    assert [v.name for v in picked] == [BASELINE, "ort-default/folded"]
    names = [v.name for v in all_variants()]
    assert len(names) == len(set(names))
    assert all(isinstance(v, Variant) and how(v) for v in all_variants())


def test_list_variants_and_unknown_names(capsys, checkpoint, tmp_path):
    assert _run("--list-variants") == 0
    listed = capsys.readouterr().out
    assert all(v.name in listed for v in all_variants())
    code = _run("--checkpoint", str(checkpoint), "--out", str(tmp_path), "--variants", "nope/x")
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown variant(s) nope/x" in err and BASELINE in err
    assert not (tmp_path / JSON_NAME).exists()


def test_onnx_files_of_another_checkpoint_are_refused(checkpoint, tmp_path, capsys):
    from bnfold.checkpoint import load_checkpoint, save_checkpoint
    from export.pipeline import ExportConfig, export_checkpoint

    onnx_dir = tmp_path / "onnx"
    export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(onnx_dir)))
    other = tmp_path / checkpoint.name  # same stem, different bytes
    ckpt = load_checkpoint(checkpoint)
    ckpt = ckpt.replace(metrics={**ckpt.metrics, "note": "another run"})
    save_checkpoint(ckpt, other)
    code = _run("--checkpoint", str(other), "--onnx-dir", str(onnx_dir), "--out", str(tmp_path))
    assert code == 2
    assert "proves files of another checkpoint" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run(checkpoint, tmp_path_factory):
    """The whole benchmark, every variant, in its smallest configuration (ONNX exported to temp)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["--checkpoint", str(checkpoint), "--out", str(out)]
    argv += ["--batch-sizes", "1", "2", "--repeats", "2", "--warmup", "1"]
    code = _run(*argv)
    return code, out, json.loads((out / JSON_NAME).read_text())


@pytest.mark.slow
def test_tiny_run_reports_every_variant_at_every_batch(tiny_run):
    code, _, data = tiny_run
    assert code == 0
    assert [v["name"] for v in data["variants"]] == [v.name for v in all_variants()]
    cells = {(r["variant"], r["batch"]): r for r in data["results"]}
    assert set(cells) == {(v.name, b) for v in all_variants() for b in (1, 2)}
    no_compiler = compiler_unavailable()
    for (name, b), r in cells.items():
        variant = next(v for v in all_variants() if v.name == name)
        if variant.cuda and not torch.cuda.is_available():
            assert r["status"] == "not run" and "cuda" in r["reason"].lower()
            continue
        if no_compiler and "compile" in name:
            assert r["status"] == "not run" and r["reason"] == no_compiler
            continue
        if variant.runtime == "openvino" and openvino_unavailable():
            assert r["status"] == "not run" and "pip install -e '.[peers]'" in r["reason"]
            continue
        assert r["status"] == "run", (name, b, r["reason"])
        assert r["speedup_vs_baseline"] > 0 and r["speedup_p10"] >= 0
        assert 0 < r["median_ms"] <= r["p90_ms"]
        assert r["images_per_s"] == pytest.approx(b / (r["median_ms"] / 1e3))
        assert r["gflops"] == pytest.approx(r["images_per_s"] * LENET_FLOPS / 1e9)
        assert r["peak_fraction"] > 0
        assert r["floor_ratio_1_thread"] == pytest.approx(
            r["median_ms"] / 1e3 / (b * LENET_FLOPS / data["peak"]["by_threads"]["1"])
        )
        if variant.exact:
            assert r["tolerance_ratio"] <= 1.0
        else:  # int8 / bf16: finite, close, not held to fp32 tolerances
            assert r["tolerance_ratio"] is None and 0 < r["max_abs_err"] < 1.0
    for b in (1, 2):
        assert cells[(BASELINE, b)]["speedup_vs_baseline"] == 1.0


@pytest.mark.slow
def test_tiny_run_counts_flops_measures_the_peak_and_concludes(tiny_run):
    _, _, data = tiny_run
    assert data["flops_per_image"]["folded"]["total"] == LENET_FLOPS
    assert data["flops_per_image"]["unfolded"]["total"] > LENET_FLOPS
    assert data["peak"]["flops_per_s"] > 0 and "1" in data["peak"]["by_threads"]
    pairs = {(p["family"], p["batch"]) for p in data["fold_pairs"]}
    assert {("pytorch-eager", 1), ("ort-disabled", 2), ("ort-default", 1)} <= pairs
    assert [t["name"] for t in data["targets"]] == [
        "batch 1 speed-up",
        "batch 256 share of sgemm peak",
        "batch 1 OOD score cost (ORT, folded)",
        "batch 1 folded vs unfolded, pytorch-eager",
        "batch 1 folded vs unfolded, ort-disabled",
        "batch 1 fastest fp32 variant vs the 1-thread floor",
        "batch 256 int8 vs fp32 folded, same runtime",
        "folded never slower beyond noise",
    ]
    assert {(p["family"], p["batch"]) for p in data["int8_pairs"]} >= {("ort-default", 1)}
    assert set(data["floor_s_per_image"]) >= {"1", "2"}
    assert data["targets"][1]["met"] is None  # batch 256 was not run
    # The OOD score's cost: with ood_score vs the logits-only twin, at both batch sizes, and a
    # measured (met or missed, not skipped) target at batch 1. No timing is asserted.
    assert {c["batch"] for c in data["ood_cost"]} == {1, 2}
    assert all(c["ratio"] > 0 and c["p10"] <= c["p90"] for c in data["ood_cost"])
    assert (
        data["targets"][2]["met"] in (True, False)
        and "logits-only" in data["targets"][2]["measured"]
    )
    overall = data["recommendation"]["overall"]
    assert overall in {v.name for v in cpu_variants()} and overall != f"{LOGITS_ONLY}/folded"
    assert LOGITS_ONLY not in " ".join(data["recommendation"]["per_batch"].values())
    assert {p["batch"] for p in data["profiles"]} == {1, 2}
    assert all(p["ops"] for p in data["profiles"])
    assert data["meta"]["load_average_before"] and data["command"].startswith("python -m")


@pytest.mark.slow
def test_tiny_run_writes_the_table_and_the_plot(tiny_run):
    _, out, data = tiny_run
    md = (out / MD_NAME).read_text()
    assert "| variant | batch 1 | batch 2 |" in md
    assert all(v["name"] in md for v in data["variants"])
    assert "## Targets" in md and "## Recommendation" in md
    assert (out / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
