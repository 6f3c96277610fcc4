"""``python -m serve --address``: joining a Ray cluster that ``ray start --head`` started.

Protects: serve deploys onto an existing cluster and answers real photos as evaluation does; on
SIGTERM it exits 0 and deletes only its own application (the cluster keeps running, the route
stops answering); stopping the head then leaves no Ray process. Everything runs in a
loopback-only network namespace. The head is stopped by PID (every process in the namespace),
not with ``ray stop``: that command ends every Ray process on the machine, other users' too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_serve_server import URL, assert_answer, predict, wait_healthy

from serve.netns import LoopbackNamespace, NamespaceUnavailable

pytest_plugins = ["demo_fixtures"]
pytestmark = pytest.mark.realdata

HEAD = "127.0.0.1:6379"


def test_serve_joins_a_running_cluster_and_leaves_it_running(demo_artifacts, tmp_path):
    from test_serve_model import reference_probabilities

    photo = demo_artifacts.test_photos()[0][1]
    (expected,) = reference_probabilities(demo_artifacts.ckpt, [photo])
    names = list(demo_artifacts.ckpt.class_names)
    ray_cli = str(Path(sys.executable).parent / "ray")
    log = tmp_path / "serve.log"
    try:
        ns = LoopbackNamespace().__enter__()
    except NamespaceUnavailable as e:
        pytest.skip(f"the serve tests need a network namespace for Ray: {e}")
    try:
        head = ns.run(
            [ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6379",
             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert head.returncode == 0, head.stderr[-3000:]
        assert ns.ray_daemons(), "ray start --head left no raylet/gcs_server running"
        command = [
            sys.executable, "-m", "serve", "--address", HEAD,
            "--checkpoint", str(demo_artifacts.checkpoint),
            "--onnx-dir", str(demo_artifacts.onnx_dir),
            "--cpus-per-replica", "0.5",
        ]  # fmt: skip
        with open(log, "wb") as out:
            proc = ns.popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(ns, proc, log)
        status, answer = predict(ns, photo)
        assert status == 200, answer
        assert_answer(answer, dict(zip(names, expected.tolist(), strict=True)))

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert ns.ray_daemons(), "serve --address must leave the cluster running"
        after = ns.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
             "--data-binary", f"@{photo}", f"{URL}/predict"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert after.stdout != "200", "the application should be deleted when serve exits"
    finally:
        ended = ns.close()  # the head's daemons and workers, by PID
    assert ended, "the head's processes should have been running until the end"
    assert ns.ray_daemons() == [], "Ray daemons outlived the namespace"
