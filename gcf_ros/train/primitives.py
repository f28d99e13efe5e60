"""Triangle meshes of simple solids in numpy: the clutter and occluder primitives of synthesis.

The same vertices, triangles (same order and winding) and vertex normals as open3d's
``TriangleMesh.create_box``, ``create_sphere``, ``create_cylinder`` and ``create_cone`` (with their
default ``split``) and ``compute_vertex_normals``, built without open3d, so that synthesis runs on a
machine without it and the primitive bank stays the one the shipped data sets were drawn with
(test/train/test_synth_backends.py compares them with open3d bit for bit).

Every function returns ``(verts, faces)``: verts (V, 3) float64 in the mesh's own frame (metres
when the sizes are), faces (F, 3) int64 indices into verts, counter-clockwise seen from outside.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["box_mesh", "cone_mesh", "cylinder_mesh", "sphere_mesh", "vertex_normals"]

Mesh = tuple[np.ndarray, np.ndarray]

# The 12 triangles of a box whose 8 corners are numbered x + 4 y + 2 z (x, y, z in {0, 1}).
_BOX_FACES = (
    (4, 7, 5), (4, 6, 7), (0, 2, 4), (2, 6, 4), (0, 1, 2), (1, 3, 2),
    (1, 5, 7), (1, 7, 3), (2, 3, 7), (2, 7, 6), (0, 4, 1), (1, 4, 5),
)  # fmt: skip


def box_mesh(width: float, height: float, depth: float) -> Mesh:
    """The box [0, width] x [0, height] x [0, depth] (x, y, z): 8 corners, 12 triangles."""
    corner = np.arange(8)
    verts = np.stack([(corner & 1) * width, (corner >> 2 & 1) * height, (corner >> 1 & 1) * depth])
    return verts.T.astype(np.float64), np.array(_BOX_FACES, dtype=np.int64)


def sphere_mesh(radius: float, resolution: int = 20) -> Mesh:
    """A UV sphere about the origin: poles on ±z (vertices 0, 1), then ``resolution`` - 1 rings
    of 2 ``resolution`` vertices each, polar and azimuthal step π / ``resolution`` (>= 2)."""
    n = _positive(resolution, "resolution", least=2)
    step = math.pi / n
    rings = [
        (math.sin(step * i) * math.cos(step * j), math.sin(step * i) * math.sin(step * j),
         math.cos(step * i))
        for i in range(1, n) for j in range(2 * n)
    ]  # fmt: skip
    verts = np.array([(0.0, 0.0, 1.0), (0.0, 0.0, -1.0), *rings]) * radius
    j = np.arange(2 * n)
    j1 = (j + 1) % (2 * n)
    last = 2 + 2 * n * (n - 2)  # first vertex of the ring next to the -z pole
    caps = np.stack(
        [np.stack([np.zeros_like(j), 2 + j, 2 + j1], 1), np.stack([np.ones_like(j), last + j1,
         last + j], 1)], 1,
    ).reshape(-1, 3)  # fmt: skip
    return verts, np.concatenate([caps, _band(2, n - 2, 2 * n)]).astype(np.int64)


def cylinder_mesh(radius: float, height: float, resolution: int = 20, split: int = 4) -> Mesh:
    """A cylinder along z centred at the origin: cap centres (0, 0, ±height / 2) (vertices 0, 1),
    then ``split`` + 1 rings of ``resolution`` vertices from the top down."""
    n, split = _positive(resolution, "resolution"), _positive(split, "split")
    step, h_step = math.pi * 2.0 / n, height / split
    rings = [
        (math.cos(step * j) * radius, math.sin(step * j) * radius, height * 0.5 - h_step * i)
        for i in range(split + 1) for j in range(n)
    ]  # fmt: skip
    verts = np.array([(0.0, 0.0, height * 0.5), (0.0, 0.0, -height * 0.5), *rings])
    j = np.arange(n)
    j1 = (j + 1) % n
    last = 2 + n * split
    caps = np.stack(
        [np.stack([np.zeros_like(j), 2 + j, 2 + j1], 1), np.stack([np.ones_like(j), last + j1,
         last + j], 1)], 1,
    ).reshape(-1, 3)  # fmt: skip
    return verts, np.concatenate([caps, _band(2, split, n)]).astype(np.int64)


def cone_mesh(radius: float, height: float, resolution: int = 20, split: int = 1) -> Mesh:
    """A cone along z: base centre at the origin (vertex 0), apex at (0, 0, height) (vertex 1),
    then ``split`` rings of ``resolution`` vertices, radius shrinking upwards."""
    n, split = _positive(resolution, "resolution"), _positive(split, "split")
    step, h_step, r_step = math.pi * 2.0 / n, height / split, radius / split
    rings = [
        (math.cos(step * j) * (r_step * (split - i)), math.sin(step * j) * (r_step * (split - i)),
         h_step * i)
        for i in range(split) for j in range(n)
    ]  # fmt: skip
    verts = np.array([(0.0, 0.0, 0.0), (0.0, 0.0, height), *rings])
    j = np.arange(n)
    j1 = (j + 1) % n
    top = 2 + n * (split - 1)
    ends = np.stack(
        [np.stack([np.zeros_like(j), 2 + j1, 2 + j], 1), np.stack([np.ones_like(j), top + j,
         top + j1], 1)], 1,
    ).reshape(-1, 3)  # fmt: skip
    lo = 2 + n * np.arange(split - 1)[:, None]  # each ring but the top one, and the ring above
    hi = lo + n
    side = np.stack(
        [np.stack([hi + j1, lo + j, lo + j1], -1), np.stack([hi + j1, hi + j, lo + j], -1)], -2
    ).reshape(-1, 3)
    return verts, np.concatenate([ends, side]).astype(np.int64)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 unit vertex normals: the sum of the (area-weighted, unnormalised) normals
    of the faces at each vertex, accumulated in face order, then normalised; zero where the sum
    is zero (as open3d's ``compute_vertex_normals``)."""
    tri = verts[faces]  # (F, 3, 3)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    summed = np.zeros_like(verts, dtype=np.float64)
    np.add.at(summed, faces.reshape(-1), np.repeat(face_n, 3, axis=0))  # in face order
    norms = np.sqrt(summed[:, 0] ** 2 + summed[:, 1] ** 2 + summed[:, 2] ** 2)[:, None]
    return np.divide(summed, norms, out=np.zeros_like(summed), where=norms > 0)


def _band(first: int, rows: int, n: int) -> np.ndarray:
    """(2 rows n, 3) triangles joining ``rows`` + 1 consecutive rings of ``n`` vertices that
    begin at vertex ``first``, two per quad, ring by ring."""
    j = np.arange(n)
    j1 = (j + 1) % n
    lo = first + n * np.arange(rows)[:, None]
    hi = lo + n
    quads = [np.stack([hi + j, lo + j1, lo + j], -1), np.stack([hi + j, hi + j1, lo + j1], -1)]
    return np.stack(quads, -2).reshape(-1, 3)


def _positive(value: int, name: str, least: int = 1) -> int:
    """``value`` as an int; ValueError unless it is an integer >= ``least``."""
    if isinstance(value, bool) or int(value) != value or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)
