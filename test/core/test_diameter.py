"""Exact diameter: the branch-and-bound tree against every pair, and its memory on large sets."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from gcf_ros.core import _diameter
from gcf_ros.core._diameter import diameter


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _every_pair(pts: np.ndarray) -> float:
    rows = range(0, len(pts), 1000)
    return float(np.sqrt(max(cdist(pts[i : i + 1000], pts, "sqeuclidean").max() for i in rows)))


def _point_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 5000  # above the every-pair limit (4096), so the tree answers
    sphere = _unit_rows(rng.normal(size=(n, 3)))
    return {
        "gaussian": rng.normal(size=(n, 3)) * [3.0, 1.0, 0.2],
        "sphere": sphere,  # every point on the hull, pairs nearly tied
        "rough sphere": sphere * (1.0 + 0.01 * rng.random((n, 1))),
        "flat": np.c_[rng.random((n, 2)), np.zeros(n)],
        "segment": np.outer(rng.random(n), [1.0, 2.0, 3.0]),
        "repeated points": np.repeat(rng.random((60, 3)), 100, axis=0),
        "grid": np.stack(np.meshgrid(*[np.arange(18.0)] * 3), -1).reshape(-1, 3),
        "two clusters": np.r_[rng.normal(size=(n // 2, 3)), rng.normal(size=(n // 2, 3)) + 40.0],
    }


@pytest.mark.parametrize("name", list(_point_sets()))
def test_tree_equals_every_pair(name: str):
    pts = _point_sets()[name]
    pts = pts - pts.mean(axis=0)
    assert _diameter._tree_max_distance(pts) == pytest.approx(_every_pair(pts), rel=1e-14)


def test_planted_pair_is_found_above_the_hull_limit():
    # 60 000 points (no Qhull, tree only) on a unit sphere, plus one pair 3 apart.
    rng = np.random.default_rng(3)
    pts = _unit_rows(rng.normal(size=(60_000, 3)))
    far = np.array([0.36, -0.48, 0.8]) * 1.5
    pts[[123, 45_678]] = far, -far
    assert diameter(pts) == pytest.approx(3.0, rel=1e-12)
    pts[45_678] = -far / 1.5  # back on the sphere: the longest pair is `far` and a sphere point
    expected = float(np.linalg.norm(pts - far, axis=1).max())  # > 2.49, others are <= 2
    assert diameter(pts) == pytest.approx(expected, rel=1e-12)


def test_large_co_spherical_set_uses_bounded_memory():
    # Every one of the 60 000 points is on the hull: the pairwise blocks needed about 3 GB.
    pts = _unit_rows(np.random.default_rng(5).normal(size=(60_000, 3)))
    tracemalloc.start()
    try:
        value = diameter(pts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 1.99 < value <= 2.0
    assert peak < 200e6
