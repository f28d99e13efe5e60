"""Synthetic scenes for the solver-term tests: an asymmetric mesh no network saw (the
``novel_registry`` fixture in conftest.py), its rendered colour image over clutter, and the inputs
one term sees."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import torch
from scipy.spatial.transform import Rotation

from gcf_ros.core.camera import CropWindow, crop_window_for_box
from gcf_ros.core.models import ModelRegistry, ModelSpec
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.gcf.terms import TermInputs

K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1]])
H_IMG, W_IMG = 480, 640


def _true_pose() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [30, -20, 40], degrees=True).as_matrix()
    T[:3, 3] = (0.02, -0.01, 0.45)
    return T


def _synthetic_image(model, T: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The model rendered (shaded vertex colour) over a smooth random background, with noise;
    and its mask. (H, W, 3) uint8, (H, W) bool."""
    side = max(H_IMG, W_IMG)
    window = CropWindow(0.0, 0.0, float(side), side)
    Kw = torch.from_numpy(window.K_window(K))[None]
    out = RaycastRenderer().render([model], torch.from_numpy(T)[None], Kw, side)
    mask = out.mask[0, :H_IMG, :W_IMG].numpy()
    rgb = out.rgb[0, :H_IMG, :W_IMG].numpy()
    rng = np.random.default_rng(seed)
    low = rng.uniform(0.1, 0.7, (6, 8, 3)).astype(np.float32)
    background = np.stack([np.kron(low[..., c], np.ones((80, 80))) for c in range(3)], -1)
    background = background * np.array([0.4, 0.9, 1.0], np.float32)  # bluish-green clutter
    image = np.where(mask[..., None], rgb, background)
    image = image + rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), mask


def _inputs(model, T0: np.ndarray, image, mask=None, iteration=0, S=96) -> TermInputs:
    window = crop_window_for_box(K, T0, model.bbox_corners_obj, S)
    K_win = torch.from_numpy(window.K_window(K))[None]
    T = torch.from_numpy(T0)[None]
    render = RaycastRenderer().render([model], T, K_win, S)
    crops = torch.from_numpy(window.resample(image))[None]
    return TermInputs(
        image, [window], crops, render, K_win, T, torch.tensor([model.diameter]),
        np.array([0]), [mask], iteration,
    )  # fmt: skip


def _perturbed(T: np.ndarray, deg: float, cm: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    lateral = rng.normal(size=2)
    T0 = T.copy()
    T0[:3, :3] = Rotation.from_rotvec(np.radians(deg) * axis).as_matrix() @ T[:3, :3]
    T0[:2, 3] += 0.01 * cm * lateral / np.linalg.norm(lateral)
    return T0


def make_novel_registry(folder) -> ModelRegistry:
    """The novel mesh (a box with an arrow and a cylinder), written to ``folder``."""
    box = o3d.geometry.TriangleMesh.create_box(0.08, 0.05, 0.03).translate((-0.04, -0.025, -0.015))
    arrow = o3d.geometry.TriangleMesh.create_arrow(0.008, 0.014, 0.05, 0.025)
    arrow.rotate(Rotation.from_euler("y", 90, degrees=True).as_matrix(), center=(0, 0, 0))
    arrow.translate((0.03, 0.0, 0.0))
    cyl = o3d.geometry.TriangleMesh.create_cylinder(0.012, 0.05).translate((-0.025, 0.02, 0.03))
    mesh = box + arrow + cyl
    mesh.compute_vertex_normals()
    path = folder / "novel.ply"
    o3d.io.write_triangle_mesh(str(path), mesh)
    spec = ModelSpec("novel", path, scale=1.0, color=(0.85, 0.35, 0.2))
    return ModelRegistry({"novel": spec})
