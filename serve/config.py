"""What a deployment is configured with: plain values, importable without Ray (for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

APP_NAME = "rmb-bnfold"
DEFAULT_MAX_BATCH = 64
DEFAULT_BATCH_WAIT_MS = 2.0
DEFAULT_MAX_BODY_MB = 10.0
DEFAULT_DECODE_THREADS = 2


@dataclass(frozen=True)
class ServeConfig:
    """Everything a replica needs, passed to it by value (it may run on another machine)."""

    onnx_name: str
    onnx_bytes: bytes  # the file itself, so a replica on another machine needs no shared disk
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * 2**20)
    decode_threads: int = DEFAULT_DECODE_THREADS
    ort_threads: int = 1


#: ``--ingress``: how HTTP reaches a replica. ``haproxy``: Ray Serve's high-throughput mode (its
#: bundled HAProxy on ``--port`` forwards to each replica's own HTTP server); ``proxy``: Serve's
#: Python proxy actor, which parses HTTP and hands the request to a replica over Ray.
INGRESS_MODES = ("haproxy", "proxy")
DEFAULT_INGRESS = "proxy"  # binds only --host; haproxy also opens :8404 and :9101 everywhere


def ingress_env(mode: str, workdir: str) -> dict[str, str]:
    """The ``RAY_SERVE_*`` settings for ``mode``; Ray reads them when its processes start.

    Measured here (2 shared cores, concurrency 16): the Python proxy costs ~4.4 ms CPU per
    request on top of the replica's ~6.9; HAProxy (C) ~0.5, and the replica's own server with
    Serve's throughput-optimised settings ~3.5. HAProxy's config, admin socket and state files go
    under ``workdir`` (Ray's default is a fixed folder in /tmp, shared by every Serve on a host).
    """
    if mode not in INGRESS_MODES:
        raise ValueError(f"--ingress must be one of {', '.join(INGRESS_MODES)}, got {mode!r}")
    if mode == "proxy":
        return {}
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        # gRPC between Serve actors, user code and router on the replica's own event loop,
        # Serve's logging to stderr off, GC frozen after start-up, direct ingress.
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        # A stopped replica drains for this long (default 30 s, which would hold up SIGTERM).
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
        "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{workdir}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{workdir}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": workdir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{workdir}/server-state",
    }
