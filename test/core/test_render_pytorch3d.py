"""The PyTorch3D renderer: OpenCV pixel conventions, real LM-O geometry, soft differentiability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gcf_ros.core.camera import crop_window_for_box, project
from gcf_ros.core.geometry import make_se3
from gcf_ros.core.models import ModelRegistry, ObjectModel
from gcf_ros.core.render import Shading, make_renderer
from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer, soft_sigma

ROOT = Path(__file__).resolve().parents[2]
S = 96  # hard-render window
S_SOFT = 64  # soft-render window (the CPU soft rasterizer is slow)
FACES = 3000  # hard-render mesh
FACES_SOFT = 2000  # soft-render mesh
FACES_GRAD = 500  # the CPU backward costs ~10 us per fragment: ~1.5 s here at 1 px blur


@pytest.fixture(scope="module")
def renderer() -> PyTorch3DRenderer:
    return PyTorch3DRenderer()


@pytest.fixture(scope="module")
def ape() -> ObjectModel:
    """LM-O object 1 (ape), decimated to keep the CPU rasterizer fast."""
    return (
        ModelRegistry.from_yaml(ROOT / "config" / "models.yaml").get("obj_000001").simplified(FACES)
    )


@pytest.fixture(scope="module")
def gt_view(lmo_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), T_cam_obj (4, 4)) of object 1 in scene 2, image 3 (else the first image)."""
    scene_gt = json.loads((lmo_root / "test" / "000002" / "scene_gt.json").read_text())
    cam = json.loads((lmo_root / "camera.json").read_text())
    K = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]], dtype=float)
    entries = scene_gt.get("3") or next(iter(scene_gt.values()))
    gt = next(e for e in entries if e["obj_id"] == 1)
    T = np.eye(4)
    T[:3, :3] = np.reshape(gt["cam_R_m2c"], (3, 3))
    T[:3, 3] = np.asarray(gt["cam_t_m2c"]) / 1000.0
    return K, T


def _window(ape: ObjectModel, gt_view, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_cam_obj (1, 4, 4), K_window (1, 3, 3)) float64 for a size x size window on the ape."""
    K, T = gt_view
    window = crop_window_for_box(K, T, ape.bbox_corners_obj, size=size)
    return torch.as_tensor(T)[None], torch.as_tensor(window.K_window(K))[None]


@pytest.fixture(scope="module")
def hard(renderer, ape, gt_view):
    T, K = _window(ape, gt_view, S)
    return T, K, renderer.render([ape], T, K, S)


def _plate(corners_uv: np.ndarray, K: np.ndarray, z: float) -> ObjectModel:
    """A fronto-parallel quad at depth z (object frame = camera frame) with the given pixel
    corners (4, 2) in order around the quad, facing the camera, uniformly coloured."""
    uv1 = np.concatenate([corners_uv, np.ones((4, 1))], axis=1)
    verts = (uv1 @ np.linalg.inv(K).T * z).astype(np.float32)
    return ObjectModel(
        model_id="plate",
        verts_obj=verts,
        faces=np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32),
        vert_colors=np.tile(np.float32([0.2, 0.4, 0.8]), (4, 1)),
        vert_normals_obj=np.tile(np.float32([0, 0, -1]), (4, 1)),
        diameter=float(np.linalg.norm(verts[2] - verts[0])),
        bbox_min=verts.min(0),
        bbox_max=verts.max(0),
        symmetric=False,
        tf_name="plate",
        source_path=Path("plate.ply"),
    )


def test_make_renderer_builds_the_pytorch3d_backend():
    renderer = make_renderer("pytorch3d", bin_size=0)
    assert isinstance(renderer, PyTorch3DRenderer)
    assert renderer.device == torch.device("cpu")


def test_pixel_centres_at_integers_like_opencv(renderer):
    # Edges at fractional pixel positions: a half-pixel offset would move each edge by a column.
    K = np.array([[50.0, 0, 18.2], [0, 60.0, 17.9], [0, 0, 1]])
    u0, u1, v0, v1 = 10.3, 20.7, 5.6, 30.2
    plate = _plate(np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]]), K, z=1.0)
    size = 40
    out = renderer.render([plate], torch.eye(4)[None], torch.as_tensor(K)[None], size)
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    expected = (u > u0) & (u < u1) & (v > v0) & (v < v1)
    np.testing.assert_array_equal(out.mask[0].numpy(), expected)
    # The location field projects back onto the pixel centres; depth is z.
    uv = project(torch.as_tensor(K, dtype=torch.float32), out.xyz_obj[0][out.mask[0]])
    centres = torch.as_tensor(np.stack([u[expected], v[expected]], -1), dtype=torch.float32)
    torch.testing.assert_close(uv, centres, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.depth[0][out.mask[0]], torch.ones(int(expected.sum())))


def test_lambert_shading_follows_the_shading_dataclass(renderer):
    K = np.array([[50.0, 0, 20.0], [0, 50.0, 20.0], [0, 0, 1]])
    plate = _plate(np.array([[2.5, 2.5], [37.5, 2.5], [37.5, 37.5], [2.5, 37.5]]), K, z=0.5)
    T, Kt = torch.eye(4)[None], torch.as_tensor(K)[None]
    colour = torch.tensor([0.2, 0.4, 0.8])
    head = renderer.render([plate], T, Kt, 40)  # headlight: n . l = z / |X|
    m = head.mask[0]
    X = head.xyz_obj[0][m]
    cos = X[:, 2] / X.norm(dim=-1)
    torch.testing.assert_close(head.rgb[0][m], colour * (0.45 + 0.55 * cos)[:, None])
    torch.testing.assert_close(head.normals_cam[0][m], torch.tensor([0.0, 0, -1]).expand(len(X), 3))
    lit = renderer.render([plate], T, Kt, 40, Shading(0.2, 0.5, light_dir_cam=(0, 0, -2)))
    torch.testing.assert_close(lit.rgb[0][m], (colour * 0.7).expand(len(X), 3))


def test_lmo_fields_shapes_background_and_ranges(hard):
    _, _, out = hard
    assert out.mask.shape == (1, S, S) and out.mask.dtype == torch.bool
    for name in ("depth", "xyz_obj", "normals_cam", "rgb"):
        field = getattr(out, name)
        assert field.dtype == torch.float32 and field.shape[:3] == (1, S, S), name
        assert (field[~out.mask] == 0).all(), name
    assert out.mask.sum() > 500
    normals = out.normals_cam[out.mask]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(normals)))
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1 and out.rgb[out.mask].max() > 0.1


def test_lmo_mask_box_matches_projected_vertices(hard, ape):
    T, K, out = hard
    X_cam = torch.tensor(ape.verts_obj, dtype=torch.float64) @ T[0, :3, :3].T + T[0, :3, 3]
    uv = project(K[0], X_cam)
    rows, cols = torch.nonzero(out.mask[0], as_tuple=True)
    box_mask = torch.stack([cols.min(), rows.min(), cols.max(), rows.max()]).double()
    box_verts = torch.cat([uv.min(0).values, uv.max(0).values])
    assert (box_mask - box_verts).abs().max() < 1.0, (box_mask, box_verts)


def test_lmo_location_field_and_depth_are_consistent(hard):
    T, K, out = hard
    rows, cols = torch.nonzero(out.mask[0], as_tuple=True)
    X_cam = out.xyz_obj[0, rows, cols].double() @ T[0, :3, :3].T + T[0, :3, 3]
    err = (project(K[0], X_cam) - torch.stack([cols, rows], -1).double()).norm(dim=-1)
    assert err.max() < 0.5 and err.median() < 0.1, (err.max(), err.median())
    assert (out.depth[0, rows, cols].double() - X_cam[:, 2]).abs().max() < 1e-4


def test_batch_of_different_models_matches_single_renders(renderer, ape, gt_view):
    small = ape.simplified(1000)
    T, K = _window(ape, gt_view, 48)
    shifted = T.clone()
    shifted[:, 0, 3] += 0.01
    both = renderer.render([ape, small], torch.cat([T, shifted]), torch.cat([K, K]), 48)
    singles = [renderer.render([ape], T, K, 48), renderer.render([small], shifted, K, 48)]
    for b, single in enumerate(singles):
        for name in ("mask", "depth", "xyz_obj", "normals_cam", "rgb"):
            torch.testing.assert_close(getattr(both, name)[b], getattr(single, name)[0])
    assert not torch.equal(both.mask[0], both.mask[1])
    empty = renderer.render([], torch.zeros(0, 4, 4), torch.zeros(0, 3, 3), 48)
    assert empty.mask.shape == (0, 48, 48) and empty.rgb.shape == (0, 48, 48, 3)


@pytest.fixture(scope="module")
def ape_soft(ape) -> ObjectModel:
    return ape.simplified(FACES_SOFT)


@pytest.fixture(scope="module")
def soft_view(renderer, ape_soft, gt_view):
    """(T_cam_obj, K_window, hard mask (S, S)) of the soft-render window."""
    T, K = _window(ape_soft, gt_view, S_SOFT)
    return T, K, renderer.render([ape_soft], T, K, S_SOFT).mask[0]


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_soft_silhouette_approaches_the_hard_mask(renderer, ape_soft, soft_view):
    T, K, mask = soft_view
    ious = []
    for sigma in (1e-3, 1e-5):
        alpha = renderer.render_soft_silhouette([ape_soft], T, K, S_SOFT, sigma=sigma)
        assert alpha.shape == (1, S_SOFT, S_SOFT) and alpha.dtype == torch.float32
        assert alpha.min() >= 0 and alpha.max() <= 1
        ious.append(_iou(alpha[0] > 0.5, mask))
    assert ious[1] > 0.95 and ious[1] >= ious[0], ious


def _translated(T: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """T with its translation moved by delta (3,), differentiably."""
    return make_se3(T[:, :3, :3], T[:, :3, 3] + delta)


def test_automatic_faces_per_pixel_leaves_no_holes(renderer, ape_soft, soft_view):
    # PyTorch3D keeps the k faces nearest in z among those within the blur radius: too few and
    # the face that covers an interior pixel is dropped.
    T, K, mask = soft_view
    sigma = soft_sigma(S_SOFT)
    few = renderer.render_soft_silhouette([ape_soft], T, K, S_SOFT, sigma, faces_per_pixel=8)
    assert few[0][mask].min() < 0.5
    auto = renderer.render_soft_silhouette([ape_soft], T, K, S_SOFT, sigma)
    assert auto[0][mask].min() > 0.5


def test_soft_silhouette_gradients_match_finite_differences(renderer, ape, gt_view):
    model = ape.simplified(FACES_GRAD)
    T, K = _window(model, gt_view, S_SOFT)
    T = T.float()
    u = torch.arange(S_SOFT, dtype=torch.float32)
    sigma = soft_sigma(S_SOFT)  # edges ~1 px wide: smooth under sub-pixel motion

    def render(delta):
        return renderer.render_soft_silhouette([model], _translated(T, delta), K, S_SOFT, sigma)[0]

    # The silhouette's first moment in u: the area barely depends on t_x, so d(area)/d(t_x) has
    # no reliable sign, but moving right (+x) moves the silhouette to larger u.
    delta = torch.zeros(3, requires_grad=True)
    (grad,) = torch.autograd.grad((render(delta) * u).sum(), delta)
    assert torch.isfinite(grad).all() and (grad != 0).all()
    h = 5e-4  # metres, about 0.25 px here
    with torch.no_grad():
        steps = torch.eye(3) * h
        moment = [(render(step) * u).sum() - (render(-step) * u).sum() for step in steps[[0, 2]]]
        area_z = render(steps[2]).sum() - render(-steps[2]).sum()
    fd = torch.stack(moment) / (2 * h)
    assert fd[0] > 0 and grad[0] > 0, (fd, grad)
    torch.testing.assert_close(grad[[0, 2]], fd, rtol=0.15, atol=0)
    assert area_z < 0  # moving away (+z) shrinks the silhouette


def test_soft_rgb_equals_the_hard_render_as_sigma_and_gamma_vanish(renderer, ape_soft, soft_view):
    T, K, mask = soft_view
    hard_rgb = renderer.render([ape_soft], T, K, S_SOFT).rgb[0]
    rgb, alpha = renderer.render_soft_rgb([ape_soft], T, K, S_SOFT, sigma=1e-7, gamma=1e-7)
    assert rgb.shape == (1, S_SOFT, S_SOFT, 3) and alpha.shape == (1, S_SOFT, S_SOFT)
    assert rgb.min() >= 0 and rgb.max() <= 1 and alpha.min() >= 0 and alpha.max() <= 1
    assert (rgb[0][alpha[0] == 0] == 0).all()
    assert _iou(alpha[0] > 0.5, mask) > 0.99
    inside = mask & (alpha[0] > 0.99)
    assert inside.sum() > 0.95 * mask.sum()
    diff = (rgb[0] - hard_rgb)[inside].abs().max(dim=-1).values
    assert diff.median() < 1e-4 and diff.quantile(0.9) < 1e-3, diff


def test_soft_rgb_alpha_is_the_silhouette_and_rgb_has_gradients(renderer, ape_soft, soft_view):
    T, K, _ = soft_view
    delta = torch.zeros(3, requires_grad=True)
    rgb, alpha = renderer.render_soft_rgb(
        [ape_soft], _translated(T.float(), delta), K, S_SOFT, 1e-5
    )
    silhouette = renderer.render_soft_silhouette([ape_soft], T, K, S_SOFT, sigma=1e-5)
    torch.testing.assert_close(alpha.detach(), silhouette)
    (grad,) = torch.autograd.grad((rgb[0, ..., 1] * torch.arange(S_SOFT)).sum(), delta)
    assert torch.isfinite(grad).all() and (grad != 0).any()
