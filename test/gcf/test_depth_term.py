"""The depth term: its Jacobian against finite differences, its robust weights (occluders, missing
depth, background), and refinement on a synthetic RGB-D pair of a mesh no network saw."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scenes import H_IMG, W_IMG, K, _inputs, _perturbed, _synthetic_image, _true_pose
from scipy.spatial.transform import Rotation

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.eval.metrics import rotation_error_deg
from gcf_ros.gcf.refiner import REJECTED, Detection, Refiner, RefinerConfig, checked_depth
from gcf_ros.gcf.terms import DepthConfig, DepthTerm
from gcf_ros.gcf.terms.depth import _dominant_offset, plane_prediction, plane_residuals

TABLE_Z = 0.6  # metres: the background surface behind the object


def _depth_image(model, T: np.ndarray, seed: int = 0, sigma_m: float = 0.0015) -> np.ndarray:
    """(H, W) float32 metres: the model at T in front of a fronto-parallel plane, with noise."""
    side = max(H_IMG, W_IMG)
    window = CropWindow(0.0, 0.0, float(side), side)
    Kw = torch.from_numpy(window.K_window(K))[None]
    out = RaycastRenderer().render([model], torch.from_numpy(T)[None], Kw, side)
    depth = out.depth[0, :H_IMG, :W_IMG].numpy().copy()
    depth[depth == 0] = TABLE_Z
    noise = np.random.default_rng(seed).normal(0, sigma_m, depth.shape)
    return (depth + noise).astype(np.float32)


def _coarse(T: np.ndarray, seed: int) -> np.ndarray:
    """10 deg, 2 cm lateral and 7 % further along the ray (the medium protocol's depth sigma)."""
    T0 = _perturbed(T, 10.0, 2.0, seed=seed)
    T0[2, 3] *= 1.07
    return T0


def _errors(T: np.ndarray, T_gt: np.ndarray) -> tuple[float, float]:
    """(rotation deg, translation mm)."""
    return rotation_error_deg(T[:3, :3], T_gt[:3, :3]), 1e3 * np.linalg.norm(T[:3, 3] - T_gt[:3, 3])


def test_plane_jacobian_matches_finite_differences(novel_registry):
    """On the rendered points and normals of a real rendering, at a pose off the truth."""
    model = novel_registry.get("novel")
    T0 = _coarse(_true_pose(), seed=1)
    image, _ = _synthetic_image(model, _true_pose())
    inputs = _inputs(model, T0, image)
    render, (B, S) = inputs.render, (1, inputs.render.size)
    fg = render.mask.reshape(B, S * S)[0].nonzero()[:, 0][::7]
    X_obj = render.xyz_obj.reshape(B, S * S, 3)[:, fg].double()
    normals = render.normals_cam.reshape(B, S * S, 3)[:, fg].double()
    T = inputs.T_cam_obj.double()
    px_per_m = torch.rand(1, len(fg), dtype=torch.float64) * 800 + 200
    Y = torch.randn(1, len(fg), 3, dtype=torch.float64) * 0.01 + 0.5
    res = plane_residuals(T, X_obj, normals, px_per_m, Y, torch.ones(1, len(fg)))
    eps = 1e-6
    J_fd = torch.zeros_like(res.J)
    for i in range(6):
        xi = torch.zeros(1, 6, dtype=torch.float64)
        xi[0, i] = eps
        plus = plane_prediction(T, xi, X_obj, normals, px_per_m)
        minus = plane_prediction(T, -xi, X_obj, normals, px_per_m)
        J_fd[..., i] = (plus - minus) / (2 * eps)
    torch.testing.assert_close(res.J, J_fd, rtol=1e-6, atol=1e-5)
    # r = measured - predicted: zero step, measured s n.Y
    measured = (px_per_m[..., None] * normals * Y).sum(-1, keepdim=True)
    torch.testing.assert_close(
        res.r, measured - plane_prediction(T, 0 * xi, X_obj, normals, px_per_m)
    )


def test_depth_term_weights_occluders_missing_depth_and_background(novel_registry):
    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T)
    depth = _depth_image(model, T, sigma_m=0.0)
    T0 = T.copy()
    T0[2, 3] += 0.03  # 3 cm behind the truth: the whole object is "in front" of the rendering
    inputs = _inputs(model, T0, image)
    term = DepthTerm()
    res = term.residuals(dataclasses.replace(inputs, depth_m=depth))
    assert abs(res.readouts["depth_offset_mm"].item() + 30.0) < 3.0  # the dominant offset
    assert res.readouts["depth_inliers"].item() > 0.8
    # an occluder 20 cm in front of the left third of the rendered object: those rows get no
    # weight, and the rest still find the object's offset
    rows, cols = np.nonzero(inputs.render.mask[0].numpy())
    uv = inputs.windows[0].to_image(np.stack([cols, rows], -1).astype(float))
    occluded = depth.copy()
    occluded[:, : int(np.percentile(uv[:, 0], 33))] = T0[2, 3] - 0.2
    res_occ = term.residuals(dataclasses.replace(inputs, depth_m=occluded))
    assert 0.25 < (res_occ.w[0] == 0).double().mean() < 0.4
    assert abs(res_occ.readouts["depth_offset_mm"].item() + 30.0) < 3.0
    # missing depth (0 and NaN) gives no rows; none at all: the term abstains
    holes = depth.copy()
    holes[::2] = 0.0
    holes[1::4] = np.nan
    res_holes = term.residuals(
        dataclasses.replace(inputs, depth_m=checked_depth(holes, holes.shape))
    )
    assert 0.15 < res_holes.readouts["depth_coverage"].item() < 0.35
    empty = term.residuals(dataclasses.replace(inputs, depth_m=np.zeros_like(depth)))
    assert empty.w.sum() == 0 and empty.confidence.item() == 0.0
    assert empty.readouts["depth_inliers"].isnan().all()  # abstained: no verdict either


def test_dominant_offset_ignores_a_background_majority():
    """40 % of the rows on the object (offset -2 cm), 60 % spread over a background behind it."""
    rng = np.random.default_rng(0)
    obj = -0.02 + rng.normal(0, 0.001, 400)
    background = rng.uniform(0.03, 0.2, 600)
    d = torch.from_numpy(np.concatenate([obj, background]))[None]
    offset = _dominant_offset(d, torch.ones_like(d, dtype=torch.bool), torch.tensor([0.3]), 0.005)
    assert abs(offset.item() + 0.02) < 0.002


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rgbd_converges_on_an_untrained_mesh(novel_registry, seed):
    """From 10 deg / 2 cm / 7 % along the ray, the training-free silhouette and the depth term
    reach < 2 mm and < 1 deg; the same silhouette without depth does not."""
    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T, seed=seed)
    depth = _depth_image(model, T, seed=seed)
    T0 = _coarse(T, seed=seed + 10)
    # A clean synthetic image: no clutter bias for the region term's rotation damping to hold back
    overrides = {"iterations": 15, "depth_iterations": 15, "rotation_damping_with_depth": 0.0}
    config = RefinerConfig.resolve(None, terms=("region",), **overrides)
    refiner = Refiner(novel_registry, None, config)
    (rgbd,) = refiner.refine(image, K, [Detection("novel", T0)], depth_m=depth)
    (rgb,) = refiner.refine(image, K, [Detection("novel", T0)])
    rot, mm = _errors(rgbd.T_cam_obj, T)
    rot_rgb, mm_rgb = _errors(rgb.T_cam_obj, T)
    assert rot < 1.0 and mm < 2.0, (rot, mm)
    assert mm_rgb > 2 * mm and rot_rgb > rot, (rot_rgb, mm_rgb)
    assert rgbd.scores["depth_inliers"] > 0.9 and "depth_inliers" not in rgb.scores


def test_a_result_the_depth_disagrees_with_is_rejected(novel_registry):
    """The colour image shows the object at T, the depth image at T turned 90 deg about the
    viewing ray: whatever the solve does, the depth cannot agree with the result."""
    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T)
    T_other = T.copy()
    T_other[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix() @ T[:3, :3]
    T0 = _coarse(T, seed=3)
    config = RefinerConfig.resolve(None, terms=("region",), iterations=8)
    refiner = Refiner(novel_registry, None, config)
    wrong = _depth_image(model, T_other)
    (res,) = refiner.refine(image, K, [Detection("novel", T0)], depth_m=wrong)
    assert res.status == REJECTED and "depth agrees on" in res.status_reason, res.status_reason
    assert res.scores["depth_inliers"] < config.min_depth_inliers
    # its pose is that of the RGB-only refinement (the depth dragged it away)
    (rgb,) = refiner.refine(image, K, [Detection("novel", T0)])
    np.testing.assert_array_equal(res.T_cam_obj, rgb.T_cam_obj)
    assert res.status_reason.endswith("pose: the RGB-only refinement")
    off = Refiner(novel_registry, None, dataclasses.replace(config, depth_fallback=False))
    (dragged,) = off.refine(image, K, [Detection("novel", T0)], depth_m=wrong)
    assert not np.array_equal(dragged.T_cam_obj, rgb.T_cam_obj) and dragged.status == REJECTED
    (good,) = refiner.refine(image, K, [Detection("novel", T0)], depth_m=_depth_image(model, T))
    assert good.status != REJECTED and good.scores["depth_inliers"] > 0.8


def test_without_depth_or_with_depth_off_nothing_changes(novel_registry):
    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T)
    T0 = _coarse(T, seed=5)
    config = RefinerConfig.resolve(None, terms=("region",), iterations=6)
    (rgb,) = Refiner(novel_registry, None, config).refine(image, K, [Detection("novel", T0)])
    off = dataclasses.replace(config, depth_scale=0.0)
    depth = _depth_image(model, T)
    (ignored,) = Refiner(novel_registry, None, off).refine(
        image, K, [Detection("novel", T0)], depth_m=depth
    )
    np.testing.assert_array_equal(rgb.T_cam_obj, ignored.T_cam_obj)


def test_depth_input_and_config_checks():
    with pytest.raises(ValueError, match="registered"):
        checked_depth(np.zeros((240, 320), np.float32), (480, 640))
    with pytest.raises(ValueError, match="float metres"):
        checked_depth(np.zeros((480, 640), np.uint16), (480, 640))
    clean = checked_depth(np.array([[np.nan, -1.0], [np.inf, 0.5]]), (2, 2))
    assert clean.dtype == np.float32 and clean.tolist() == [[0, 0], [0, 0.5]]
    with pytest.raises(ValueError, match="depth term runs when"):
        RefinerConfig.resolve(None, terms=("region", "depth"))
    with pytest.raises(ValueError):
        DepthConfig(scales_m=())
    with pytest.raises(ValueError):
        RefinerConfig.resolve(None, depth_scale=-1.0)


@pytest.mark.parametrize(("frame_share", "fallen"), [(0.5, [0, 1]), (0.75, [1])])
def test_a_frame_whose_depth_disagrees_with_most_objects_falls_back_whole(
    novel_registry, frame_share, fallen
):
    """Out of two results, one disagrees with the depth: at depth_frame_fallback 0.5 the frame's
    depth is suspect and both get the RGB-only pose (REJECTED); at 0.75 only that one."""
    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T)
    dets = [Detection("novel", _coarse(T, seed=s)) for s in (4, 5)]
    config = RefinerConfig.resolve(None, terms=("region",), depth_frame_fallback=frame_share)
    refiner = Refiner(novel_registry, None, config)
    rgb = refiner.refine(image, K, dets)
    results = [
        dataclasses.replace(r, T_cam_obj=np.eye(4), scores={"depth_inliers": inl}, status=0)
        for r, inl in zip(rgb, (0.9, 0.3), strict=True)
    ]
    refiner._fall_back_to_rgb(image, K, dets, results)
    for b, r in enumerate(results):
        if b in fallen:
            np.testing.assert_allclose(r.T_cam_obj, rgb[b].T_cam_obj, atol=1e-9)
            assert r.status == REJECTED and r.status_reason.endswith("RGB-only refinement")
            assert r.scores["depth_inliers"] == (0.9, 0.3)[b]
        else:
            np.testing.assert_array_equal(r.T_cam_obj, np.eye(4))
    if frame_share == 0.5:
        assert "depth disagrees with 1 of 2 objects of the frame" in results[0].status_reason
