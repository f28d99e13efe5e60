#!/usr/bin/env python
"""Soak run: the default ``gcf_refiner`` in its own process, fed at 10 Hz for ten minutes.

A player node in this process publishes the bundled LM-O frame (camera_info, a bgr8 image as
camera drivers send it, reliable, and a CoarseDetectionArray; every stamp is the publish time) at
``--rate`` for ``--duration`` seconds, and collects ``refined_poses`` and the node's
``/diagnostics``. Printed at the end, as a table (and as JSON with ``--out``):

- memory: the node process's RSS after the warm-up frame, at the end, its peak, the growth over
  the run and over its second half (the allocator settles in the first);
- latency: stamp -> refined poses received, p50/p90/p99/max (ms), over the answered frames;
- losses: frames sent, answered, unanswered, and every counter the node reports on /diagnostics
  (queue_dropped, stale_dropped, no_image, errors, ...); ``unexplained`` is unanswered minus the
  node's frame-level drop counters (0 when every loss is counted);
- shutdown: the exit status and seconds from SIGINT to exit.

    source env.sh && python scripts/soak.py                     # 600 s at 10 Hz, 1 detection
    python scripts/soak.py --duration 20 --detections 4 --out out/soak.json
    python scripts/soak.py -- -p input_reliability:=reliable    # extra arguments for the node

Set ROS_DOMAIN_ID so that no other graph feeds or watches the node.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from gcf_ros.eval.sequence import CoarseInstance, coarse_instances, load_sequence
from gcf_ros.ros.demo import stop_process
from gcf_ros.ros.player import Player

# /diagnostics counters that stand for a detection array not answered: dropped while matching
# (stale, no_image, pending_full), by the worker (queue_dropped, stale_dropped), refused when
# refined (no_camera_info, size_mismatch, bad_image), or failed (errors). Refusals of one
# detection ("rejected", "unknown_model", ...) are counted but the frame is still answered.
FRAME_LOSSES = ("stale", "no_image", "pending_full", "queue_dropped", "stale_dropped",
                "no_camera_info", "size_mismatch", "bad_image", "errors")  # fmt: skip


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Soak:
    def __init__(self, node_args: list[str], detections: int) -> None:
        cmd = [sys.executable, "-m", "gcf_ros.ros.refiner_node", *node_args]
        self.proc = subprocess.Popen(cmd, env=os.environ.copy())
        rclpy.init()
        self.player = Player("gcf_soak_player", overlays=False)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.player)
        self.diagnostics: dict[str, float] = {}
        self.baseline: dict[str, float] = {}  # the counters when the stream starts
        self.player.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.frame = load_sequence()[0]
        base = coarse_instances(self.frame, "medium", seed=0)
        picked = [base[k % len(base)] for k in range(detections)]
        self.instances = [CoarseInstance(b.model_id, str(k), b.T_init, b.T_gt)
                          for k, b in enumerate(picked)]  # fmt: skip

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": refinement"):
                self.diagnostics = {kv.key: float(kv.value) for kv in status.values}

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def warm_up(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while not self.player.connected():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise SystemExit("soak: the refiner node did not come up")
            self.executor.spin_once(timeout_sec=0.05)
        self.spin_for(1.0)
        spin = lambda: self.executor.spin_once(timeout_sec=0.05)  # noqa: E731
        if self.player.play(self.frame, self.instances, spin, timeout=60.0) is None:
            raise SystemExit("soak: no answer to the warm-up frame")
        self.spin_for(2.0)  # a /diagnostics after the warm-up: the baseline of the counters
        self.baseline = dict(self.diagnostics)

    def stream(self, rate: float, duration: float) -> tuple[dict, list[tuple[float, float]]]:
        """Publish at ``rate`` for ``duration``; ({stamp: publish time}, [(t, RSS MB)])."""
        sent: dict[float, float] = {}
        rss: list[tuple[float, float]] = []
        t0 = t_next = t_rss = time.monotonic()
        while (now := time.monotonic()) < t0 + duration:
            if now >= t_next:
                sent[self.player.publish_frame(self.frame, self.instances, time.time())] = now
                t_next += 1.0 / rate
            if now >= t_rss:
                rss.append((now - t0, _rss_mb(self.proc.pid)))
                t_rss += 1.0
            self.executor.spin_once(timeout_sec=0.002)
        self.spin_for(5.0)  # the last answers and a final /diagnostics
        rss.append((time.monotonic() - t0, _rss_mb(self.proc.pid)))
        return sent, rss

    def stop(self) -> tuple[int | None, float]:
        status, took = stop_process(self.proc)
        self.player.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown()
        return status, took


def report(soak: Soak, sent: dict, rss: list, stop: tuple, args) -> dict:
    received = soak.player.collected.poses_received
    answered = [k for k in sent if k in received]
    lat = np.array([1e3 * (received[k] - sent[k]) for k in answered])
    pct = {f"p{p}": float(np.percentile(lat, p)) for p in (50, 90, 99)} if lat.size else {}
    if lat.size:
        pct["max"] = float(lat.max())
    mb = np.array([m for _, m in rss])
    half = mb[len(mb) // 2 :]
    gauges = ("queued_frames", "pending_detections", "tracks")  # levels, not counts
    counters = {k: v - soak.baseline.get(k, 0.0) for k, v in soak.diagnostics.items()
                if not k.endswith(("_hz", "_ms")) and k not in gauges}  # fmt: skip
    counted = sum(int(counters.get(k, 0)) for k in FRAME_LOSSES)
    return {
        "duration_s": args.duration, "rate_hz": args.rate, "detections": args.detections,
        "node_args": args.node_args,
        "rss_mb": {"start": float(mb[0]), "end": float(mb[-1]), "peak": float(mb.max()),
                   "growth": float(mb[-1] - mb[0]),
                   "growth_second_half": float(half[-1] - half[0])},
        "latency_ms": pct,
        "frames": {"sent": len(sent), "answered": len(answered),
                   "unanswered": len(sent) - len(answered),
                   "unexplained": len(sent) - len(answered) - counted},
        "node_counters": counters,
        "shutdown": {"status": stop[0], "seconds": stop[1]},
    }  # fmt: skip


def print_table(doc: dict) -> None:
    rows = [
        ("run", f"{doc['duration_s']:.0f} s at {doc['rate_hz']:g} Hz, "
                f"{doc['detections']} detection(s) per frame"),
        *((f"rss {k} (MB)", f"{v:.0f}") for k, v in doc["rss_mb"].items()),
        *((f"latency {k} (ms)", f"{v:.0f}") for k, v in doc["latency_ms"].items()),
        *((f"frames {k}", str(v)) for k, v in doc["frames"].items()),
        *((f"node: {k}", f"{v:g}") for k, v in sorted(doc["node_counters"].items())),
        ("shutdown", f"status {doc['shutdown']['status']}, {doc['shutdown']['seconds']:.2f} s"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    p.add_argument("--duration", type=float, default=600.0, help="seconds of streaming")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second")
    p.add_argument("--detections", type=int, default=1, help="detections per frame")
    p.add_argument("--out", default=None, help="also write the numbers here (JSON)")
    p.add_argument("node_args", nargs="*", help="after --: arguments for gcf_refiner")
    args = p.parse_args(argv)
    soak = Soak(args.node_args, args.detections)
    try:
        soak.warm_up()
        sent, rss = soak.stream(args.rate, args.duration)
    finally:
        stop = soak.stop()
    doc = report(soak, sent, rss, stop, args)
    print_table(doc)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if doc["frames"]["unexplained"] == 0 and stop[0] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
