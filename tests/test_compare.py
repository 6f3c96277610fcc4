"""Protects the course's three-run comparison: the spike measure and the files it writes."""

from __future__ import annotations

import json
import logging

import pytest

from bnfold.checkpoint import load_checkpoint
from train.compare import RUNS, get_args_parser, largest_spike, main, to_markdown


@pytest.mark.parametrize(
    ("step_losses", "expected"),
    [
        ([], 0.0),
        ([[0.7, 0.9, 1.5]], 0.0),  # rises inside the first epoch do not count
        ([[0.7, 0.6], [0.5, 0.4, 0.3]], 0.0),  # falling all along
        ([[0.7, 0.6], [0.65, 0.5, 0.9]], 0.4),  # the largest of 0.05 and 0.4
        ([[0.7, 0.1], [0.3, 0.2]], 0.2),  # the step across the epoch boundary counts
        ([[0.7], [0.2], [0.5], [0.45, 0.6]], 0.3),
        ([[1.0, 2.0], [3.0]], 1.0),
    ],
)
def test_largest_spike(step_losses, expected):
    assert largest_spike(step_losses) == pytest.approx(expected, abs=1e-12)


def test_runs_are_the_courses_three():
    assert [(arch, init) for _, arch, init in RUNS] == [
        ("lenet", "default"),
        ("lenet", "course"),
        ("bn-lenet", "default"),
    ]


def test_to_markdown_table():
    results = {
        "A": {"final_valid_acc": 0.5, "test_acc": 1.0, "largest_loss_spike": 0.25},
        "B": {"final_valid_acc": 0.125, "test_acc": 0.0, "largest_loss_spike": 0.0},
    }
    lines = to_markdown(results).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| A | 50.00% | 100.00% | 0.2500 |"
    assert lines[3] == "| B | 12.50% | 0.00% | 0.0000 |"


def test_compare_writes_json_markdown_png_and_three_checkpoints(
    tiny_image_folder, tmp_path, capsys, caplog
):
    data = tiny_image_folder(per_class=8)
    out = tmp_path / "compare"
    argv = ["--data", str(data), "--out", str(out), "--epochs", "2", "--device", "cpu"]
    with caplog.at_level(logging.INFO):
        assert main(get_args_parser().parse_args(argv)) == 0
    announced = [r.getMessage() for r in caplog.records if r.name == "train.compare"]
    assert announced == [f"== {label}" for label, _, _ in RUNS]
    summary = json.loads((out / "compare.json").read_text())
    assert summary["data"] == str(data)
    assert summary["seed"] == 1
    runs = summary["runs"]
    assert list(runs) == [label for label, _, _ in RUNS]
    for label, arch, init in RUNS:
        ckpt = load_checkpoint(out / f"{arch}-{init}.pt")
        assert (ckpt.arch, ckpt.args["init"], ckpt.args["epochs"]) == (arch, init, 2)
        metrics = ckpt.metrics
        assert runs[label] == {
            "arch": arch,
            "init": init,
            "final_valid_acc": metrics["history"][-1]["valid_acc"],
            "test_acc": metrics["test_acc"],
            "largest_loss_spike": largest_spike(metrics["step_losses"]),
        }
    # Same seed, same split: the three runs differ only in model and init.
    splits = [load_checkpoint(out / f"{a}-{i}.pt").split for _, a, i in RUNS]
    assert splits[0] == splits[1] == splits[2]
    markdown = (out / "compare.md").read_text()
    assert markdown == to_markdown(runs)
    assert all(label in markdown for label, _, _ in RUNS)
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    printed = capsys.readouterr().out
    assert markdown.strip() in printed and "compare.json" in printed


def test_compare_help_states_defaults():
    help_text = get_args_parser().format_help()
    for flag, default in [("--out", "artifacts/compare"), ("--epochs", "10"), ("--seed", "1")]:
        assert flag in help_text and f"(default: {default})" in help_text
