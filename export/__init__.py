"""ONNX export of the unfolded and folded networks, with parity proofs."""
