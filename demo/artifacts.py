"""Find the files the demo serves, and say which command makes any that is missing or stale.

``python -m export --checkpoint DIR/NAME.pt --out ONNX_DIR`` writes ``ONNX_DIR/NAME.unfolded.onnx``
and ``ONNX_DIR/NAME.folded.onnx``, each recording the sha256 of the checkpoint it came from. A
demo that ran PyTorch from one checkpoint and ONNX from another would report differences that
folding did not cause, so stale files are refused too.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path


class ArtifactError(FileNotFoundError):
    """A file the demo needs is missing or out of date; the message names the fixing command."""


@dataclass(frozen=True)
class Artifacts:
    checkpoint: Path
    unfolded_onnx: Path
    folded_onnx: Path


def onnx_paths(checkpoint: str | Path, onnx_dir: str | Path) -> tuple[Path, Path]:
    """Where export writes the unfolded and folded files for ``checkpoint`` (export names them)."""
    from export.pipeline import FOLDED, UNFOLDED
    from export.pipeline import onnx_paths as exported_paths

    files = exported_paths(onnx_dir, checkpoint)
    return files[UNFOLDED], files[FOLDED]


def export_command(checkpoint: str | Path, onnx_dir: str | Path) -> str:
    return (
        f"python -m export --checkpoint {shlex.quote(str(checkpoint))} "
        f"--out {shlex.quote(str(onnx_dir))}"
    )


def find_artifacts(
    checkpoint: str | Path, onnx_dir: str | Path, *, check_fresh: bool = True
) -> Artifacts:
    """The checkpoint and both ONNX files, or :class:`ArtifactError` with a one-line fix."""
    checkpoint, onnx_dir = Path(checkpoint), Path(onnx_dir)
    export = export_command(checkpoint, onnx_dir)
    if not checkpoint.is_file():
        train = f"python -m train --out {shlex.quote(str(checkpoint))}"
        raise ArtifactError(
            f"checkpoint {checkpoint} not found: make it with `{train}`, then `{export}` "
            "(or run `make demo`, which makes both)"
        )
    unfolded, folded = onnx_paths(checkpoint, onnx_dir)
    for path in (unfolded, folded):
        if not path.is_file():
            raise ArtifactError(f"{path} not found: make it with `{export}` (or run `make demo`)")
    if check_fresh:
        _check_fresh(checkpoint, (unfolded, folded), export)
    return Artifacts(checkpoint, unfolded, folded)


def _check_fresh(checkpoint: Path, files: tuple[Path, ...], export: str) -> None:
    import onnx

    from export.metadata import CHECKPOINT_SHA256, sha256_file

    digest = None
    for path in files:
        try:
            model = onnx.load_model(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and friends
            raise ArtifactError(
                f"{path} is not a readable ONNX file ({type(e).__name__}): re-make it with "
                f"`{export}`"
            ) from e
        recorded = {p.key: p.value for p in model.metadata_props}.get(CHECKPOINT_SHA256)
        if recorded is None:
            continue  # written by another tool: nothing to compare
        digest = digest or sha256_file(checkpoint)
        if recorded != digest:
            raise ArtifactError(
                f"{path} was exported from a different checkpoint than {checkpoint} (sha256 "
                f"differs): re-export with `{export}`"
            )
