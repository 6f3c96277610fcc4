"""Which int8 recipe, in which runtime: every recipe against fp32, interleaved, at one batch size.

The study behind :class:`export.quantize.QuantConfig`'s defaults. Each recipe (QDQ or
QOperator, U8S8 or S8S8, per-channel or per-tensor, ``reduce_range``, conv1 or the Gemms left in
fp32) is quantised from the proven folded file on the checkpoint's training images, checked for
top-1 agreement with fp32 on the valid/test photos and random inputs, and timed beside the fp32
file in ONNX Runtime and, when installed, OpenVINO (same threads; interleaved rounds,
:mod:`export.runtimes.timing`). Ratios are fp32 latency / recipe latency in the same runtime,
and against ORT fp32 (the recommended fp32 runtime).

Example::

    python -m benchmarks.int8_recipes --checkpoint artifacts/bn-lenet.pt --onnx-dir artifacts/onnx

Exit codes: 0 done, 2 a usage error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

RECIPES = {
    "qdq-u8s8-per-channel (shipped)": {},
    "qdq-u8s8-per-tensor": {"per_channel": False},
    "qdq-s8s8-per-channel": {"activation_type": "QInt8"},
    "qdq-u8s8-reduce-range": {"reduce_range": True},
    "qdq-conv1-fp32": {"exclude": ("/conv1/Conv",)},
    "qdq-conv1-pool1-fp32": {"exclude": ("/conv1/Conv", "/pool/MaxPool")},
    "qdq-gemms-fp32": {"exclude": ("/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm")},
    "qoperator-u8s8-per-tensor": {"quant_format": "QOperator", "per_channel": False},
}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_recipes",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default="artifacts/bn-lenet.pt", help="training checkpoint")
    p.add_argument("--onnx-dir", default="artifacts/onnx", help="folder of the proven files")
    p.add_argument("--batch", type=int, default=256, help="batch size")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of every runtime")
    p.add_argument("--rounds", type=int, default=12, help="interleaved timing rounds")
    return p


def _bound(variant, path: Path, batch):
    from export.runtimes.open import Sources, open_variant

    runner = open_variant(variant, Sources(None, None, {"folded": path}))
    return runner if isinstance(runner, Exception) else runner.bind(batch)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from bnfold.checkpoint import CheckpointError, load_checkpoint
    from export.errors import ExportError
    from export.inputs import data_inputs, random_inputs, train_images
    from export.int8_proof import prove_int8
    from export.proof import proven_files
    from export.quantize import QuantConfig, quantize_folded
    from export.runtimes.timing import measure_interleaved, ratio, summarise
    from export.runtimes.variant import ONNXRUNTIME, OPENVINO, OpenVinoOptions, OrtOptions, Variant

    try:
        ckpt = load_checkpoint(args.checkpoint)
        folded = proven_files(args.checkpoint, args.onnx_dir)["folded"]
        calibration = train_images(ckpt)
        inputs = data_inputs(ckpt) + random_inputs(ckpt.input_size)
    except (CheckpointError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if calibration is None:
        print("error: the checkpoint's training images are not here", file=sys.stderr)
        return 2
    batch = np.random.default_rng(0).standard_normal((args.batch, 3, *ckpt.input_size), "f4")
    runtimes = {
        "ort": Variant(ONNXRUNTIME, True, options=OrtOptions("all", threads=args.threads)),
        "openvino": Variant(OPENVINO, True, options=OpenVinoOptions(threads=args.threads)),
    }
    print(f"`python -m benchmarks.int8_recipes {shlex.join(sys.argv[1:])}`\n")
    with tempfile.TemporaryDirectory(prefix="rmb-int8-") as tmp:
        files = {"fp32": folded}
        agreement = {}
        for name, fields in RECIPES.items():
            path = Path(tmp) / f"{len(files)}.onnx"
            files[name] = quantize_folded(folded, path, calibration.numpy(), QuantConfig(**fields))
            proof = prove_int8(folded, path, inputs)
            agreement[name] = (proof.agreement, proof.size_ratio)
        bound, skipped = {}, {}
        for rt, variant in runtimes.items():
            for name, path in files.items():
                b = _bound(variant, path, batch)
                if isinstance(b, Exception):
                    skipped[f"{rt} {name}"] = str(b)
                else:
                    bound[f"{rt} {name}"] = b
        groups = {k: k.split(" ")[0] for k in bound}
        samples = measure_interleaved(bound, rounds=args.rounds, warmup=3, groups=groups)
    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds\n")
    print("| runtime / recipe | agreement | size | median ms | × fp32 same runtime | × ORT fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, s in samples.items():
        rt, name = key.split(" ", 1)
        same = ratio(samples[f"{rt} fp32"], s)
        vs_ort = ratio(samples["ort fp32"], s)
        agree, size = agreement.get(name, (1.0, 1.0))
        print(
            f"| {key} | {100 * agree:.1f}% | {size:.2f}× | {1e3 * summarise(s).median_s:.3f} "
            f"| ×{same.value:.2f} [{same.p10:.2f}–{same.p90:.2f}] "
            f"| ×{vs_ort.value:.2f} [{vs_ort.p10:.2f}–{vs_ort.p90:.2f}] |"
        )
    for key, reason in skipped.items():
        print(f"- {key}: not run: {reason}")
    return 0


if __name__ == "__main__":
    from benchmarks.entry import run

    run(main, get_args_parser())
