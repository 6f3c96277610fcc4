"""demo.handlers without a page or a server: every value a client can send is checked first.

The happy paths run through the real server (tests/test_demo_server.py); here the refusals,
which need no loaded runtimes because they come before any work.
"""

from __future__ import annotations

import gradio as gr
import pytest

from demo import handlers


@pytest.mark.parametrize("value", [1, 7.0, "12", 200])
def test_whole_numbers_in_range_pass(value):
    assert handlers.whole_number(value, "runs", 1, 200) == int(float(value))


@pytest.mark.parametrize(
    "value", [None, float("nan"), float("inf"), -1, 0, 201, 2.5, "many", "1e400", True, [3], {}]
)
def test_anything_else_is_refused_with_the_field_and_its_range(value):
    with pytest.raises(gr.Error) as caught:
        handlers.whole_number(value, "runs", 1, 200)
    assert str(caught.value.message) == f"runs must be a whole number from 1 to 200, got {value!r}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: handlers.benchmark(None, "256", float("nan")), "runs must be"),
        (lambda: handlers.benchmark(None, "5", 2), "must be one of 1, 2, 4"),
        (lambda: handlers.classify_upload(None, None, 1), "no image"),
        (lambda: handlers.classify_upload(None, "x.jpg", 1), "unknown form"),
        (lambda: handlers.classify_upload(None, {"path": 3}, 1), "without a file"),
        (lambda: handlers.classify_upload(None, None, None), "runs must be"),
        (lambda: handlers.init_study(1e30, 40), "seed must be"),
        (lambda: handlers.init_study(1, None), "layers must be"),
    ],
)
def test_handlers_refuse_before_doing_any_work(call, message):
    with pytest.raises(gr.Error, match=message):
        call()
