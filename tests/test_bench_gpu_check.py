"""benchmarks.gpu_check: the CPU-only path exits 0 at once; the CUDA plan sets itself up.

The CUDA steps themselves need a GPU (``make gpu-check`` on one); here the decision and the
plan are checked: what runs, in which order, and that the main venv is never touched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import CUDA_BATCH_SIZES, get_args_parser, install_stamp, main, plan

REPO = Path(__file__).resolve().parents[1]


def _plan(tmp_path, *, installed: bool, checkpoint_exists: bool):
    ckpt = tmp_path / "bn-lenet.pt"
    if checkpoint_exists:
        ckpt.write_bytes(b"x")
    return plan(
        python="/usr/bin/python3",
        venv=tmp_path / ".venv-gpu",
        installed=installed,
        checkpoint=ckpt,
        onnx_dir=tmp_path / "onnx",
        out=tmp_path / "bench",
        data=None,
    )


def test_a_cpu_only_host_skips_every_check_with_the_reason_and_exits_0(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    args = get_args_parser().parse_args([])
    assert main(args, cuda="no NVIDIA driver on this host") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(gpu_check.CHECKS)
    assert all(line.startswith("gpu-check: skipped") for line in out)
    assert all(line.endswith("no NVIDIA driver on this host") for line in out)


def test_no_driver_is_decided_without_torch(monkeypatch):
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    monkeypatch.setattr(gpu_check.Path, "exists", lambda self: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch would fail the test
    assert "no NVIDIA driver" in gpu_check.cuda_reason()


def test_a_fresh_cuda_host_makes_its_own_venv_with_onnxruntime_gpu(tmp_path):
    steps = _plan(tmp_path, installed=False, checkpoint_exists=False)
    names = [s.name for s in steps]
    assert names == [
        "create .venv-gpu",
        "install the project",
        "remove the CPU onnxruntime",
        "install onnxruntime-gpu",
        "train a checkpoint",
        "export (CUDA parity rows included)",
        "gpu tests",
        "benchmark CUDA rows",
    ]
    venv_python = str(tmp_path / ".venv-gpu" / "bin" / "python")
    # Everything after creating the venv runs in it; the main venv is never named.
    assert all(s.argv[0] == venv_python for s in steps[1:])
    assert not any("/.venv/" in " ".join(s.argv) for s in steps)
    assert steps[3].argv[-1] == "onnxruntime-gpu" and "uninstall" in steps[2].argv
    assert steps[6].argv[-4:] == ("-m", "gpu", "-rs", "-q")
    bench = steps[7].argv
    assert "--cuda-only" in bench
    sizes = tuple(int(b) for b in bench[bench.index("--batch-sizes") + 1 :])
    assert sizes == CUDA_BATCH_SIZES and (min(sizes), max(sizes)) == (1, 16384)


def test_an_installed_venv_and_a_checkpoint_go_straight_to_the_checks(tmp_path):
    names = [s.name for s in _plan(tmp_path, installed=True, checkpoint_exists=True)]
    assert names == ["export (CUDA parity rows included)", "gpu tests", "benchmark CUDA rows"]


def test_the_install_stamp_follows_pyproject(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("x")
    b.write_text("y")
    venv = tmp_path / "v"
    assert install_stamp(venv, a) != install_stamp(venv, b)
    assert install_stamp(venv, a).parent == venv


@pytest.mark.skipif(
    Path("/dev/nvidiactl").exists(), reason="checks the CPU-only host; this host has a driver"
)
def test_make_gpu_check_on_this_cpu_host_exits_0_quickly():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("gpu-check: skipped") == len(gpu_check.CHECKS)
