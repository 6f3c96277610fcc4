"""The whole export of one checkpoint: fold, write both ONNX files, prove parity, publish.

Proof before publication: the files and the parity report are written into a temp folder beside
``--out`` and moved into place only after parity passes, report last, so a kill, a bad
``--data`` or a failed parity run leaves no unproven file where the demo looks
(:mod:`export.proof`).

The library half of ``python -m export`` (:func:`export_checkpoint` and :func:`verify_files`);
the CLI turns flags into an :class:`ExportConfig` and prints what comes back.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from export.errors import ExportError
from export.onnx_writer import DEFAULT_OPSET
from export.quantize import int8_path
from export.runtimes.variant import FOLDED, INT8, UNFOLDED
from export.triton import DEFAULT_MAX_BATCH_SIZE

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint
    from export.networks import Networks

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """Everything an export depends on; the defaults are the CLI's."""

    checkpoint: str
    out: str = "artifacts/onnx"
    data: str | None = None
    opset: int = DEFAULT_OPSET
    exporter: str = "torchscript"
    triton_repo: str | None = None
    triton_cpu_only: bool = False
    triton_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE


@dataclass
class ExportResult:
    """The files an export wrote (or verified) and its parity proof."""

    files: dict[str, Path]  # "unfolded"/"folded"(/"int8") → .onnx
    parity: Any  # export.parity_run.ParityReport
    written: list[Path] = field(default_factory=list)  # everything written, in order


@dataclass
class _Source:
    """A loaded checkpoint and what it serves (:func:`export.networks.served_networks`)."""

    path: Path
    sha256: str
    ckpt: Checkpoint
    networks: Networks


def onnx_paths(out: str | Path, checkpoint: str | Path) -> dict[str, Path]:
    """``<out>/<stem>.unfolded.onnx`` and ``<out>/<stem>.folded.onnx`` for a checkpoint."""
    stem = Path(checkpoint).stem
    return {kind: Path(out) / f"{stem}.{kind}.onnx" for kind in (UNFOLDED, FOLDED)}


def _load_source(checkpoint: str | Path) -> _Source:
    from bnfold.checkpoint import load_checkpoint
    from export.metadata import sha256_file
    from export.networks import served_networks

    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    if ckpt.folded:
        raise ExportError(
            f"{path} holds an already folded model (written by python -m bnfold): export needs "
            "the training checkpoint it came from, for the unfolded file and the reference"
        )
    sha256 = sha256_file(path)
    try:
        networks = served_networks(ckpt, str(path))
    except ValueError as e:  # a broken 'ood' entry
        raise ExportError(f"{path}: {e}") from e
    report = networks.fold_report
    log.info(
        "checkpoint %s (%s, sha256 %s…): %d/%d BatchNorms folded; outputs %s",
        path,
        ckpt.arch,
        sha256[:12],
        report.num_folded,
        networks.num_bn,
        ", ".join(networks.output_names),
    )
    return _Source(path, sha256, ckpt, networks)


def _prepare_out(out: Path) -> None:
    """Fail before any work when ``out`` cannot take files (not after a minute of it)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ExportError(f"cannot write to --out {out}: {e.strerror or e}") from e


def _check_file(kind: str, proto, source: _Source, path: Path | str) -> None:
    """The file's outputs are the served network's (an older export may lack ``ood_score``), and
    its BatchNorm count the ``kind``'s (the int8 file is not counted)."""
    from export.onnx_writer import count_ops

    found = tuple(o.name for o in proto.graph.output)
    if found != source.networks.output_names:
        raise ExportError(
            f"{path} has outputs {', '.join(found)}, expected "
            f"{', '.join(source.networks.output_names)}: re-export with python -m export"
        )
    if kind == INT8:
        return
    num_bn = source.networks.num_bn
    found, expected = count_ops(proto, "BatchNormalization"), num_bn if kind == UNFOLDED else 0
    if kind == FOLDED and source.networks.fold_report.num_folded < num_bn:
        expected = found  # bnfold left some BatchNorms and said why in the fold report
        log.warning("%s keeps %d BatchNormalization node(s) that bnfold left", path, found)
    if found != expected:
        raise ExportError(
            f"{path} has {found} BatchNormalization node(s), expected {expected} for the "
            f"{kind} model: re-export with python -m export"
        )


def export_checkpoint(cfg: ExportConfig) -> ExportResult:
    """Prove, then publish, both ONNX files and ``parity.json``/``parity.md``; then Triton.

    When parity fails nothing is published: the result's ``files`` and ``written`` are empty
    and the report says what failed.
    """
    from export.onnx_writer import check_opset

    check_opset(cfg.opset, cfg.exporter)
    out = Path(cfg.out)
    _prepare_out(out)
    source = _load_source(cfg.checkpoint)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        staged = _write_and_prove(cfg, source, Path(tmp))
        if not staged.parity.passed:
            return ExportResult({}, staged.parity)
        # Report last: until it is in place, the files it proves are not served.
        files = {kind: out / path.name for kind, path in staged.files.items()}
        # A stale int8 file of an earlier export must not sit beside files it was not made from.
        if INT8 not in files:
            int8_path(out, cfg.checkpoint).unlink(missing_ok=True)
        for path in staged.written:
            os.replace(path, out / path.name)
    written = [out / p.name for p in staged.written]
    log.info("published %s", ", ".join(str(p) for p in written))
    if cfg.triton_repo is not None:
        from export.triton import write_repository

        stem = Path(cfg.checkpoint).stem
        written += write_repository(
            cfg.triton_repo,
            {f"{stem}_{kind}": files[kind] for kind in (UNFOLDED, FOLDED)},
            list(source.ckpt.class_names),
            max_batch_size=cfg.triton_max_batch_size,
            cpu_only=cfg.triton_cpu_only,
        )
    return ExportResult(files, staged.parity, written)


def _write_and_prove(cfg: ExportConfig, source: _Source, stage: Path) -> ExportResult:
    """Both ONNX files and the parity report in ``stage``, the files first."""
    from export import metadata, onnx_writer
    from export.parity_run import write_parity

    files = onnx_paths(stage, cfg.checkpoint)
    models = {UNFOLDED: source.networks.unfolded, FOLDED: source.networks.folded}
    for kind in tqdm(files, desc="export", unit="file", leave=False, disable=None):
        proto = onnx_writer.to_onnx(
            models[kind],
            source.ckpt.input_size,
            opset=cfg.opset,
            exporter=cfg.exporter,
            output_names=source.networks.output_names,
        )
        _check_file(kind, proto, source, files[kind].name)
        meta = metadata.build_metadata(
            source.ckpt,
            checkpoint_sha256=source.sha256,
            fold_report=source.networks.fold_report.to_dict(),
            folded=kind == FOLDED,
            exporter=cfg.exporter,
            ood=source.networks.ood,
        )
        proto = metadata.with_metadata(proto, meta)
        onnx_writer.check(proto)
        onnx_writer.save(proto, files[kind])
        log.info("wrote %s (opset %d, %s exporter)", files[kind].name, cfg.opset, cfg.exporter)
    int8_error = _write_int8(cfg, source, files, stage)
    report = _prove(source, files, cfg.data, int8_error)
    return ExportResult(files, report, [*files.values(), *write_parity(report, stage)])


def _prove(
    source: _Source, files: dict[str, Path], data: str | None, int8_error: str | None = None
):
    """The parity report of ``files``, recording what it proves (checkpoint and file sha256).

    ``int8_error``: why quantisation failed (the export then fails too).
    """
    from export.int8_proof import Int8Proof, prove_int8
    from export.metadata import sha256_file
    from export.parity_run import prove_parity

    networks = source.networks
    inputs = _inputs(source, data)
    fp32 = {k: files[k] for k in (UNFOLDED, FOLDED)}
    report = prove_parity(
        networks.unfolded,
        networks.folded,
        fp32,
        inputs,
        output_names=networks.output_names,
        ood=networks.ood,
    )
    if INT8 in files:
        threshold = None if networks.ood is None else networks.ood.threshold
        report.int8 = prove_int8(files[FOLDED], files[INT8], inputs, threshold)
    elif int8_error is not None:
        name = int8_path(".", source.path).name
        report.int8 = Int8Proof(name, status="failed to quantise", reason=int8_error)
    else:
        reason = "no training images to calibrate on (pass --data DIR)"
        report.int8 = Int8Proof(int8_path(".", source.path).name, status="not run", reason=reason)
    report.checkpoint_sha256 = source.sha256
    report.files = {k: {"name": p.name, "sha256": sha256_file(p)} for k, p in files.items()}
    return report


def verify_files(cfg: ExportConfig) -> ExportResult:
    """Re-check existing ONNX files against the checkpoint; write nothing.

    A file exported from another checkpoint (its ``checkpoint_sha256`` differs) is an error, not
    a parity failure: comparing it would only prove that two different models differ.
    """
    from export import metadata, onnx_writer

    source = _load_source(cfg.checkpoint)
    files = onnx_paths(cfg.out, cfg.checkpoint)
    if int8_path(cfg.out, cfg.checkpoint).is_file():
        files[INT8] = int8_path(cfg.out, cfg.checkpoint)
    for kind, path in files.items():
        proto = onnx_writer.load(path)
        recorded = metadata.read_metadata(proto).get(metadata.CHECKPOINT_SHA256)
        if recorded != source.sha256:
            raise ExportError(
                f"{path} was exported from a checkpoint with sha256 {str(recorded)[:12]}…, but "
                f"{source.path} has sha256 {source.sha256[:12]}…: re-export it with "
                f"python -m export --checkpoint {source.path}"
            )
        onnx_writer.check(proto)
        _check_file(kind, proto, source, path)
    return ExportResult(files, _prove(source, files, cfg.data))


def _write_int8(
    cfg: ExportConfig, source: _Source, files: dict[str, Path], stage: Path
) -> str | None:
    """Quantise the staged folded file into ``files["int8"]``, calibrated on the train split.

    Without the training images (the checkpoint travelled without its data) no int8 file is
    made; the parity report says so. Returns why quantisation failed, or None: the quantiser
    refuses some models (a NaN weight fails its scale assertion), and that is a failed
    export, reported with the other rows, not a traceback.
    """
    from export.inputs import train_images
    from export.quantize import quantize_folded
    from export.runtimes.errors import first_line

    images = train_images(source.ckpt, cfg.data)
    if images is None:
        log.warning("no training images here: no int8 file (pass --data DIR to make one)")
        return None
    target = int8_path(stage, cfg.checkpoint)
    try:
        files[INT8] = quantize_folded(files[FOLDED], target, images.numpy())
    except (AssertionError, ValueError, RuntimeError) as e:  # onnxruntime.quantization's types
        target.unlink(missing_ok=True)
        return f"{type(e).__name__}: {first_line(e)}"
    return None


def _inputs(source: _Source, data: str | None):
    from export.inputs import data_inputs, random_inputs

    return data_inputs(source.ckpt, data) + random_inputs(source.ckpt.input_size)
