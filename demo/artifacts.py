"""Find the files the demo serves, and say which command makes any that is missing or unproven.

``python -m export --checkpoint DIR/NAME.pt --out ONNX_DIR`` writes ``ONNX_DIR/NAME.unfolded.onnx``,
``ONNX_DIR/NAME.folded.onnx`` and the ``parity.json`` that proves them for that checkpoint. The
demo serves only proven files (:func:`export.proof.proven_files`): a file never proven, proven
for another checkpoint or changed since is refused, as is a demo that would run PyTorch from one
checkpoint and ONNX from another (differences folding did not cause).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CHECKPOINT = "artifacts/bn-lenet.pt"
DEFAULT_ONNX_DIR = "artifacts/onnx"


class ArtifactError(FileNotFoundError):
    """A file the demo needs is missing or unproven; the message names the fixing command."""


@dataclass(frozen=True)
class Artifacts:
    checkpoint: Path
    unfolded_onnx: Path
    folded_onnx: Path
    int8_onnx: Path | None = None  # when the export proved one (it needs the training images)


def add_artifact_flags(parser: argparse.ArgumentParser, onnx_files: str) -> None:
    """``--checkpoint`` and ``--onnx-dir`` (what :func:`find_artifacts` takes), as the demo and
    ``python -m serve`` both take them; ``onnx_files`` names the files the tool reads."""
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help=f"training checkpoint the ONNX files came from (default: {DEFAULT_CHECKPOINT})",
    )
    parser.add_argument(
        "--onnx-dir",
        default=DEFAULT_ONNX_DIR,
        help=f"folder with {onnx_files} from python -m export (default: {DEFAULT_ONNX_DIR})",
    )


def find_artifacts(checkpoint: str | Path, onnx_dir: str | Path) -> Artifacts:
    """The checkpoint and both proven ONNX files, or :class:`ArtifactError` with a one-line fix."""
    from export.errors import ExportError
    from export.pipeline import FOLDED, INT8, UNFOLDED
    from export.proof import export_command, proven_files

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        train = f"python -m train --out {shlex.quote(str(checkpoint))}"
        raise ArtifactError(
            f"checkpoint {checkpoint} not found: make it with `{train}`, then "
            f"`{export_command(checkpoint, onnx_dir)}` (or run `make demo`, which makes both)"
        )
    try:
        files = proven_files(checkpoint, onnx_dir)
    except ExportError as e:
        raise ArtifactError(f"{e} (or run `make demo`)") from e
    return Artifacts(checkpoint, files[UNFOLDED], files[FOLDED], files.get(INT8))
