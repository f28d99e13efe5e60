"""Load-time decimation by vertex clustering: the face limit and the stated geometric bounds."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import pytest

from gcf_ros.core._decimate import cluster_to_limit
from gcf_ros.core._diameter import diameter


def _sphere() -> o3d.geometry.TriangleMesh:
    return o3d.geometry.TriangleMesh.create_sphere(radius=50.0, resolution=100)  # 39 600 faces


def _box() -> o3d.geometry.TriangleMesh:  # sharp corners and edges, 49 152 faces
    box = o3d.geometry.TriangleMesh.create_box(30.0, 20.0, 10.0).subdivide_midpoint(6)
    box.remove_duplicated_vertices()
    return box


@pytest.mark.parametrize("make", [_sphere, _box], ids=["sphere", "box"])
@pytest.mark.parametrize("limit", [20_000, 3_000])
def test_cluster_to_limit_meets_the_limit_within_one_cell(make, limit: int):
    mesh = make()
    verts = np.asarray(mesh.vertices)
    z = (verts[:, 2] - verts[:, 2].min()) / np.ptp(verts[:, 2])
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.c_[z, 1.0 - z, np.full_like(z, 0.5)])
    out, cell = cluster_to_limit(mesh, limit)
    out_verts, faces = np.asarray(out.vertices), np.asarray(out.triangles)
    assert limit // 3 <= len(faces) <= limit
    assert faces.min() >= 0 and faces.max() < len(out_verts)
    assert len(np.unique(faces)) == len(out_verts)  # no unreferenced vertex
    assert (faces[:, 0] != faces[:, 1]).all() and (faces[:, 1] != faces[:, 2]).all()
    # The stated bounds: the box shrinks by less than a cell per side, the diameter by less
    # than 2 sqrt(3) cells; nothing leaves the input's box.
    lo_shift = out_verts.min(axis=0) - verts.min(axis=0)
    hi_shift = verts.max(axis=0) - out_verts.max(axis=0)
    assert (lo_shift >= -1e-9).all() and (hi_shift >= -1e-9).all()
    assert (lo_shift < cell).all() and (hi_shift < cell).all()
    full, small = diameter(verts), diameter(out_verts)
    assert full - 2 * math.sqrt(3) * cell < small <= full + 1e-9
    # Colours are cell means of a linear ramp in z: within a cell's worth of the ramp.
    out_z = (out_verts[:, 2] - verts[:, 2].min()) / np.ptp(verts[:, 2])
    colors = np.asarray(out.vertex_colors)
    assert np.abs(colors[:, 0] - out_z).max() < 1e-9 + cell / np.ptp(verts[:, 2])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out.vertex_normals), axis=1), 1.0)


def test_cluster_to_limit_keeps_a_sphere_round_and_outward():
    out, cell = cluster_to_limit(_sphere(), 5_000)
    verts = np.asarray(out.vertices)
    radius = np.linalg.norm(verts, axis=1)
    assert cell < 6.0 and radius.max() <= 50.0 + 1e-9 and radius.min() > 49.0
    outward = np.einsum("ij,ij->i", np.asarray(out.vertex_normals), verts / radius[:, None])
    assert outward.min() > 0.9
