"""The Ray Serve deployment: HTTP routes over :class:`serve.model.ServedModel`, batched.

One deployment is both the HTTP ingress and the model, so a request costs one hop from Ray
Serve's proxy to a replica and no second hop to a model deployment. In the replica each request
decodes its image in a worker thread (PIL releases the GIL while decoding, so decodes overlap),
then waits in ``@serve.batch`` until the batch fills or ``batch_wait_ms`` passes; the batch is
one ONNX Runtime call. ``num_replicas`` replicas spread over the Ray cluster's CPUs.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from serve.config import DEFAULT_MAX_BATCH, ServeConfig
from serve.http import BadRequest, error, read_images, rejection_status

log = logging.getLogger(__name__)


@serve.deployment(name="predictor")
class Predictor:
    """``POST /predict`` (raw bytes or multipart) and ``GET /healthz``; anything else is a 4xx."""

    def __init__(self, config: ServeConfig) -> None:
        from serve.model import ServedModel

        self.config = config
        self.model = ServedModel(config.onnx_bytes, threads=config.ort_threads)
        self.pool = ThreadPoolExecutor(config.decode_threads, thread_name_prefix="decode")
        self.infer_pool = ThreadPoolExecutor(1, thread_name_prefix="infer")
        self.predict.set_max_batch_size(config.max_batch)
        self.predict.set_batch_wait_timeout_s(config.batch_wait_ms / 1e3)

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path == "/healthz":
            if request.method != "GET":
                return error(405, "use GET /healthz")
            return JSONResponse({"status": "ok", "classes": list(self.model.info.class_names)})
        if path != "/predict":
            return error(404, f"no route {path}: POST an image to /predict or GET /healthz")
        if request.method != "POST":
            return error(405, "use POST /predict with the image bytes as the body")
        try:
            images = await read_images(
                request, max_bytes=self.config.max_body_bytes, max_files=self.config.max_batch
            )
        except BadRequest as e:
            return error(e.status, str(e))
        results = await asyncio.gather(*(self._one(u.data) for u in images.uploads))
        if images.many:  # 200 with a list: a refused file gets its error in its own place
            named = [
                {"file": u.name, **answer}
                for u, (_, answer) in zip(images.uploads, results, strict=True)
            ]
            return JSONResponse(named)
        ((status, answer),) = results
        return JSONResponse(answer, status_code=status)

    async def _one(self, data: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, answer) for one image; a refused image gets ``{"error": ...}``."""
        from demo.images import ImageRejected

        loop = asyncio.get_running_loop()
        try:
            pixels = await loop.run_in_executor(self.pool, self.model.pixels, data)
        except ImageRejected as e:
            return rejection_status(e), {"error": str(e)}
        return 200, await self.predict(pixels)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=0.002)
    async def predict(self, pixels: list[np.ndarray]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.infer_pool, self.model.predict, pixels)


def build(config: ServeConfig, *, replicas: int = 1, cpus_per_replica: float = 1.0) -> Any:
    """The bound application ``serve.run`` deploys."""
    return Predictor.options(
        num_replicas=replicas,
        # Enough requests in flight per replica to fill a batch while the last one runs.
        max_ongoing_requests=max(2 * config.max_batch, 32),
        ray_actor_options={"num_cpus": cpus_per_replica},
    ).bind(config)
