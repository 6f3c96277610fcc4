"""onnxruntime as a :class:`~export.runtimes.runner.Runner`: plain ``session.run`` or IO binding.

Plain runs call ``session.run(names, {input: array})`` as most users do: numpy in, new numpy
arrays out on every call. IO binding binds the input once as an ``OrtValue`` and has ORT write
into pre-allocated output ``OrtValue``\\ s, which removes the per-call conversions; on CUDA both
live on the GPU, so ``step`` times the device work and no host copies (``run_with_iobinding``
returns after ORT synchronises the provider's stream).
"""

from __future__ import annotations

import numpy as np

from export.runtimes.runner import Bound, Runner, logits_first


class OrtRunner(Runner):
    """One onnxruntime session (from :func:`export.runtimes.sessions.ort_session`)."""

    def __init__(self, variant, session) -> None:
        super().__init__(variant, session.get_providers()[0])
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = logits_first([o.name for o in session.get_outputs()])

    def bind(self, batch: np.ndarray) -> Bound:
        batch = np.ascontiguousarray(batch, np.float32)
        if self.variant.options.io_binding:
            return self._bound(batch)
        feed, names, session = {self.input_name: batch}, self.output_names, self.session
        out: dict[str, np.ndarray] = {}

        def step() -> None:
            out.update(zip(names, session.run(names, feed), strict=True))

        def read() -> dict[str, np.ndarray]:
            if not out:
                step()
            return {name: np.asarray(out[name], np.float32) for name in names}

        return Bound(step, read)

    def _bound(self, batch: np.ndarray) -> Bound:
        import onnxruntime as ort

        names, session, device = self.output_names, self.session, self.variant.device
        # The outputs' shapes: one plain run on the first image gives all but the batch axis.
        probes = session.run(names, {self.input_name: batch[:1]})
        x = ort.OrtValue.ortvalue_from_numpy(batch, device, 0)
        ys = [
            ort.OrtValue.ortvalue_from_shape_and_type(
                [batch.shape[0], *p.shape[1:]], np.float32, device, 0
            )
            for p in probes
        ]
        binding = session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x)
        for name, y in zip(names, ys, strict=True):
            binding.bind_ortvalue_output(name, y)

        def step(_keep: tuple = (x, ys)) -> None:  # the binding does not own the OrtValues
            session.run_with_iobinding(binding)

        def read() -> dict[str, np.ndarray]:  # copies CUDA outputs to the host; not timed
            values = binding.copy_outputs_to_cpu()
            return {n: np.asarray(v, np.float32) for n, v in zip(names, values, strict=True)}

        return Bound(step, read)
