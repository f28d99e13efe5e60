"""Private decimation helpers for :mod:`gcf_ros.core.models`.

- :func:`decimate`: open3d quadric decimation, for render meshes (``face_budget``); good
  quality, but about 10 s just to start on 2 M faces and 17-30 s to reach 500 k here.
- :func:`cluster_to_limit`: vertex clustering on a grid, linear time and memory, for the load-time
  face limit (``max_faces``), which must stay cheap whatever the file holds.

Both build open3d meshes: open3d is imported when they run (ImportError naming what needed it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from gcf_ros.core._open3d import SNAPSHOT_HINT, require_open3d

if TYPE_CHECKING:
    import open3d as o3d

_MAX_CELLS_PER_AXIS = 2**20  # keeps the cell keys within int64
_MAX_ROUNDS = 40


def decimate(mesh: o3d.geometry.TriangleMesh, max_faces: int) -> o3d.geometry.TriangleMesh:
    """Quadric decimation to at most ``max_faces`` triangles, cleaned (colours interpolated)."""
    o3d = require_open3d("simplifying a model (quadric decimation, face_budget)", SNAPSHOT_HINT)
    target = max_faces
    for _ in range(8):
        out = mesh.simplify_quadric_decimation(target_number_of_triangles=target)
        out.remove_degenerate_triangles()
        out.remove_unreferenced_vertices()
        if len(out.triangles) <= max_faces:
            break
        target = max(1, math.floor(target * 0.9))
    out.vertex_colors = o3d.utility.Vector3dVector(np.clip(np.asarray(out.vertex_colors), 0, 1))
    return out


def cluster_to_limit(
    mesh: o3d.geometry.TriangleMesh, max_faces: int
) -> tuple[o3d.geometry.TriangleMesh, float]:
    """At most ``max_faces`` triangles by vertex clustering; returns (mesh, cell size).

    The vertices in each cubic cell of a grid are merged into one at their mean (colours too),
    faces that collapse or repeat are dropped, and unit normals are recomputed. A merged vertex is
    a mean of its cell's vertices, so it lies in that cell and in the input's convex hull: every
    kept vertex moves by less than one cell along each axis, the bounding box shrinks by less
    than a cell per side and the diameter by less than 2 sqrt(3) cells (a cell whose every face
    collapses is dropped with them). The cell starts at sqrt(3 area / max_faces), about
    ``max_faces`` triangles on a smooth closed surface, then grows while above the limit and is
    bisected while below half of it. No faces when no cell size meets the limit (a 12-face cube
    cannot be clustered to 10 faces).
    """
    o3d = require_open3d("decimating a mesh (max_faces)", SNAPSHOT_HINT)
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    colors = np.asarray(mesh.vertex_colors, dtype=np.float64)
    if len(colors) != len(verts):
        colors = np.zeros_like(verts)
    area = _surface_area(verts, faces)
    min_cell = float(np.ptp(verts, axis=0).max()) / _MAX_CELLS_PER_AXIS
    cell = max(math.sqrt(3.0 * area / max_faces), min_cell)
    (out_verts, out_faces, out_colors), cell = _search_cell(
        verts, faces, colors, max_faces, cell, min_cell
    )
    out = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(out_verts), o3d.utility.Vector3iVector(out_faces)
    )
    out.vertex_colors = o3d.utility.Vector3dVector(np.clip(out_colors, 0.0, 1.0))
    out.compute_vertex_normals(normalized=True)
    return out, cell


def _search_cell(
    verts: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    max_faces: int,
    cell: float,
    min_cell: float,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """The clustering with the most faces <= ``max_faces`` found from ``cell`` (grown while
    above the limit, bisected back while below half of it, never below ``min_cell``), and its
    cell size. Empty when every cell size tried leaves too many faces or none."""
    lo, hi = 0.0, math.inf  # cell sizes known to give too many faces / few enough
    best: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float] | None = None
    for _ in range(_MAX_ROUNDS):
        result = _cluster(verts, faces, colors, cell)
        n_faces = len(result[1])
        if n_faces > max_faces:
            lo = cell
        else:
            hi = cell
            if best is None or n_faces > len(best[0][1]):
                best = result, cell
            if n_faces >= max_faces // 2 or cell <= min_cell:
                break
        if hi / max(lo, 1e-300) < 1.02:
            break
        if lo > 0.0 and hi < math.inf:
            cell = math.sqrt(lo * hi)
        elif n_faces > max_faces:
            cell *= max(1.2, math.sqrt(n_faces / max_faces) * 1.02)
        else:
            cell = max(cell / 2.0, min_cell)
    if best is None:
        empty = np.zeros((0, 3))
        return (empty, np.zeros((0, 3), np.int32), empty), cell
    return best


def _surface_area(verts: np.ndarray, faces: np.ndarray, chunk: int = 1 << 20) -> float:
    """Total triangle area, by chunks of faces (bounded memory)."""
    total = 0.0
    for start in range(0, len(faces), chunk):
        tri = faces[start : start + chunk]
        e1, e2 = verts[tri[:, 1]] - verts[tri[:, 0]], verts[tri[:, 2]] - verts[tri[:, 0]]
        cross2 = sum(  # |e1 x e2|^2, written out (np.cross is several times slower)
            (e1[:, i] * e2[:, j] - e1[:, j] * e2[:, i]) ** 2 for i, j in ((1, 2), (2, 0), (0, 1))
        )
        total += 0.5 * float(np.sqrt(cross2).sum())
    return total


def _cluster(
    verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clustering pass at ``cell``: (V', 3) vertices, (F', 3) int32 faces, (V', 3) colours."""
    cells = np.floor((verts - verts.min(axis=0)) / cell).astype(np.int64)
    dims = cells.max(axis=0) + 1
    key = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, cluster = np.unique(key, return_inverse=True)
    n_clusters = int(cluster.max()) + 1
    tri = cluster[faces]
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 2] != tri[:, 0])]
    tri = tri[_first_of_each(np.sort(tri, axis=1), n_clusters)]
    used, tri = np.unique(tri, return_inverse=True)  # renumbers the kept clusters 0..V'-1
    tri = tri.reshape(-1, 3).astype(np.int32)
    counts = np.bincount(cluster, minlength=n_clusters)[used, None]
    mean_verts = _cluster_sums(verts, cluster, used) / counts
    return mean_verts, tri, _cluster_sums(colors, cluster, used) / counts


def _cluster_sums(values: np.ndarray, cluster: np.ndarray, used: np.ndarray) -> np.ndarray:
    """(len(used), 3) sums of ``values`` (N, 3) per cluster, for the clusters in ``used``."""
    n = int(cluster.max()) + 1
    return np.stack([np.bincount(cluster, values[:, k], n)[used] for k in range(3)], axis=1)


def _first_of_each(rows: np.ndarray, n: int) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct row of ``rows`` (F, 3) in [0, n)."""
    if n < 2**21:  # n**3 fits in int64
        _, first = np.unique((rows[:, 0] * n + rows[:, 1]) * n + rows[:, 2], return_index=True)
    else:
        _, first = np.unique(rows, axis=0, return_index=True)
    return np.sort(first)
