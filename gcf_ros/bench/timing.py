"""Measuring helpers of ``gcf-bench``: sample statistics, peak memory, the machine's description.

Peak memory is the resident set size (RSS) of this process, which sees what torch, open3d and
PyTorch3D allocate outside Python (``tracemalloc`` sees none of it). :class:`PeakRss` resets the
kernel's high-water mark before a case (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and
reads it afterwards (``VmHWM`` in ``/proc/self/status``): the exact peak, however short. Where
the reset is refused it falls back to sampling ``/proc/self/statm`` every millisecond from a thread,
which can miss spikes shorter than that. Before each case freed heap is handed back to the system
(glibc ``malloc_trim``) so that the case's growth is not hidden by memory a previous case freed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from gcf_ros.gcf.placement import check_device_present

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20


@dataclass(frozen=True)
class Stats:
    """Median and 90th percentile (linear interpolation) of ``n`` samples, milliseconds."""

    median: float
    p90: float
    n: int

    @classmethod
    def of_seconds(cls, samples_s: list[float] | np.ndarray) -> Stats:
        """Statistics of durations in seconds, reported in ms; NaN for no samples."""
        ms = 1e3 * np.asarray(samples_s, dtype=np.float64)
        if ms.size == 0:
            return cls(float("nan"), float("nan"), 0)
        return cls(float(np.median(ms)), float(np.percentile(ms, 90)), int(ms.size))

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "p90": self.p90}


@dataclass(frozen=True)
class Memory:
    """RSS of one case, MB: before it, its peak, and the growth (peak - before)."""

    rss_before: float
    peak_rss: float

    @property
    def delta(self) -> float:
        return self.peak_rss - self.rss_before

    def to_dict(self) -> dict[str, float]:
        return {"rss_before": self.rss_before, "peak_rss": self.peak_rss, "delta": self.delta}


def rss_mb() -> float:
    """Current resident set size of this process, MB (NaN where /proc is absent)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_MB
    except (OSError, IndexError, ValueError):
        return float("nan")


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise OSError("no VmHWM in /proc/self/status")


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """``with PeakRss() as probe: ...`` then ``probe.memory``: the RSS peak of the block.

    ``method`` says how it was measured: ``"VmHWM"`` (kernel high-water mark, exact) or
    ``"sampled"`` (1 ms polling thread).
    """

    def __init__(self) -> None:
        self.memory = Memory(float("nan"), float("nan"))
        self.method = ""
        self._peak = float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        _trim_heap()
        before = rss_mb()
        self.memory = Memory(before, before)
        if _reset_hwm():
            self.method = "VmHWM"
        else:
            self.method = "sampled"
            self._peak = before
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(1e-3):
            self._peak = max(self._peak, rss_mb())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, rss_mb())
        else:
            peak = _hwm_mb()
        self.memory = Memory(self.memory.rss_before, peak)


def resolve_device(requested: str) -> tuple[str, str]:
    """(device to use, message): a CUDA device (``cuda``, ``cuda:N``) that this machine lacks
    falls back to ``cpu``, the message saying why."""
    try:
        check_device_present(requested)
    except ValueError as err:
        return "cpu", f"gcf-bench: --device {requested}: {err}; using cpu"
    return requested, ""


def sync_for(device: str):
    """A callable that waits for the device's queued work (None on CPU: nothing is queued)."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def machine_info(device: str) -> dict:
    """CPU model, cores, threads, library versions and the load, for the JSON ``machine`` block."""
    import open3d

    try:
        import pytorch3d

        p3d_version = pytorch3d.__version__
    except ImportError:
        p3d_version = None
    cuda = torch.device(device).type == "cuda"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "open3d": open3d.__version__,
        "pytorch3d": p3d_version,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
