"""The refiner node end to end: a 30 Hz stream in, refined poses out (real rclpy nodes, Fast DDS).

For each number of detections per frame, a fresh ``gcf_refiner`` (packaged parameters, reliable
inputs so that no frame is lost in transport) runs on its own executor thread and context; a
stream node publishes the bundled LM-O frame (image, camera_info, CoarseDetectionArray with new
stamps) at ``rate_hz`` for ``duration_s`` and records when each frame's RefinedPoseArray comes
back. Reported per case: input and output rates (Hz), end-to-end latency percentiles (publish ->
refined poses received, ms, over the frames that were refined; the stamps are the publish times,
so this is stamp -> refined poses), frames dropped by the node's newest-frame queue and as older
than ``max_latency``, the node's own latency (image arrival -> publish) and the process RSS peak.

    python -m gcf_ros.ros.bench_node --detections 1 8 --seconds 8     # prints a table
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from gcf_ros.bench.timing import PeakRss
from gcf_ros.eval.sequence import CoarseInstance, coarse_instances, load_sequence
from gcf_ros.ros.player import Player
from gcf_ros.ros.refiner_node import GcfRefinerNode

DOMAIN_NOTE = "ROS_DOMAIN_ID and discovery range come from the environment"


@dataclass(frozen=True)
class NodeBenchConfig:
    """Detections per frame for each case, stream rate (Hz) and length (s)."""

    detections: tuple[int, ...] = (1, 4, 8)
    rate_hz: float = 30.0
    duration_s: float = 8.0
    threads: int = 1
    max_latency: float | None = None  # None: the node's default

    @classmethod
    def quick(cls) -> NodeBenchConfig:
        return cls(detections=(1, 8), duration_s=4.0)


def bench_node(config: NodeBenchConfig, progress: Callable[[str], None] = print) -> dict:
    """``{"rate_hz", "duration_s", "cases": {"<n>": {...}}}`` (see the module docstring)."""
    frame = load_sequence()[0]
    cases = {}
    for n in config.detections:
        progress(f"node: {n} detection(s) per frame at {config.rate_hz:.0f} Hz")
        cases[str(n)] = _one_case(frame, n, config)
    return {
        "rate_hz": config.rate_hz,
        "duration_s": config.duration_s,
        "threads": config.threads,
        "max_latency": config.max_latency,
        "note": DOMAIN_NOTE,
        "cases": cases,
    }


def _one_case(frame, n: int, config: NodeBenchConfig) -> dict:
    base = [coarse_instances(frame, "medium", seed=0)[k % 7] for k in range(n)]
    instances = [CoarseInstance(b.model_id, str(k), b.T_init, b.T_gt) for k, b in enumerate(base)]
    with PeakRss() as probe:
        graph = _Graph(config.threads, config.max_latency)
        try:
            graph.connect()
            graph.warm_up(frame, instances)
            sent, t_start = graph.stream(frame, instances, config.rate_hz, config.duration_s)
            snap = graph.node.stats.snapshot()
        finally:
            graph.close()
    received = graph.received
    done = [k for k in sent if k in received]
    latency = np.array([1e3 * (received[k] - sent[k]) for k in done])
    span = max(received[k] for k in done) - t_start if done else float("nan")
    pct = {f"p{p}": float(np.percentile(latency, p)) for p in (50, 90, 99)} if done else {}
    return {
        "detections": n,
        "frames_sent": len(sent),
        "frames_refined": len(done),
        "input_hz": len(sent) / config.duration_s,
        "output_hz": len(done) / span if done else 0.0,
        "latency_ms": pct,
        "node_latency_ms": {f"p{p}": snap[f"latency_p{p}_ms"] for p in (50, 90, 99)},
        "dropped_by_queue": int(snap.get("queue_dropped", 0)),
        "dropped_stale": int(snap.get("stale_dropped", 0)),
        "newest_refined": bool(sent) and max(sent) in received,
        "memory_mb": probe.memory.to_dict(),
    }


class _Graph:
    """A refiner node on its own executor thread, and the stream node driven by the caller."""

    def __init__(self, threads: int, max_latency: float | None = None) -> None:
        self.ctx_node, self.ctx_stream = Context(), Context()
        rclpy.init(context=self.ctx_node)
        rclpy.init(context=self.ctx_stream)
        params = [Parameter("input_reliability", value="reliable"),
                  Parameter("threads", value=threads)]  # fmt: skip
        if max_latency is not None:
            params.append(Parameter("max_latency", value=float(max_latency)))
        self.node = GcfRefinerNode(context=self.ctx_node, parameter_overrides=params)
        self.node_exec = SingleThreadedExecutor(context=self.ctx_node)
        self.node_exec.add_node(self.node)
        self.spinner = threading.Thread(target=_spin, args=(self.node_exec,), daemon=True)
        self.spinner.start()
        self.player = Player("gcf_bench_stream", overlays=False, context=self.ctx_stream)
        self.exec = SingleThreadedExecutor(context=self.ctx_stream)
        self.exec.add_node(self.player)
        self.received = self.player.collected.poses_received

    def connect(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.player.connected():
                return
            self.exec.spin_once(timeout_sec=0.05)
        raise RuntimeError("the refiner node did not connect")

    def publish(self, frame, instances, t_s: float) -> float:
        return self.player.publish_frame(frame, instances, t_s)

    def wait_for(self, key: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while key not in self.received and time.monotonic() < deadline:
            self.exec.spin_once(timeout_sec=0.01)

    def warm_up(self, frame, instances) -> None:
        """One frame through the whole pipeline first (first-call costs); retried once."""
        for _ in range(2):
            key = self.publish(frame, instances, time.time())
            self.wait_for(key, 15.0)
            if key in self.received:
                return

    def stream(self, frame, instances, rate_hz: float, duration_s: float):
        """Publish at ``rate_hz`` for ``duration_s``; ({stamp key: publish time}, start time)."""
        sent: dict[float, float] = {}
        period, t_next = 1.0 / rate_hz, time.monotonic()
        t_start, t_end = t_next, t_next + duration_s
        while time.monotonic() < t_end:
            if time.monotonic() >= t_next:
                sent[self.publish(frame, instances, time.time())] = time.monotonic()
                t_next += period
            self.exec.spin_once(timeout_sec=0.001)
        if sent:
            self.wait_for(max(sent), 30.0)  # the newest frame must come out
        return sent, t_start

    def close(self) -> None:
        self.player.destroy_node()
        self.exec.shutdown()
        self.node_exec.shutdown(timeout_sec=2.0)
        self.spinner.join(5.0)
        self.node.destroy_node()
        self.ctx_stream.try_shutdown()
        self.ctx_node.try_shutdown()


def _spin(executor) -> None:
    with contextlib.suppress(Exception):  # shut down under us at the end of a case
        executor.spin()


def _table(doc: dict) -> str:
    rows = ["detections  sent  refined  out_Hz  p50_ms  p99_ms  queue_drop  stale_drop"]
    for case in doc["cases"].values():
        lat = case["latency_ms"]
        rows.append(
            f"{case['detections']:>10}  {case['frames_sent']:>4}  {case['frames_refined']:>7}  "
            f"{case['output_hz']:>6.2f}  {lat.get('p50', float('nan')):>6.0f}  "
            f"{lat.get('p99', float('nan')):>6.0f}  {case['dropped_by_queue']:>10}  "
            f"{case['dropped_stale']:>10}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """The node benchmark alone: a table on stdout, the JSON document with ``--out``."""
    p = argparse.ArgumentParser(prog="python -m gcf_ros.ros.bench_node", description=__doc__)
    p.add_argument("--detections", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rate", type=float, default=30.0, help="Hz")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each stream")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-latency", type=float, default=None, help="s (default: the node's)")
    p.add_argument("--out", default=None, help="write the JSON document here")
    args = p.parse_args(argv)
    config = NodeBenchConfig(tuple(args.detections), args.rate, args.seconds, args.threads,
                             args.max_latency)  # fmt: skip
    doc = bench_node(config)
    print(_table(doc))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
