"""bnfold.parity.compare: the metrics, the pass rule and the kinds of candidates it accepts."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bnfold.parity import compare


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).eval()


def batches(n: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 2, 2, generator=gen) for _ in range(n)]


def test_identical_model_passes_with_float32_rounding_only() -> None:
    model = tiny_classifier()
    result = compare(model, {"same": model}, batches(), atol=1e-5, rtol=1e-5)
    same = result.candidates["same"]
    assert result.passed and same.passed
    assert 0 < same.max_abs_error < 1e-5  # float32 vs the float64 reference
    assert same.argmax_agreement == 1.0 and same.num_inputs == 3


def test_reference_module_is_not_changed() -> None:
    model = tiny_classifier()
    compare(model, {"same": model}, batches(1), atol=1e-4, rtol=0)
    assert next(model.parameters()).dtype == torch.float32


def test_metrics_follow_their_definitions() -> None:
    ref = torch.tensor([[1.0, -4.0, 2.0]], dtype=torch.float64)
    out = ref + torch.tensor([[0.1, 0.0, -0.4]], dtype=torch.float64)
    result = compare(lambda x: ref, {"c": lambda x: out}, [torch.zeros(1)], atol=0.5, rtol=0.0)
    c = result.candidates["c"]
    assert c.max_abs_error == pytest.approx(0.4)
    assert c.max_rel_error == pytest.approx(0.4 / 4.0)  # max|Δ| / max|ref|
    assert c.max_elementwise_rel_error == pytest.approx(0.4 / 2.0)  # |Δ|/|ref| where |ref| > atol
    assert c.tolerance_ratio == pytest.approx(0.4 / 0.5)
    assert c.passed


REF = torch.tensor([[0.02, -1.0, 3.0]], dtype=torch.float64)
DELTA = torch.tensor([[5e-5, 5e-4, 1.5e-3]], dtype=torch.float64)  # relative 2.5e-3, 5e-4, 5e-4


@pytest.mark.parametrize(
    ("atol", "rtol", "passed"),
    [
        (2e-3, 0.0, True),
        (1e-3, 0.0, False),  # 1.5e-3 > 1e-3
        (0.0, 3e-3, True),
        (0.0, 1e-3, False),  # the small element is off by 2.5e-3 relative
        (1e-4, 5e-4, True),  # each element within atol + rtol·|ref|
        (0.0, 5e-4, False),  # ... but not without the atol
    ],
)
def test_pass_rule_is_atol_plus_rtol_elementwise(atol: float, rtol: float, passed: bool) -> None:
    result = compare(
        lambda x: REF, {"c": lambda x: REF + DELTA}, [torch.zeros(1)], atol=atol, rtol=rtol
    )
    assert result.candidates["c"].passed is passed


def test_argmax_change_fails_even_within_tolerance() -> None:
    def flipped(x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 2.0], [2.0, 1.0]])

    result = compare(
        lambda x: torch.tensor([[2.0, 1.0], [2.0, 1.0]]),
        {"flipped": flipped},
        [torch.zeros(1)],
        atol=10.0,
        rtol=0.0,
    )
    c = result.candidates["flipped"]
    assert c.tolerance_ratio <= 1 and c.argmax_agreement == 0.5 and not c.passed


def test_a_per_sample_score_has_no_argmax_only_its_tolerance() -> None:
    """A (N,) output such as ood_score: the order of scores across a batch is not a class vote.

    Before the fix, argmax over the batch axis of the score failed a candidate whose scores were
    all within tolerance whenever two samples' scores were near-equal.
    """
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    score = torch.tensor([1.0, 1.0 + 1e-7], dtype=torch.float64)  # the batch's "argmax" is 1
    swapped = torch.tensor([1.0 + 1e-7, 1.0], dtype=torch.float64)  # ... here it is 0
    result = compare(
        lambda x: (logits, score),
        {"close": lambda x: (logits, swapped), "far": lambda x: (logits, score + 1.0)},
        [torch.zeros(1)],
        atol=1e-5,
        rtol=0.0,
    )
    close, far = result.candidates["close"], result.candidates["far"]
    assert close.passed and close.argmax_agreement == 1.0  # 2 logits rows, the score not voting
    assert not far.passed and far.argmax_agreement == 1.0  # the score fails by its tolerance
    assert far.outputs[0].max_abs_error == 0.0
    assert far.outputs[1].max_abs_error == pytest.approx(1.0)
    assert far.outputs[1].tolerance_ratio == pytest.approx(1.0 / 1e-5)


def test_numpy_callables_and_nested_outputs_are_accepted() -> None:
    """An onnxruntime session returns a list of numpy arrays; models may return dicts."""

    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_classifier()

        def forward(self, x):
            return {"out": self.net(x), "aux": self.net(x) * 2}

    model = DictModel().eval()

    def like_ort(x):
        y = model.net(x).detach().numpy()
        return [y, y * 2]

    result = compare(model, {"ort": like_ort}, iter(batches()), atol=1e-5, rtol=1e-5)
    assert result.passed
    json.dumps(result.to_dict())


def test_module_candidates_get_inputs_in_their_dtype() -> None:
    model = tiny_classifier()
    half = tiny_classifier().to(torch.bfloat16)
    result = compare(model, {"bf16": half}, batches(), atol=5e-2, rtol=5e-2)
    assert 1e-4 < result.candidates["bf16"].max_abs_error < 5e-2


def test_multi_argument_inputs_are_unpacked() -> None:
    def add(a, b):
        return a + b

    inputs = [(torch.ones(2, 2), torch.ones(2, 2))]
    assert compare(add, {"add": add}, inputs, atol=0.0, rtol=0.0).passed


def test_non_finite_candidate_fails() -> None:
    result = compare(
        lambda x: x, {"nan": lambda x: x * float("nan")}, [torch.ones(2, 3)], atol=1.0, rtol=1.0
    )
    assert result.candidates["nan"].max_abs_error == float("inf")
    assert not result.passed


NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


@pytest.mark.parametrize("value", list(NON_FINITE))
def test_non_finite_outputs_on_both_sides_fail(value) -> None:
    """Hole 2 of issue 10: a NaN model compared with its NaN twin passed (NaN == NaN)."""

    def broken(x):
        return x * NON_FINITE[value]

    result = compare(broken, {"twin": broken}, [torch.ones(2, 3)], atol=1.0, rtol=1.0)
    twin = result.candidates["twin"]
    assert not twin.passed and not result.passed
    assert twin.max_abs_error == float("inf") and twin.tolerance_ratio == float("inf")


def test_one_non_finite_element_among_finite_ones_fails() -> None:
    def spoiled(x):
        return torch.where(torch.arange(x.numel()).view_as(x) == 4, float("nan"), x)

    result = compare(spoiled, {"same": spoiled}, [torch.ones(2, 3)], atol=1.0, rtol=1.0)
    assert not result.passed


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare(lambda x: x, {"bad": lambda x: x[:1]}, [torch.ones(2, 3)], atol=1, rtol=1)
