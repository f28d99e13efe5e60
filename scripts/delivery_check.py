"""Delivery of camera frames to gcf_refiner between processes, measured (issue 18).

    python scripts/delivery_check.py fps [--node-args "-p input_reliability:=best_effort"]
        [--reliability reliable|best_effort] [--profile] [--rate 30] [--seconds 10]
    python scripts/delivery_check.py heldout

Both start ``gcf-refiner`` in its own process (packaged config; ``--node-args`` adds ROS
arguments) and a camera driver in another (``gcf_ros.ros.feed``; ``--profile``: with
config/fastdds_large_messages.xml), on the environment's ROS_DOMAIN_ID.

- ``fps``: the bundled sequence (full-size bgr8 frames, camera_info and coarse detections, all
  stamped alike, as gcf-demo's player sends them) at ``--rate`` Hz for ``--seconds``. Reported:
  frames sent per second; frames delivered per second (the node's image rate on /diagnostics,
  the median over the stream); the detection arrays it dropped because their image never came
  (no_image, pending_full: under overload arrays are also lost unseen, so this undercounts); and
  refined frames per second. ``--detections empty`` leaves the node idle: transport alone.
- ``heldout``: the held-out-style check: the default node (no parameters), fed 8 LM-O test frames
  that are not bundled by a driver publishing reliable at 10 Hz, a detection array on a frame once
  the previous one is answered (a detector slower than the refiner): every array answered, with
  a pose for every detection. Exit status 0 when it passes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from gcf_ros.ros.qos import PROFILE_ENV, large_messages_profile
from gcf_ros_msgs.msg import RefinedPoseArray

LOST = ("no_image", "pending_full")


class _Graph:
    """The refiner process, and a listener of its answers and diagnostics in this one."""

    def __init__(self, node_args: list[str]) -> None:
        cmd = [sys.executable, "-m", "gcf_ros.ros.refiner_node"]
        cmd += ["--ros-args", *node_args] if node_args else []
        self.proc = subprocess.Popen(cmd, env=os.environ.copy())
        rclpy.init()
        self.node = rclpy.create_node("delivery_check")
        self.answers: dict[float, RefinedPoseArray] = {}
        self.diagnostics: list[tuple[float, dict[str, float]]] = []
        self.node.create_subscription(RefinedPoseArray, "refined_poses", self._on_answer, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def _on_answer(self, msg: RefinedPoseArray) -> None:
        self.answers[round(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec, 6)] = msg

    def _on_diag(self, msg: DiagnosticArray) -> None:
        values = {kv.key: float(kv.value) for kv in msg.status[0].values}
        self.diagnostics.append((time.monotonic(), values))

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition():
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def wait_up(self) -> None:
        if not self.spin_until(lambda: self.node.count_publishers("refined_poses") > 0, 120.0):
            raise RuntimeError("the refiner did not come up")
        self.spin_until(lambda: False, 1.0)

    def feed(self, args: list[str], profile: bool) -> dict:
        env = os.environ.copy()
        env.pop(PROFILE_ENV, None)
        if profile:
            env[PROFILE_ENV] = str(large_messages_profile())
        cmd = [sys.executable, "-m", "gcf_ros.ros.feed", *args]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        self.spin_until(lambda: proc.poll() is not None, 600.0)
        out = proc.communicate()[0].strip().splitlines()
        if proc.returncode != 0 or not out:
            raise RuntimeError(f"the feed failed (rc {proc.returncode})")
        return json.loads(out[-1])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure_fps(graph: _Graph, reliability: str, profile: bool, rate: float, seconds: float,
                detections: str = "coarse"):  # fmt: skip
    n = round(rate * seconds)
    args = ["--source", "demo", "--detections", detections, "--reliability", reliability,
            "--rate", str(rate), "--frames", str(n)]  # fmt: skip
    t0 = time.monotonic()
    result = graph.feed(args, profile)
    t_end = time.monotonic()
    graph.spin_until(lambda: False, 4.0)  # pending arrays expire (max_stamp_age), are counted
    final = graph.diagnostics[-1][1]
    rates = [v["image_rate_hz"] for t, v in graph.diagnostics if t0 + 6.0 <= t <= t_end]
    refined = sum(1 for s in result["detections"] if s in graph.answers)
    return {
        "sent_hz": round(rate, 1),
        "delivered_hz": round(sorted(rates)[len(rates) // 2], 1) if rates else None,
        "arrays_without_image": int(sum(final.get(k, 0.0) for k in LOST)),
        "arrays_sent": len(result["detections"]),
        "refined_hz": round(refined / seconds, 2),
        "adapted": result["adapted"],
    }


def heldout(graph: _Graph) -> bool:
    args = ["--source", "lmo", "--frames", "8", "--rate", "10", "--detections", "coarse",
            "--paced", "--reliability", "reliable", "--timeout", "60"]  # fmt: skip
    result = graph.feed(args, profile=False)
    graph.spin_until(lambda: False, 0.5)
    arrays = result["detections"]
    answered = [s for s in arrays if s in graph.answers]
    poses = [len(graph.answers[s].poses) for s in answered]
    accepted = sum(p.status != 2 for s in answered for p in graph.answers[s].poses)
    print(f"held-out check: {len(answered)} of {len(arrays)} detection arrays answered "
          f"({result['images']} images streamed), poses per answer {poses}, "
          f"{accepted} accepted")  # fmt: skip
    return len(answered) == len(arrays) == 8 and all(poses)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("mode", choices=("fps", "heldout"))
    p.add_argument("--node-args", default="", help="ROS arguments of the node, e.g. '-p a:=b'")
    p.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--profile", action="store_true", help="the sender gets the profile")
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--detections",
        choices=("coarse", "empty"),
        default="coarse",
        help="fps: empty arrays leave the node idle (transport alone)",
    )
    args = p.parse_args(argv)
    graph = _Graph(shlex.split(args.node_args))
    try:
        graph.wait_up()
        if args.mode == "heldout":
            return 0 if heldout(graph) else 1
        out = measure_fps(graph, args.reliability, args.profile, args.rate, args.seconds,
                          args.detections)  # fmt: skip
        setup = {"node_args": args.node_args, "sender": args.reliability,
                 "profile": args.profile, "detections": args.detections}  # fmt: skip
        print(json.dumps({**setup, **out}))
        return 0
    finally:
        graph.close()


if __name__ == "__main__":
    sys.exit(main())
