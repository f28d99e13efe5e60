"""The benchmark frame, its initial poses and the mesh variants of the size scaling."""

from __future__ import annotations

import numpy as np
import pytest

from gcf_ros.bench.frame import MIN_VISIB, VariantRegistry, load_bench_frame, mesh_variant
from gcf_ros.eval.perturb import perturb_instances


@pytest.fixture(scope="module")
def frame():
    return load_bench_frame()


def test_frame_and_protocol_initial_poses(frame):
    assert frame.image_rgb.shape == (480, 640, 3) and frame.image_rgb.dtype == np.uint8
    assert len(frame.model_ids) == len(frame.T_gt) == len(frame.T_init) == 8
    assert np.allclose(frame.T_init, perturb_instances(list(frame.T_gt), "medium", 0))
    assert all(frame.visib_fract[i] >= MIN_VISIB for i in frame.evaluated)
    assert "obj_000001" not in [frame.model_ids[i] for i in frame.evaluated]  # ape: 20 % visible
    assert 0.5 < frame.T_gt[0, 2, 3] < 2.0  # metres


def test_batch_cycles_the_evaluated_instances(frame):
    ids, T_init = frame.batch(16)
    n = len(frame.evaluated)
    assert len(ids) == 16 and T_init.shape == (16, 4, 4)
    assert ids[:n] == [frame.model_ids[i] for i in frame.evaluated]
    assert ids[n] == ids[0]
    assert not np.allclose(T_init[n], T_init[0])  # a new draw for the repeated instance
    ids4, T4 = frame.batch(4)
    assert ids4 == ids[:4] and np.array_equal(T4, T_init[:4])


def test_mesh_variants(registry):
    full = registry.get("obj_000008")
    assert mesh_variant(full, full.num_faces + 100) is full
    small = mesh_variant(full, 2000)
    assert small.num_faces <= 2000
    big = mesh_variant(full, 100_000)
    assert big.num_faces == 4 * full.num_faces  # one midpoint subdivision
    assert np.allclose(big.bbox_min, full.bbox_min) and np.allclose(big.bbox_max, full.bbox_max)
    assert np.allclose(np.linalg.norm(big.vert_normals_obj, axis=1), 1.0, atol=1e-5)
    assert big.diameter == full.diameter


def test_variant_registry(registry):
    small = registry.get("obj_000008").simplified(500)
    reg = VariantRegistry(registry, {"obj_000008": small})
    assert reg.render_model("obj_000008") is small
    assert reg.render_model("obj_000005").num_faces == registry.get("obj_000005").num_faces
