"""Full-image scene depth: a box of known geometry, occlusion, and the window renderer on LM-O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial.transform import Rotation

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.models import ObjectModel
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.render.scene import SceneDepth, pixel_rays, render_scene_depth

K = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])
H, W = 480, 640


def box_model(size_xyz: tuple[float, float, float], name: str = "box") -> ObjectModel:
    """An axis-aligned box centred on the object origin, metres."""
    sx, sy, sz = size_xyz
    mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz).translate((-sx / 2, -sy / 2, -sz / 2))
    mesh.compute_vertex_normals()
    verts = np.asarray(mesh.vertices, dtype=np.float32)
    return ObjectModel(
        model_id=name,
        verts_obj=verts,
        faces=np.asarray(mesh.triangles, dtype=np.int32),
        vert_colors=np.full_like(verts, 0.5),
        vert_normals_obj=np.asarray(mesh.vertex_normals, dtype=np.float32),
        diameter=float(np.linalg.norm(size_xyz)),
        bbox_min=verts.min(0),
        bbox_max=verts.max(0),
        symmetric=False,
        tf_name=name,
        source_path=Path(f"{name}.ply"),
    )


def _pose(t, euler_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", euler_deg, degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def test_fronto_parallel_box_face_has_its_exact_depth_and_footprint():
    """A 0.2 m cube 1 m ahead: its front face is at z = 0.9 (z, not ray length, even off-axis),
    and the hit pixels are those whose centres (u, v) = (j, i) project inside the face."""
    u_left = 300.25  # the face's left edge, a quarter pixel right of pixel 300's centre
    t_x = (u_left - K[0, 2]) / K[0, 0] * 0.9 + 0.1
    T = _pose((t_x, -0.03, 1.0))
    out = render_scene_depth([box_model((0.2, 0.2, 0.2))], T[None], K, (H, W))
    assert out.depth.shape == (H, W) and out.depth.dtype == np.float32
    assert out.instance.dtype == np.int32
    X = pixel_rays(K, (H, W)) * 0.9  # the face plane z = 0.9
    inside = (np.abs(X[..., 0] - t_x) < 0.1) & (np.abs(X[..., 1] + 0.03) < 0.1)
    assert (out.mask == inside).mean() > 0.999  # only pixels on the face's edge may differ
    np.testing.assert_allclose(out.depth[inside & out.mask], 0.9, atol=1e-5)
    assert (out.depth[~out.mask] == 0).all() and (out.instance[~out.mask] == -1).all()
    assert (out.instance[out.mask] == 0).all()
    row = round(K[1, 2])
    np.testing.assert_array_equal(out.mask[row, 298:303], [False, False, False, True, True])


def test_the_nearer_object_occludes_the_farther():
    near, far = box_model((0.1, 0.1, 0.1), "near"), box_model((0.3, 0.3, 0.05), "far")
    T = np.stack([_pose((0.0, 0.0, 1.0)), _pose((0.0, 0.0, 0.6), (10, 20, 30))])
    for order in ([0, 1], [1, 0]):  # the answer does not depend on the order given
        models = [[far, near][i] for i in order]
        out = render_scene_depth(models, T[order], K, (H, W))
        near_idx = order.index(1)
        alone = render_scene_depth([near], T[1:], K, (H, W))
        far_alone = render_scene_depth([far], T[:1], K, (H, W))
        np.testing.assert_array_equal(out.instance == near_idx, alone.mask)
        np.testing.assert_array_equal(out.depth[alone.mask], alone.depth[alone.mask])
        rest = far_alone.mask & ~alone.mask
        assert rest.sum() > 1000 and (out.instance[rest] == 1 - near_idx).all()
        np.testing.assert_array_equal(out.depth[rest], far_alone.depth[rest])
        assert (
            far_alone.depth[alone.mask & far_alone.mask] > out.depth[alone.mask & far_alone.mask]
        ).all()


def test_no_models_is_an_empty_image_and_shapes_are_checked():
    out = render_scene_depth([], np.zeros((0, 4, 4)), K, (4, 5))
    assert out.depth.shape == (4, 5) and not out.mask.any()
    with pytest.raises(ValueError, match="T_cam_obj"):
        render_scene_depth([box_model((0.1, 0.1, 0.1))], np.eye(4), K, (H, W))
    with pytest.raises(ValueError, match="same"):
        SceneDepth(np.zeros((2, 3)), np.zeros((3, 2)))


def test_lmo_scene_agrees_with_the_window_renderer(lmo_root, registry):
    """Every instance of the first LM-O frame: the window renderer (object-frame rays, one
    instance at a time) over the whole image, combined by nearest depth, gives the same depth
    and instance map as the scene (camera-frame rays)."""
    from gcf_ros.core.bop import BopDataset

    frame = next(iter(BopDataset(lmo_root).frames()))
    models = [registry.get(inst.model_id) for inst in frame.instances]
    T = np.stack([inst.T_cam_obj for inst in frame.instances])
    out = render_scene_depth(models, T, K=frame.K, size=(frame.height, frame.width))

    side = max(frame.width, frame.height)
    K_window = CropWindow(x0=0.0, y0=0.0, side=float(side), size=side).K_window(frame.K)
    ref = RaycastRenderer().render(
        models,
        torch.as_tensor(T),
        torch.from_numpy(np.repeat(K_window[None], len(models), 0)),
        side,
    )
    mask = ref.mask[:, : frame.height, : frame.width].numpy()
    depth = np.where(mask, ref.depth[:, : frame.height, : frame.width].numpy(), np.inf)
    ref_instance = np.where(mask.any(0), depth.argmin(0), -1)
    ref_depth = np.where(mask.any(0), depth.min(0), 0.0)

    assert len(models) >= 5 and out.mask.sum() > 10_000
    assert (out.instance != ref_instance).mean() < 1e-3  # silhouette-edge pixels only
    same = (out.instance == ref_instance) & out.mask
    np.testing.assert_allclose(out.depth[same], ref_depth[same], atol=1e-4)
    for n in range(len(models)):  # every visible instance is seen
        assert (out.instance == n).sum() == pytest.approx(
            (ref_instance == n).sum(), rel=0.01, abs=5
        )
