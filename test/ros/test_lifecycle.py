"""Shutdown, duplicate names and stale frames of the gcf_refiner node (real nodes over Fast DDS).

The shutdown tests start the node as its own process (``python -m gcf_ros.ros.refiner_node``, as
``gcf-refiner`` does), feed it with a player node in the test, send SIGINT (Ctrl-C) and read the
exit status and stderr: the process must end within 2 s, with status 0 and no ERROR line, whether
a frame still has many seconds of refinement left or frames are streaming in.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from gcf_ros.eval.sequence import CoarseInstance, coarse_instances, load_sequence
from gcf_ros.ros.demo import stop_process
from gcf_ros.ros.player import Player

EXIT_S = 2.0  # Ctrl-C to process exit


@pytest.fixture(scope="module")
def frame():
    return load_sequence()[0]


def _instances(frame, n: int) -> list[CoarseInstance]:
    base = coarse_instances(frame, "medium", seed=3)
    picked = [base[k % len(base)] for k in range(n)]
    return [CoarseInstance(b.model_id, str(k), b.T_init, b.T_gt) for k, b in enumerate(picked)]


class NodeProcess:
    """``python -m gcf_ros.ros.refiner_node --ros-args <ros_args>`` with stderr in a file."""

    def __init__(self, err_path, ros_args: list[str]) -> None:
        args = [sys.executable, "-m", "gcf_ros.ros.refiner_node", "--ros-args", *ros_args]
        self.err_path = err_path
        self._err = err_path.open("w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._err)

    def stderr(self) -> str:
        return self.err_path.read_text()

    def interrupt(self) -> tuple[int | None, float]:
        """SIGINT; (exit status, or None if still running after 10 s and killed; seconds)."""
        return stop_process(self.proc)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def _params(**params) -> list[str]:
    return [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """Both shutdown tests' node processes, started together (their start-ups overlap): "long"
    is /gcf_refiner, "burst" is /burst/gcf_burst with its topics under /burst."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    reliable = {"input_reliability": "reliable"}
    long = _params(**reliable, iterations=300, diagnostics_period=0.2)
    burst = [*_params(**reliable, iterations=2), "-r", "__ns:=/burst", "-r", "__node:=gcf_burst"]
    started = {"long": NodeProcess(tmp / "long.txt", long),
               "burst": NodeProcess(tmp / "burst.txt", burst)}  # fmt: skip
    yield started
    for p in started.values():
        p.close()


def _player(ros, namespace: str = "", node: str = "gcf_refiner") -> tuple[Player, list[dict]]:
    """A player in the test's context, and the /diagnostics values of ``node`` it receives."""
    player = Player("lifecycle_player", overlays=False, context=ros.context, namespace=namespace)
    ros.executor.add_node(player)
    ros.nodes.append(player)
    diags: list[dict] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        status = msg.status[0]
        if status.name == f"{node}: refinement":
            diags.append({kv.key: float(kv.value) for kv in status.values})

    player.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    return player, diags


def _clean_exit(process: NodeProcess, rc, took) -> None:
    err = process.stderr()
    assert rc == 0, err
    assert took < EXIT_S, f"{took:.2f} s from SIGINT to exit"
    # "did not stop": the worker was not joined, the process ended without its clean-up
    for bad in ("ERROR", "terminate called", "Traceback", "did not stop"):
        assert bad not in err, err


def test_ctrl_c_during_a_long_refinement_and_a_duplicate_name(ros, frame, processes):
    """300 iterations of 4 detections: tens of seconds of refinement; SIGINT half a second in. A
    second node named gcf_refiner (the test's) is on the graph: the process warns about it."""
    twin = ros.node("gcf_refiner")
    assert twin.get_fully_qualified_name() == "/gcf_refiner"
    process = processes["long"]
    player, diags = _player(ros)
    assert ros.spin_until(player.connected, 60.0), process.stderr()
    player.publish_frame(frame, _instances(frame, 4), time.time())

    def refining() -> bool:  # received, taken by the worker, nothing published yet
        d = diags[-1] if diags else {}
        return d.get("detections_rate_hz", 0) > 0 and d.get("queued_frames", 1) == 0

    assert ros.spin_until(refining, 20.0), diags[-1:]
    ros.spin_until(lambda: False, 0.5)
    assert not player.collected.poses and diags[-1].get("frames_refined", 0) == 0
    assert ros.spin_until(lambda: "other node(s) named /gcf_refiner" in process.stderr(), 5.0)
    rc, took = process.interrupt()
    _clean_exit(process, rc, took)
    assert not player.collected.poses  # cancelled: nothing published


def test_ctrl_c_mid_burst(ros, frame, processes):
    """Frames at 30 Hz; SIGINT once results come back, while frames keep arriving."""
    process = processes["burst"]
    player, _ = _player(ros, namespace="burst")
    assert ros.spin_until(player.connected, 60.0), process.stderr()
    instances = _instances(frame, 2)
    t_next, interrupted = time.monotonic(), None
    deadline = t_next + 40.0
    while time.monotonic() < deadline and process.proc.poll() is None:
        if time.monotonic() >= t_next:
            player.publish_frame(frame, instances, time.time())
            t_next += 1 / 30
        ros.executor.spin_once(timeout_sec=0.002)
        if interrupted is None and len(player.collected.poses) >= 3:
            interrupted = time.monotonic()
            process.proc.send_signal(signal.SIGINT)
    assert interrupted is not None, "no results"
    rc = process.proc.wait(10.0)
    _clean_exit(process, rc, time.monotonic() - interrupted)


def test_frames_older_than_max_latency_are_not_refined(ros, frame, start_refiner):
    """A frame stamped 1.5 s ago with max_latency 1.0 is dropped and counted; max_latency (and
    min_confidence) set at run time are validated, and 5.0 lets the next old frame through."""
    running = start_refiner(input_reliability="reliable", iterations=1, max_latency=1.0)
    node = running.node
    player, _ = _player(ros)
    assert ros.spin_until(player.connected, 30.0)
    instances = _instances(frame, 1)
    fresh = player.publish_frame(frame, instances, time.time())
    assert ros.spin_until(lambda: fresh in player.collected.poses, 30.0)
    old = player.publish_frame(frame, instances, time.time() - 1.5)
    assert ros.spin_until(lambda: node.stats.counters["stale_dropped"] == 1, 10.0)
    ros.spin_until(lambda: False, 0.5)
    assert old not in player.collected.poses

    params = AsyncParameterClient(player, "gcf_refiner")
    assert params.wait_for_services(10.0)
    for name, bad in [("max_latency", 0.0), ("max_latency", math.nan),
                      ("min_confidence", 5.0), ("min_confidence", math.nan)]:  # fmt: skip
        future = params.set_parameters([Parameter(name, value=bad)])
        assert ros.spin_until(future.done, 10.0)
        assert not future.result().results[0].successful, (name, bad)
    assert (node.params.max_latency, node.params.min_confidence) == (1.0, None)
    future = params.set_parameters([Parameter("max_latency", value=5.0)])
    assert ros.spin_until(future.done, 10.0) and future.result().results[0].successful
    old = player.publish_frame(frame, instances, time.time() - 1.5)
    assert ros.spin_until(lambda: old in player.collected.poses, 30.0)
    assert node.stats.counters["stale_dropped"] == 1
