"""export.runtimes: every runner computes the network, returns every named output, and says
why when it cannot run here. No timing is asserted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factories import bn_lenet_onnx_pair

from export.runtimes import sessions, timing, torch_runner
from export.runtimes.errors import Unavailable, first_line
from export.runtimes.open import Sources, open_variant
from export.runtimes.torch_runner import MODES, named_outputs
from export.runtimes.variant import ONNXRUNTIME, PYTORCH, OrtOptions, TorchOptions, Variant


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """BN-LeNet with non-trivial BN statistics, its fold, and both ONNX files."""
    return Sources(*bn_lenet_onnx_pair(tmp_path_factory.mktemp("onnx")))


def _batch(n: int) -> np.ndarray:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(n)).numpy()


def _open(variant: Variant, sources: Sources):
    runner = open_variant(variant, sources)
    assert not isinstance(runner, Unavailable), runner
    return runner


@pytest.mark.parametrize("mode", [m for m in MODES if m != "compile"])
@pytest.mark.parametrize("threads", [None, 1])
def test_torch_runners_match_eager(nets, mode, threads):
    x = _batch(3)
    bound = _open(Variant(PYTORCH, True, options=TorchOptions(mode, threads)), nets).bind(x)
    before = torch.get_num_threads()
    with bound.setting():
        bound.step()
    assert torch.get_num_threads() == before  # the thread setting is restored
    with torch.no_grad():
        expected = nets.unfolded(torch.from_numpy(x)).numpy()
    out = bound.read()
    assert list(out) == ["logits"]
    np.testing.assert_allclose(out["logits"], expected, atol=1e-5, rtol=1e-4)


def test_a_torch_runner_leaves_the_callers_model_alone(nets):
    model = nets.unfolded
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = _open(Variant(PYTORCH, False, options=TorchOptions("channels_last")), nets)
    runner(_batch(2))
    assert runner.model is not model
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
        assert v.is_contiguous()  # not converted to channels-last


@pytest.mark.parametrize("io_binding", [False, True])
@pytest.mark.parametrize(("level", "threads"), [("disabled", None), ("default", None), ("all", 1)])
def test_ort_runners_match_a_plain_session(nets, io_binding, level, threads):
    options = OrtOptions(level, threads, io_binding)
    runner = _open(Variant(ONNXRUNTIME, True, options=options), nets)
    assert runner.device_label == sessions.CPU
    plain = sessions.ort_session(nets.files["unfolded"], OrtOptions("disabled"))
    for n in (1, 5):  # two bindings of one session: each writes its own output
        x = _batch(n)
        bound = runner.bind(x)
        bound.step()
        (expected,) = plain.run(None, {"image": x})
        np.testing.assert_allclose(bound.read()["logits"], expected, atol=1e-5, rtol=1e-4)
        assert bound.read()["logits"].shape == (n, 2)
        np.testing.assert_allclose(runner(x)["logits"], expected, atol=1e-5, rtol=1e-4)


def test_io_binding_output_follows_the_bound_input(nets):
    # Guards against timing a run whose output is never refreshed: same session, two inputs.
    runner = _open(Variant(ONNXRUNTIME, True, options=OrtOptions("all", 1, True)), nets)
    first, second = runner.bind(_batch(4)), runner.bind(-_batch(4))
    first.step()
    second.step()
    with torch.no_grad():
        for bound, x in ((first, _batch(4)), (second, -_batch(4))):
            expected = nets.folded(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(bound.read()["logits"], expected, atol=1e-5, rtol=1e-4)


def test_a_file_onnxruntime_cannot_load_is_unavailable_with_the_reason(nets, tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    broken = Sources(nets.unfolded, nets.folded, {**nets.files, "folded": tmp_path / "bad.onnx"})
    variant = Variant(ONNXRUNTIME, True)
    opened = open_variant(variant, broken)
    assert isinstance(opened, Unavailable) and opened.variant == variant
    assert opened.reason.startswith("onnxruntime could not load bad.onnx: ")
    assert "\n" not in opened.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
@pytest.mark.parametrize("runtime", [PYTORCH, ONNXRUNTIME])
def test_cuda_variants_are_unavailable_with_the_reason_on_a_cpu_machine(nets, runtime):
    opened = open_variant(Variant(runtime, True, "cuda"), nets)
    assert isinstance(opened, Unavailable)
    assert "cuda" in opened.reason.lower()


def test_variants_check_their_fields_and_name_themselves():
    v = Variant(ONNXRUNTIME, True, "cuda", OrtOptions("all"), "ort-x")
    assert (v.name, v.kind, v.cuda, v.provider) == ("ort-x/folded", "folded", True, sessions.CUDA)
    assert Variant(PYTORCH, False).name == "pytorch-cpu/unfolded"
    assert Variant(PYTORCH, False).options == TorchOptions()
    with pytest.raises(ValueError, match="unknown runtime"):
        Variant("tvm", True)
    with pytest.raises(ValueError, match="unknown device"):
        Variant(PYTORCH, True, "tpu")
    with pytest.raises(TypeError, match="OrtOptions"):
        Variant(ONNXRUNTIME, True, options=TorchOptions())


def test_named_outputs_put_logits_first():
    t = torch.zeros(2)
    assert list(named_outputs(t)) == ["logits"]
    assert list(named_outputs({"ood_score": t, "logits": t})) == ["logits", "ood_score"]
    # WithOOD's tuple, named as its ONNX outputs are
    s = torch.ones(2)
    named = named_outputs((t, s), ("logits", "ood_score"))
    assert list(named) == ["logits", "ood_score"] and named["ood_score"] is s
    assert list(named_outputs((s, t), ("ood_score", "logits"))) == ["logits", "ood_score"]
    with pytest.raises(ValueError, match="returned 2 outputs, expected 1"):
        named_outputs((t, t))
    with pytest.raises(TypeError, match="dict of named tensors"):
        named_outputs("logits")


def test_first_line_is_one_bounded_line():
    assert first_line(RuntimeError("one\ntwo")) == "one"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(RuntimeError("x" * 500), limit=10) == "x" * 10


@pytest.mark.parametrize(
    ("available", "session", "expected"),
    [
        ([sessions.CPU], None, sessions.ORT_GPU_HINT),
        ([sessions.CUDA, sessions.CPU], [sessions.CPU], "did not start"),
        ([sessions.CUDA, sessions.CPU], [], "did not start"),
        ([sessions.CUDA, sessions.CPU], [sessions.CUDA, sessions.CPU], None),
    ],
)
def test_ort_cuda_counts_only_when_the_cuda_provider_runs_the_session(available, session, expected):
    reason = sessions.ort_cuda_reason(available, session)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


def test_torch_cuda_reason_follows_torch():
    assert (torch_runner.torch_cuda_unavailable() is None) == torch.cuda.is_available()


def test_summarise_refuses_no_samples():
    with pytest.raises(ValueError, match="no samples"):
        timing.summarise(timing.Samples([]))
