"""Measuring helpers of gcf-bench: statistics, peak RSS, the phase timer, device fallback."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from gcf_ros.bench import timing
from gcf_ros.bench.timing import Memory, PeakRss, Stats, machine_info, resolve_device
from gcf_ros.core.phase_timer import PhaseTimer, timed


def test_stats_in_milliseconds():
    s = Stats.of_seconds([0.004, 0.001, 0.003, 0.002, 0.010])
    assert s.median == pytest.approx(3.0)
    assert s.p90 == pytest.approx(np.percentile([1, 2, 3, 4, 10], 90))
    assert s.n == 5
    assert s.to_dict() == {"median": s.median, "p90": s.p90}


def test_stats_of_nothing_is_nan():
    s = Stats.of_seconds([])
    assert math.isnan(s.median) and math.isnan(s.p90) and s.n == 0


def test_memory_delta():
    m = Memory(rss_before=100.0, peak_rss=250.0)
    assert m.delta == 150.0
    assert m.to_dict() == {"rss_before": 100.0, "peak_rss": 250.0, "delta": 150.0}


def _allocate_and_free(mb: int, hold_s: float = 0.0) -> None:
    block = np.ones(mb * 2**20 // 8)  # touched: resident
    time.sleep(hold_s)
    del block


def test_peak_rss_sees_a_freed_allocation():
    with PeakRss() as probe:
        _allocate_and_free(200)
    assert probe.method in ("VmHWM", "sampled")
    assert probe.memory.delta > 150
    assert probe.memory.peak_rss > probe.memory.rss_before > 0


def test_peak_rss_sampling_fallback(monkeypatch):
    monkeypatch.setattr(timing, "_reset_hwm", lambda: False)
    with PeakRss() as probe:
        _allocate_and_free(200, hold_s=0.05)
    assert probe.method == "sampled"
    assert probe.memory.delta > 150


def test_phase_timer_records_nested_phases_and_syncs():
    calls = []
    timer = PhaseTimer(sync=lambda: calls.append(1))
    for _ in range(3):
        with timer.phase("iteration"):
            with timer.phase("a"):
                pass
            with timer.phase("b"):
                pass
    assert {k: len(v) for k, v in timer.times.items()} == {"iteration": 3, "a": 3, "b": 3}
    assert all(t >= 0 for v in timer.times.values() for t in v)
    assert len(calls) == 2 * 9  # before and after every block
    timer.clear()
    assert timer.times == {}


def test_timed_without_timer_is_a_shared_no_op():
    assert timed(None, "x") is timed(None, "y")
    with timed(None, "x"):
        pass
    timer = PhaseTimer()
    with timed(timer, "x"):
        pass
    assert list(timer.times) == ["x"]


def test_phase_timer_records_a_failing_block():
    timer = PhaseTimer()
    with pytest.raises(RuntimeError), timer.phase("x"):
        raise RuntimeError("boom")
    assert len(timer.times["x"]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: no fallback")
def test_cuda_falls_back_to_cpu_with_a_message():
    device, message = resolve_device("cuda")
    assert device == "cpu"
    assert "cuda" in message and "cpu" in message


def test_cpu_is_used_as_asked():
    assert resolve_device("cpu") == ("cpu", "")


def test_machine_info():
    info = machine_info("cpu")
    assert {"cpu", "cores", "torch_threads", "torch"} <= set(info)
    assert info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["gpu"] is None
