"""Is there a passing parity proof for these ONNX files of this checkpoint? (``parity.json``)

``python -m export`` writes both ONNX files and ``parity.json`` only after parity passed, and
``parity.json`` records the sha256 of the checkpoint and of each file it proved. Whoever serves
or times the files (the demo, the benchmarks) calls :func:`proven_files` first: a file that was
never proven, proven for another checkpoint, or changed since, is refused with the command that
makes a proven one.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from export.errors import ExportError


def export_command(checkpoint: str | Path, out: str | Path) -> str:
    """The command that (re)makes proven files of ``checkpoint`` in ``out``."""
    return (
        f"python -m export --checkpoint {shlex.quote(str(checkpoint))} "
        f"--out {shlex.quote(str(out))}"
    )


def proven_files(checkpoint: str | Path, out: str | Path) -> dict[str, Path]:
    """``{"unfolded": path, "folded": path}`` in ``out``, or ExportError with a one-line fix.

    Plus ``"int8"`` when ``parity.json`` proves an int8 file (an export without the training
    images makes none; older exports predate it).
    """
    from export.metadata import sha256_file
    from export.parity_run import PARITY_JSON
    from export.pipeline import INT8, int8_path, onnx_paths

    files = onnx_paths(out, checkpoint)
    fix = f"make them with `{export_command(checkpoint, out)}`"
    for path in files.values():
        if not path.is_file():
            raise ExportError(f"{path} not found: {fix}")
    proof_path = Path(out) / PARITY_JSON
    try:
        proof = json.loads(proof_path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{proof_path} not found: the ONNX files are unproven; {fix}") from None
    except (OSError, ValueError) as e:
        raise ExportError(f"{proof_path} is unreadable ({type(e).__name__}): {fix}") from e
    if not isinstance(proof, dict) or proof.get("passed") is not True:
        raise ExportError(f"{proof_path} does not record a passing parity run: {fix}")
    if proof.get("checkpoint_sha256") != sha256_file(checkpoint):
        raise ExportError(
            f"{proof_path} proves files of another checkpoint than {checkpoint} (sha256 "
            f"differs): {fix}"
        )
    recorded = proof.get("files") or {}
    if INT8 in recorded:
        files[INT8] = int8_path(out, checkpoint)
    for kind, path in files.items():
        entry = recorded.get(kind) or {}
        if (
            not path.is_file()
            or entry.get("name") != path.name
            or entry.get("sha256") != sha256_file(path)
        ):
            raise ExportError(f"{path} is not the file {proof_path} proved: {fix}")
    return files
