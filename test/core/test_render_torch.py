"""The torch rasterizer (``TorchRasterizer``): PyTorch3D's hard rasterization in plain torch.

Checked against PyTorch3D (the same face wins at every pixel: equal to float32 rounding) and
open3d's ray caster on the real LM-O meshes at ground-truth poses, against a cube's analytic
projection, and for the properties its batching and chunking rely on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.models import ObjectModel
from gcf_ros.core.render import make_renderer
from gcf_ros.core.render.torch_raster import TorchRasterizer

S = 96
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(scope="module")
def lmo_windows(lmo_root, registry):
    """(models, T (B, 4, 4), K_window (B, 3, 3)) of the first LM-O frame's first 4 instances,
    full-resolution render models."""
    frame = next(iter(BopDataset(lmo_root).frames()))
    models, Ts, Ks = [], [], []
    for inst in frame.instances[:4]:
        model = registry.render_model(inst.model_id)
        window = crop_window_for_box(frame.K, inst.T_cam_obj, model.bbox_corners_obj, S)
        models.append(model)
        Ts.append(inst.T_cam_obj)
        Ks.append(window.K_window(frame.K))
    return models, torch.as_tensor(np.stack(Ts)), torch.as_tensor(np.stack(Ks))


def _cube(half: float = 0.05) -> ObjectModel:
    """A cube of side 2 * half metres centred on the object origin, 12 faces, mixed winding."""
    v = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])  # fmt: skip
    f[::2] = f[::2, ::-1]  # every other face wound the other way: no culling may drop them
    normals = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    v = v.astype(np.float32)
    return ObjectModel(
        "cube", v, f.astype(np.int32), np.full((8, 3), 0.5, np.float32), normals,
        float(2 * half * 3**0.5), v.min(0), v.max(0), False, "cube", Path("cube.ply"),
    )  # fmt: skip


def _view(z: float = 0.5, f: float = 200.0, c: float = (S - 1) / 2):
    T = torch.eye(4, dtype=torch.float64)[None].clone()
    T[0, 2, 3] = z
    K = torch.tensor([[[f, 0, c], [0, f, c], [0, 0, 1]]], dtype=torch.float64)
    return T, K


def test_cube_face_on_covers_its_analytic_square():
    """The cube's front face at z = 0.45 spans +-f * 0.05 / 0.45 px around the centre: exactly
    the pixel centres inside that square are covered, at depth 0.45."""
    T, K = _view()
    out = TorchRasterizer().render([_cube()], T, K, S)
    half_px = 200.0 * 0.05 / 0.45
    centre = (S - 1) / 2
    grid = torch.arange(S, dtype=torch.float64)
    inside_1d = (grid - centre).abs() < half_px
    expected = inside_1d[:, None] & inside_1d[None, :]
    assert torch.equal(out.mask[0], expected)
    np.testing.assert_allclose(out.depth[0][expected].numpy(), 0.45, atol=1e-6)
    assert (out.depth[0][~expected] == 0).all() and (out.rgb[0][~expected] == 0).all()
    # the location field is the front face (z = -0.05 in the object frame) under each pixel
    np.testing.assert_allclose(out.xyz_obj[0][expected][:, 2].numpy(), -0.05, atol=1e-6)


def test_slanted_plane_depth_is_perspective_correct():
    """A square tilted 60° about the x axis, two triangles over most of the window: the depth at
    every covered pixel is the ray-plane intersection (affine interpolation in screen space would
    be off by centimetres here), and the location field lies on the plane."""
    h = 0.08
    v = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    n = np.tile(np.array([[0, 0, -1]], np.float32), (4, 1))
    square = ObjectModel(
        "square", v, f, np.full((4, 3), 0.5, np.float32), n, float(2 * h * 2**0.5),
        v.min(0), v.max(0), False, "square", Path("square.ply"),
    )  # fmt: skip
    T, K = _view(z=0.4)
    a = np.radians(60.0)
    T[0, :3, :3] = torch.tensor([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    out = TorchRasterizer().render([square], T, K, S)
    m = out.mask[0]
    assert m.sum() > 0.3 * S * S
    i, j = torch.nonzero(m, as_tuple=True)
    rays = torch.linalg.solve(K[0], torch.stack([j, i, torch.ones_like(i)]).double())  # z = 1
    normal, point = T[0, :3, :3] @ torch.tensor([0.0, 0, 1], dtype=torch.float64), T[0, :3, 3]
    depth = (normal @ point) / (normal @ rays)  # ray-plane intersection, z of the hit
    np.testing.assert_allclose(out.depth[0][m].numpy(), depth.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out.xyz_obj[0][m][:, 2].numpy(), 0.0, atol=1e-6)


def test_matches_pytorch3d_exactly(lmo_windows):
    """The same faces win at the same pixels as in PyTorch3D's naive rasterizer (no culling)."""
    models, T, K = lmo_windows
    small = [m.simplified(3000) for m in models]  # PyTorch3D's CPU rasterizer is slow
    a = TorchRasterizer().render(small, T, K, S)
    b = make_renderer("pytorch3d", bin_size=0).render(small, T, K, S)
    assert torch.equal(a.mask, b.mask)
    m = a.mask
    assert (a.depth - b.depth)[m].abs().max() < 1e-5
    assert (a.xyz_obj - b.xyz_obj)[m].abs().max() < 1e-5
    assert (a.normals_cam - b.normals_cam)[m].abs().max() < 1e-3  # normalised: float32 rounding
    assert (a.rgb - b.rgb)[m].abs().max() < 1e-3


def test_agrees_with_ray_casting_on_full_meshes(lmo_windows):
    """Against open3d's ray caster on the full render meshes: the masks differ only at pixel
    centres on silhouette edges and where the ray caster skips a nearer face (seen on obj 8)."""
    models, T, K = lmo_windows
    a = TorchRasterizer().render(models, T, K, S)
    b = make_renderer("raycast").render(models, T, K, S)
    for i, model in enumerate(models):
        inter = (a.mask[i] & b.mask[i]).sum().item()
        union = (a.mask[i] | b.mask[i]).sum().item()
        assert inter / union > 0.99, f"{model.model_id}: IoU {inter / union:.4f}"
        m = a.mask[i] & b.mask[i]
        assert torch.quantile((a.depth[i] - b.depth[i])[m].abs(), 0.99) < 1e-3
        assert torch.quantile((a.xyz_obj[i] - b.xyz_obj[i])[m].norm(dim=-1), 0.99) < 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_batch_chunks_and_cache_do_not_change_the_output(lmo_windows, device):
    """One batch = one window at a time = tiny chunks (many z-buffer passes) = a cached batch."""
    models, T, K = lmo_windows
    r = TorchRasterizer(device)
    batched = r.render(models, T, K, S)
    again = r.render(models, T, K, S)  # the packed meshes come from the cache
    chunked = TorchRasterizer(device, max_candidates=4096).render(models, T, K, S)
    for name in ("mask", "depth", "xyz_obj", "normals_cam", "rgb"):
        assert getattr(batched, name).device.type == torch.device(device).type
        assert torch.equal(getattr(batched, name), getattr(again, name)), name
        assert torch.equal(getattr(batched, name), getattr(chunked, name)), name
    for b in range(len(models)):
        single = r.render(models[b : b + 1], T[b : b + 1], K[b : b + 1], S)
        assert torch.equal(single.mask[0], batched.mask[b])
        assert torch.equal(single.depth[0], batched.depth[b])


def test_occlusion_and_faces_behind_the_camera():
    """Windows do not occlude each other; with the camera at a cube's centre, the side faces
    (a vertex behind ``near``) are dropped and the face ahead fills the window at z = 0.05."""
    cube = _cube()
    T, K = _view(z=0.5)
    T2 = T.clone()
    T2[0, 0, 3], T2[0, 2, 3] = 0.03, 0.4  # nearer, shifted right
    r = TorchRasterizer()
    both = r.render([cube, cube], torch.cat([T, T2]), torch.cat([K, K]), S)
    front = both.mask[0] & both.mask[1]
    assert front.any()
    # each window renders its own cube only: occlusion is within a window, not across windows
    assert both.depth[1][both.mask[1]].max() < 0.45 + 1e-6
    T3 = T.clone()
    T3[0, 2, 3] = 0.0  # the camera centre inside the cube
    through = r.render([cube], T3, K, S)
    assert through.mask.all()
    np.testing.assert_allclose(through.depth.numpy(), 0.05, atol=1e-6)


def test_empty_batch_and_bad_inputs():
    r = TorchRasterizer()
    empty = r.render([], torch.zeros(0, 4, 4), torch.zeros(0, 3, 3), 16)
    assert empty.mask.shape == (0, 16, 16) and empty.rgb.shape == (0, 16, 16, 3)
    T, K = _view()
    with pytest.raises(ValueError, match="shape"):
        r.render([_cube()], T[0], K, S)
    with pytest.raises(ValueError, match="models"):
        r.render([_cube(), _cube()], T, K, S)
    with pytest.raises(ValueError, match="size"):
        r.render([_cube()], T, K, 0)
    with pytest.raises(ValueError, match="near"):
        TorchRasterizer(near=0.0)
