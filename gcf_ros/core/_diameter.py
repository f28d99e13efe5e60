"""Exact diameter (largest distance between two points) of a point set, in near-linear time.

Small sets keep the original method: the convex hull (Qhull), then every pair of hull vertices
in blocks. Large sets (a 2 M-face sphere has 1 M vertices, all on its hull: the pairwise blocks
wanted 16 GB each, and hours) go through a branch and bound over a binary tree of point blocks
(each node split at the median along its principal axis), level by level: a pair of nodes is
dropped when an upper bound on the distance between their points is below the best distance
already measured between two real points, and the surviving leaf pairs are measured exactly.
The result is therefore exact (the pair found is re-measured as before); only the running time
depends on how well the bound prunes.

The bound uses each node's centroid ``c``, radius ``r`` and principal axes ``e_m`` with
half-extents ``h_m`` (an oriented box): for ``p`` in node A and ``q`` in node B, with
``u = (c_B - c_A) / L`` and ``L = |c_B - c_A|``, ``|(q - p) . u| <= L + s_A + s_B`` where
``s = sum_m h_m |u . e_m|``, and the rest of ``q - p`` is at most ``r_A + r_B`` long. On smooth
surfaces a node's box is thin along the normal, so the bound exceeds the truth by
O(size² / radius) rather than O(size): even on a sphere, where opposite points all nearly tie,
each leaf keeps about a dozen partners, and the work is O(n log n) (250 000 points on a
sphere: 2-3.6 s CPU, 150 MB; docs/performance.md, "Loading large meshes").
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

_HULL_MAX_POINTS = 50_000  # above: no Qhull (18 s and 1.7 GB for 1 M co-spherical points)
_BRUTE_MAX_POINTS = 4096  # at most: every pair, in blocks (the LM-O hulls have 838-2365)
_LEAF = 32  # points per leaf of the tree (16 to 32)
_SLACK = 1e-9  # relative inflation of the float bounds, so that rounding never prunes the best


def diameter(points: np.ndarray) -> float:
    """Exact largest distance between two of ``points`` (N, 3), N >= 1."""
    pts = np.asarray(points, dtype=np.float64)
    pts = pts - pts.mean(axis=0)
    if len(pts) <= _HULL_MAX_POINTS:
        pts = _hull_points(pts)
    if len(pts) <= _BRUTE_MAX_POINTS:
        return _max_pairwise_distance(pts)
    return _tree_max_distance(pts)


def _hull_points(pts: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of centred ``pts``; handles flat and collinear sets."""
    if len(pts) < 5:
        return pts
    try:
        return pts[ConvexHull(pts).vertices]
    except QhullError:  # coplanar (or worse): hull in the best-fit plane
        _, sing, vt = np.linalg.svd(pts, full_matrices=False)
        if sing[0] <= 0.0:
            return pts[:1]
        coords = pts @ vt[:2].T
        if sing[1] > sing[0] * 1e-9:
            try:
                return pts[ConvexHull(coords).vertices]
            except QhullError:
                pass
        return pts[[int(np.argmin(coords[:, 0])), int(np.argmax(coords[:, 0]))]]


def _max_pairwise_distance(pts: np.ndarray, chunk: int = 2048) -> float:
    """Largest pairwise distance, by blocks of squared distances (the best pair is re-measured)."""
    sq = np.einsum("ij,ij->i", pts, pts)
    best, pair = -np.inf, (0, 0)
    for start in range(0, len(pts), chunk):
        block = pts[start : start + chunk]
        d2 = sq[start : start + chunk, None] + sq[None, :] - 2.0 * (block @ pts.T)
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > best:
            best, pair = d2[i, j], (start + int(i), int(j))
    return float(np.linalg.norm(pts[pair[0]] - pts[pair[1]]))


def _starts(n: int, level: int) -> np.ndarray:
    """First point of each node of ``level``: node i of level k is split into 2i, 2i + 1."""
    return (np.arange(2**level) * n) // 2**level


def _pca_tree(pts: np.ndarray, depth: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``pts`` reordered so that every node is a contiguous block, and each level's node data.

    Each node is split at the median of its points along its principal axis. Node data (K, 13):
    centroid (3), radius (1), then the principal axes scaled by the half-extents of the node
    along them, row-major (9): ``data[k, 4 + 3 * i + m] = axes[k, i, m] * half[k, m]``.
    """
    order = np.arange(len(pts))
    levels = []
    for level in range(depth + 1):
        starts = _starts(len(pts), level)
        owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(pts))))
        data, major = _node_data(pts[order], starts, owner)
        levels.append(data)
        if level < depth:  # within each node, by the coordinate along its major axis
            scale = np.maximum.reduceat(np.abs(major), starts)[owner]
            key = owner + 0.25 * (major / np.where(scale > 0.0, scale, 1.0) + 2.0)
            order = order[np.argsort(key)]
    return pts[order], levels


def _node_data(pts: np.ndarray, starts: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, ...]:
    """(K, 13) node data (see :func:`_pca_tree`) and (N,) coordinates along the major axes."""
    centre = np.add.reduceat(pts, starts) / np.bincount(owner)[:, None]
    local = pts - centre[owner]
    x, y, z = local.T
    cov = np.add.reduceat(np.stack([x * x, x * y, x * z, y * y, y * z, z * z], axis=1), starts)
    cov = cov[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].reshape(-1, 3, 3)
    axes = np.linalg.eigh(cov)[1].reshape(-1, 9)  # eigenvalues ascending: the major axis last
    proj = _rotate(local, axes[owner])
    half = np.maximum.reduceat(np.abs(proj), starts)
    radius = np.sqrt(np.maximum.reduceat(np.einsum("ni,ni->n", local, local), starts))
    data = np.concatenate([centre, radius[:, None], axes * np.tile(half, 3)], axis=1)
    return data, proj[:, 2]


def _bound2(data: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) upper bounds on the squared distance between a point of node a and one of node b."""
    data_a, data_b = data[a], data[b]
    delta = data_b[:, :3] - data_a[:, :3]
    length = np.sqrt(np.einsum("pi,pi->p", delta, delta))
    u = delta / np.where(length > 0.0, length, 1.0)[:, None]
    support = np.abs(_rotate(u, data_a[:, 4:])).sum(axis=1)
    support += np.abs(_rotate(u, data_b[:, 4:])).sum(axis=1)
    r_ab = data_a[:, 3] + data_b[:, 3]
    box = (length + support) ** 2 + r_ab**2
    return np.minimum(box, (length + r_ab) ** 2) * (1.0 + _SLACK) + 1e-300


def _rotate(v: np.ndarray, rows9: np.ndarray) -> np.ndarray:
    """(P, 3) ``v[p] @ M[p]`` for (P, 9) row-major 3x3 matrices (faster than a batched einsum)."""
    return v[:, 0:1] * rows9[:, 0:3] + v[:, 1:2] * rows9[:, 3:6] + v[:, 2:3] * rows9[:, 6:9]


def _tree_max_distance(pts: np.ndarray) -> float:
    """Exact largest pairwise distance of ``pts`` (N, 3), N > 1, by branch and bound."""
    n = len(pts)
    depth = max(0, math.ceil(math.log2(n / _LEAF)))
    pts, levels = _pca_tree(pts, depth)
    best2, pair = _double_normal(pts)
    a, b = np.zeros(1, np.int64), np.zeros(1, np.int64)
    for level in range(1, depth + 1):
        a, b = _children(a, b)
        starts = _starts(n, level)
        rep_d2 = _sq_dist(pts[starts[a]], pts[starts[b]])
        k = int(np.argmax(rep_d2))
        if rep_d2[k] > best2:
            best2, pair = float(rep_d2[k]), (int(starts[a[k]]), int(starts[b[k]]))
        keep = _bound2(levels[level], a, b) >= best2
        a, b = a[keep], b[keep]
    d2, leaf_pair = _leaf_pairs_max(pts, levels[-1], a, b, best2)
    if d2 > best2:
        pair = leaf_pair
    return float(np.linalg.norm(pts[pair[0]] - pts[pair[1]]))


def _children(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Child node pairs of the pairs (a, b), a <= b: four each, three when a == b (no repeats)."""
    ca = np.stack([2 * a, 2 * a, 2 * a + 1, 2 * a + 1], axis=1)
    cb = np.stack([2 * b, 2 * b + 1, 2 * b, 2 * b + 1], axis=1)
    keep = ~((a == b)[:, None] & (np.arange(4) == 2)[None, :])  # (2a+1, 2a) repeats (2a, 2a+1)
    return ca[keep], cb[keep]


def _leaf_pairs_max(
    pts: np.ndarray, leaves: np.ndarray, a: np.ndarray, b: np.ndarray, best2: float
) -> tuple[float, tuple[int, int]]:
    """The largest squared distance between a point of leaf a[k] and one of leaf b[k] over k,
    if it beats ``best2`` (else ``best2``), and its pair; one leaf a against all its b at once."""
    if len(a) == 0:
        return best2, (0, 0)
    bound = _bound2(leaves, a, b)
    starts = _starts(len(pts), int(math.log2(len(leaves))))
    sizes = np.diff(np.append(starts, len(pts)))
    offsets = np.minimum(np.arange(sizes.max())[None, :], sizes[:, None] - 1)
    members = starts[:, None] + offsets  # (leaves, width): short leaves repeat their last point
    by_leaf = np.argsort(a, kind="stable")
    a, b, bound = a[by_leaf], b[by_leaf], bound[by_leaf]
    edges = np.flatnonzero(np.r_[True, a[1:] != a[:-1], True])
    pair = (0, 0)
    for lo, hi in itertools.pairwise(edges):
        alive = b[lo:hi][bound[lo:hi] >= best2]
        if len(alive) == 0:
            continue
        mine, others = members[a[lo]], members[alive].ravel()
        d2 = cdist(pts[mine], pts[others], "sqeuclidean")
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > best2:
            best2, pair = float(d2[i, j]), (int(mine[i]), int(others[j]))
    return best2, pair


def _double_normal(pts: np.ndarray, rounds: int = 4) -> tuple[float, tuple[int, int]]:
    """A long pair by repeated farthest points (a lower bound on the diameter): (d², (i, j))."""
    i = int(np.argmax(np.einsum("ij,ij->i", pts, pts)))
    best2, pair = 0.0, (i, i)
    for _ in range(rounds):
        d2 = _sq_dist(pts, pts[i][None, :])
        j = int(np.argmax(d2))
        if d2[j] <= best2:
            break
        best2, pair, i = float(d2[j]), (i, j), j
    return best2, pair


def _sq_dist(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    diff = p - q
    return np.einsum("ij,ij->i", diff, diff)
