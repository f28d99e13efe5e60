"""The learned backward pass with the *exact* field: the loop must converge to the true pose.

This checks everything around the network: crop windows, rendering, ground-truth fields, the
Jacobian of the pose update, both solvers and the convergence/rejection logic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.pose_update import apply_update, update_jacobian
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.eval.metrics import projection_error_px, rotation_error_deg
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.gcf.field import true_field
from gcf_ros.gcf.predictor import TrueFieldPredictor
from gcf_ros.gcf.refiner import CONVERGED, REJECTED, Detection, Refiner, RefinerConfig

K = np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1]])
IDS = ("obj_000001", "obj_000005", "obj_000010", "obj_000012")


def _true_poses() -> np.ndarray:
    rotations = Rotation.random(len(IDS), random_state=5).as_matrix()
    Ts = np.tile(np.eye(4), (len(IDS), 1, 1))
    Ts[:, :3, :3] = rotations
    Ts[:, :3, 3] = [[0.12 * (i - 1.5), 0.05 * (-1) ** i, 0.7 + 0.1 * i] for i in range(len(IDS))]
    return Ts


def _config(**overrides) -> RefinerConfig:
    """The settings of a network whose file records none (the exact field has no file)."""
    return RefinerConfig.resolve(TrueFieldPredictor.weights, **overrides)


def _refine_exact(registry, config: RefinerConfig):
    T_true = _true_poses()
    T_init = np.stack(perturb_instances(list(T_true), "medium", seed=11))
    refiner = Refiner(registry, TrueFieldPredictor(torch.from_numpy(T_true)), config)
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(i, T) for i, T in zip(IDS, T_init, strict=True)]
    return T_true, T_init, refiner.refine(image, K, dets)


def test_gauss_newton_with_the_exact_field_converges_to_the_true_pose(registry):
    T_true, _, results = _refine_exact(
        registry,
        _config(solver="gauss_newton", iterations=6, damping=1e-3, rotation_damping=0.0),
    )
    for res, T in zip(results, T_true, strict=True):
        rot = rotation_error_deg(res.T_cam_obj[:3, :3], T[:3, :3])
        trans_mm = 1e3 * np.linalg.norm(res.T_cam_obj[:3, 3] - T[:3, 3])
        assert rot < 0.1 and trans_mm < 1.0, f"{res.model_id}: {rot:.3f} deg {trans_mm:.2f} mm"
        assert res.status == CONVERGED and res.confidence == pytest.approx(1.0)
        assert res.iterations <= 6


def test_gradient_steps_with_the_exact_field_reduce_the_reprojection_error(registry):
    """First-order steps descend, but slowly (the depth direction is weakly conditioned): the
    reason Gauss-Newton is the default."""
    config = _config(solver="gradient", gradient_step=0.3, iterations=40, rotation_damping=0.0)
    T_true, T_init, results = _refine_exact(registry, config)
    for res, T, T0 in zip(results, T_true, T_init, strict=True):
        verts = registry.get(res.model_id).verts_obj
        before = projection_error_px(verts, K, T0, T)
        after = projection_error_px(verts, K, res.T_cam_obj, T)
        assert after < 0.5 * before, f"{res.model_id}: {before:.2f} -> {after:.2f} px"


def test_gauss_newton_step_from_exact_field_is_exact_for_small_motions(registry):
    """One GN step with the exact field recovers a small update to second order."""
    model = registry.get("obj_000006")
    T = torch.from_numpy(_true_poses()[1:2])
    xi_true = torch.tensor([[0.002, -0.001, 0.003, 0.004, -0.003, 0.002]], dtype=torch.float64)
    T_true = apply_update(T, xi_true)
    window = crop_window_for_box(K, T[0].numpy(), model.bbox_corners_obj, 96)
    K_win = torch.from_numpy(window.K_window(K))[None]
    render = RaycastRenderer().render([model], T, K_win, 96)
    F = true_field(render, T_true, K_win).double()[render.mask]  # (N, 2)
    X_obj = render.xyz_obj.double()[render.mask]
    X_cam = X_obj @ T[0, :3, :3].T + T[0, :3, 3]
    J = update_jacobian(K_win[0], X_cam, T[0, :3, 3])  # (N, 2, 6)
    xi = torch.linalg.lstsq(J.reshape(-1, 6), F.reshape(-1)).solution
    torch.testing.assert_close(xi, xi_true[0], atol=2e-5, rtol=0.02)


def test_rejects_poses_behind_the_camera(registry):
    T = _true_poses()[:1].copy()
    T[0, 2, 3] = -0.5
    refiner = Refiner(registry, TrueFieldPredictor(torch.from_numpy(T)))
    (res,) = refiner.refine(np.zeros((480, 640, 3), np.uint8), K, [Detection(IDS[0], T[0])])
    assert res.status == REJECTED and "behind the camera" in res.status_reason
    np.testing.assert_array_equal(res.T_cam_obj, T[0])


def test_rejects_low_confidence(registry):
    class Unsure(TrueFieldPredictor):
        def predict(self, *args):
            field, weight = super().predict(*args)
            return field, 0.05 * weight

    T = _true_poses()[:1]
    refiner = Refiner(registry, Unsure(torch.from_numpy(T)), _config(iterations=2))
    (res,) = refiner.refine(np.zeros((480, 640, 3), np.uint8), K, [Detection(IDS[0], T[0])])
    assert res.status == REJECTED and "confidence" in res.status_reason


def test_empty_detections():
    assert Refiner.__dict__["refine"](object.__new__(Refiner), None, K, []) == []


def test_distance_trust_region_holds_the_pose_near_its_initial_distance(registry):
    """The exact field pulls each object to 1.6x its initial distance, along the same ray. With
    ``max_distance_change`` = 0.25 the refined distance stops at 1.25x (the centre keeps its
    ray); without it (the default) the refinement goes most of the way."""
    T_init = _true_poses()
    T_far = T_init.copy()
    T_far[:, :3, 3] *= 1.6
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(i, T) for i, T in zip(IDS, T_init, strict=True)]
    d0 = np.linalg.norm(T_init[:, :3, 3], axis=1)
    ratio = {}
    for r in (None, 0.25):
        config = _config(iterations=8, terms=("field",), max_distance_change=r)
        refiner = Refiner(registry, TrueFieldPredictor(torch.from_numpy(T_far)), config)
        results = refiner.refine(image, K, dets)
        t = np.stack([res.T_cam_obj[:3, 3] for res in results])
        ratio[r] = np.linalg.norm(t, axis=1) / d0
        if r is not None:
            cos = (t * T_init[:, :3, 3]).sum(1) / (np.linalg.norm(t, axis=1) * d0)
            assert cos.min() > np.cos(np.radians(1.0))  # still on (about) the initial ray
    assert ratio[None].max() > 1.5, ratio[None]  # off by default: the field is followed
    assert (ratio[0.25] <= 1.25 + 1e-9).all(), ratio[0.25]
    beyond = ratio[None] > 1.3  # where the unguarded run went past the bound, the guard holds it
    assert beyond.sum() >= 2
    np.testing.assert_allclose(ratio[0.25][beyond], 1.25, atol=1e-6)


def test_distance_trust_region_validation_and_clamp():
    from gcf_ros.gcf.refiner import clamp_distance

    with pytest.raises(ValueError, match="max_distance_change"):
        _config(max_distance_change=0.0)
    t0 = np.array([0.1, -0.2, 0.8])
    np.testing.assert_allclose(clamp_distance(2.0 * t0, t0, 0.25), 1.25 * t0)
    np.testing.assert_allclose(clamp_distance(0.5 * t0, t0, 0.25), t0 / 1.25)
    inside = 1.1 * t0
    assert clamp_distance(inside, t0, 0.25) is inside


def test_without_the_field_the_distance_stays_near_the_detections(registry):
    """Instances the field does not refine (here: the contour term alone, given masks drawn 1.3x
    farther away) keep within ``max_distance_change_without_field`` (default 0.1) of their
    initial distance; unbounded (None) the silhouette takes them most of the way."""
    from gcf_ros.core.visibility import render_scene_masks

    T_init = _true_poses()
    T_far = T_init.copy()
    T_far[:, :3, 3] *= 1.3
    models = [registry.render_model(i) for i in IDS]
    scene = render_scene_masks(models, T_far, K, 640, 480)
    masks = scene.full.astype(np.float32)
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(i, T, mask=m) for i, T, m in zip(IDS, T_init, masks, strict=True)]
    d0 = np.linalg.norm(T_init[:, :3, 3], axis=1)
    ratio = {}
    for r in ("default", None):
        kw = {} if r == "default" else {"max_distance_change_without_field": r}
        config = RefinerConfig.resolve(None, terms=("contour",), iterations=12, **kw)
        assert r != "default" or config.max_distance_change_without_field == 0.1
        results = Refiner(registry, None, config).refine(image, K, dets)
        t = np.stack([res.T_cam_obj[:3, 3] for res in results])
        ratio[r] = np.linalg.norm(t, axis=1) / d0
    assert (ratio["default"] <= 1.1 + 1e-9).all(), ratio["default"]
    assert (ratio[None] > 1.15).sum() >= 2, ratio[None]
    # A depth image measures the distance: no bound then, even by default.
    config = RefinerConfig.resolve(None, terms=("contour",), iterations=12)
    results = Refiner(registry, None, config).refine(image, K, dets, depth_m=scene.depth)
    t = np.stack([res.T_cam_obj[:3, 3] for res in results])
    assert (np.linalg.norm(t, axis=1) / d0 > 1.15).sum() >= 2
