"""Counters, rates and latency percentiles of the node, and the health verdict on them (no ROS).

Thread-safe: the subscription callbacks count inputs and drops, the worker thread records
outputs and latencies, the diagnostics timer reads a snapshot and judges it (:class:`Health`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        if not self._times:
            return 0.0
        span = max(now - self._times[0], 1e-3)
        return len(self._times) / max(span, min(self.window_s, 1.0))


class NodeStats:
    """Everything /diagnostics reports about the refiner node."""

    RATES = ("image", "detections", "output")

    def __init__(self, latency_window: int = 200, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self._rates = {k: RateMeter(rate_window_s) for k in self.RATES}
        self._latency_ms: deque[float] = deque(maxlen=latency_window)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def tick(self, rate: str) -> None:
        with self._lock:
            self._rates[rate].tick()

    def latency(self, ms: float) -> None:
        with self._lock:
            self._latency_ms.append(ms)

    def snapshot(self) -> dict[str, float]:
        """Rates (Hz), latency percentiles (ms) over the last frames, and all counters."""
        with self._lock:
            out: dict[str, float] = {f"{k}_rate_hz": m.rate() for k, m in self._rates.items()}
            lat = np.array(self._latency_ms, dtype=np.float64)
            for p in (50, 90, 99):
                out[f"latency_p{p}_ms"] = float(np.percentile(lat, p)) if lat.size else 0.0
            out.update({k: float(v) for k, v in sorted(self.counters.items())})
        return out


class Health:
    """The /diagnostics verdict on successive snapshots: ``error`` when the refinement worker has
    stopped, ``warn`` naming every problem counter that grew since the previous snapshot, else
    ``ok``. Rates (``*_hz``), latencies (``*_ms``) and the counters in ``NOT_PROBLEMS`` never warn
    (frames matched to a camera_info within the slop, or to the newest while K is unchanged, are
    counted but refined with the right K; ``depth_used`` counts the frames refined with depth).
    """

    NOT_PROBLEMS = frozenset({
        "frames_refined", "queued_frames", "pending_detections", "tracks", "empty_detections",
        "camera_info_inexact", "camera_info_newest", "depth_used",
    })  # fmt: skip

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def assess(self, snapshot: dict[str, float], worker_alive: bool) -> tuple[str, str]:
        """(level: ``ok``, ``warn`` or ``error``; message) of ``snapshot``, which becomes the
        reference of the next call."""
        problems = [
            k
            for k, v in snapshot.items()
            if k not in self.NOT_PROBLEMS
            and not k.endswith(("_hz", "_ms"))
            and v > self._last.get(k, 0.0)
        ]
        self._last = dict(snapshot)
        if not worker_alive:
            return "error", "refinement worker stopped"
        if problems:
            return "warn", "new: " + ", ".join(sorted(problems))
        return "ok", "ok"
