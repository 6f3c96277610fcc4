"""The Gradio app a user writes first: ``gr.Interface`` over the folded ONNX file, nothing more.

The load test's baseline (``python -m benchmarks.serving``): Gradio decodes the upload to PIL
itself, the function resizes, normalises and runs one ONNX Runtime call per request. It is not
hardened (no upload checks): it is what :mod:`serve` is measured against, not a service.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


def build(onnx_path: str):
    """The ``gr.Interface`` (``api_name="predict"``) over one ORT session."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    import onnxruntime as ort

    from demo.inference import softmax
    from serve.model import read_info
    from train.preprocess import normalize, to_uint8_tensor

    info = read_info(onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(image) -> dict[str, float]:
        pixels = to_uint8_tensor(image, info.input_size).unsqueeze(0)
        x = normalize(pixels, info.mean, info.std).numpy()
        probs = softmax(session.run(None, {name: x})[0])[0]
        return dict(zip(info.class_names, map(float, probs), strict=True))

    return gr.Interface(predict, gr.Image(type="pil"), gr.Label(), api_name="predict")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plain_interface")
    parser.add_argument("--onnx", required=True, help="folded ONNX file (required)")
    parser.add_argument("--port", type=int, default=7861, help="port (default: 7861)")
    args = parser.parse_args(argv)
    build(args.onnx).launch(server_name="127.0.0.1", server_port=args.port, ssr_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
