"""Mutual occlusion (issue 15, item 2): the silhouette lines of an instance ignore what another
instance of the same refine call hides in front of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scenes import H_IMG, W_IMG, K, _true_pose

from gcf_ros.core.camera import CropWindow, crop_window_for_box
from gcf_ros.core.models import ModelRegistry, ModelSpec
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.gcf.occluders import occluder_depth
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig
from gcf_ros.gcf.terms.silhouette import occluded_samples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(novel_registry) -> ModelRegistry:
    """The novel mesh twice: the target (orange) and an occluder coloured like the background."""
    spec = novel_registry.spec("novel")
    occluder = ModelSpec("occluder", spec.mesh_path, scale=1.0, color=(0.15, 0.45, 0.55))
    return ModelRegistry({"novel": spec, "occluder": occluder})


def _poses() -> tuple[np.ndarray, np.ndarray]:
    """The target at its true pose, and the occluder 12 cm nearer, covering part of it."""
    T = _true_pose()
    T_occ = T.copy()
    T_occ[:3, 3] += (0.035, 0.0, -0.12)
    return T, T_occ


def _scene(pair) -> np.ndarray:
    """Both models rendered together (the nearer surface wins) over a bluish background."""
    side = max(H_IMG, W_IMG)
    Kw = torch.from_numpy(CropWindow(0.0, 0.0, float(side), side).K_window(K))
    models = [pair.render_model("novel"), pair.render_model("occluder")]
    out = RaycastRenderer().render(
        models, torch.from_numpy(np.stack(_poses())), Kw.expand(2, 3, 3), side
    )
    depth = torch.where(out.mask, out.depth, torch.inf)[:, :H_IMG, :W_IMG]
    nearest = depth.argmin(0)
    rgb = torch.gather(
        out.rgb[:, :H_IMG, :W_IMG], 0, nearest[None, ..., None].expand(1, -1, -1, 3)
    )[0]
    covered = out.mask[:, :H_IMG, :W_IMG].any(0)
    rng = np.random.default_rng(0)
    background = np.broadcast_to(np.array([0.12, 0.4, 0.5], np.float32), (H_IMG, W_IMG, 3))
    image = np.where(covered[..., None].numpy(), rgb.numpy(), background)
    image = image + rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def test_occluder_depth_is_the_other_instance_in_front(pair):
    models = [pair.render_model("novel"), pair.render_model("occluder")]
    T = np.stack(_poses())
    windows = [crop_window_for_box(K, T[b], models[b].bbox_corners_obj, 64) for b in range(2)]
    K_win = torch.from_numpy(np.stack([w.K_window(K) for w in windows]))
    idx, present = np.array([0, 1]), np.ones(2, bool)
    depth = occluder_depth(RaycastRenderer(), models, T, present, idx, windows, K, K_win, 64)
    assert depth.shape == (2, 64, 64)
    seen = torch.isfinite(depth[0])
    assert 0 < seen.sum() < 64 * 64  # part of the target's window shows the occluder
    z_occ = T[1, 2, 3]
    assert abs(float(depth[0][seen].median()) - z_occ) < 0.05
    # A target moved 20 cm back lies wholly behind the occluder: not rendered into its window.
    T_back = T.copy()
    T_back[0, 2, 3] += 0.2
    alone = occluder_depth(
        RaycastRenderer(), models, T_back, present, idx[1:], windows[1:], K, K_win[1:], 64
    )
    assert alone is None
    # Rejected instances do not occlude; a lone instance has nothing to occlude it.
    gone = occluder_depth(
        RaycastRenderer(), models, T, np.array([True, False]), idx[:1], windows[:1], K,
        K_win[:1], 64,
    )  # fmt: skip
    assert gone is None
    assert occluder_depth(RaycastRenderer(), models[:1], T[:1], present[:1], idx[:1],
                          windows[:1], K, K_win[:1], 64) is None  # fmt: skip


def test_occluded_samples_compare_depths_at_the_samples():
    occ = np.full((8, 8), np.inf)
    occ[:, 4:] = 0.5  # the right half: something at 0.5 m
    uv = np.array([[[1.0, 3.0], [6.0, 3.0], [20.0, 3.0]]])  # left, right, outside the window
    assert occluded_samples(occ, uv, np.array([0.6])).tolist() == [[False, True, False]]
    assert occluded_samples(occ, uv, np.array([0.4])).tolist() == [[False, False, False]]


def test_lines_ignore_what_another_instance_hides(pair):
    """Region term alone, both instances refined together from their true poses: the occluder,
    coloured like the background, cuts the target's visible silhouette. Lines that read it as
    background pull the target off its pose; with mutual occlusion they stay put."""
    image = _scene(pair)
    T, T_occ = _poses()
    errors = {}
    for on in (False, True):
        config = RefinerConfig.resolve(
            None, terms=("region",), iterations=10, mutual_occlusion=on,
            silhouette_damping=0.05, silhouette_rotation_damping=0.0,
            max_distance_change_without_field=None,  # the lines alone, no distance bound
        )  # fmt: skip
        refiner = Refiner(pair, None, config)
        res, _ = refiner.refine(image, K, [Detection("novel", T), Detection("occluder", T_occ)])
        errors[on] = 1e3 * np.linalg.norm(res.T_cam_obj[:3, 3] - T[:3, 3])
    assert errors[True] < 6.0 and errors[False] > 5 * errors[True], errors


def test_the_field_drops_the_pixels_another_instance_hides(novel_registry):
    """With mutual occlusion the field term gives no row to a rendered pixel that another
    instance covers nearer than the rendered surface; without it, every rendered pixel counts."""
    import dataclasses

    from scenes import _inputs, _synthetic_image

    from gcf_ros.gcf.predictor import TrueFieldPredictor
    from gcf_ros.gcf.terms import FieldTerm, NetworkEvidence

    model = novel_registry.get("novel")
    T = _true_pose()
    image, _ = _synthetic_image(model, T)
    inputs = _inputs(model, T, image)
    exact = TrueFieldPredictor(torch.from_numpy(T)[None])
    field, weight = exact.predict(
        inputs.crops, inputs.render, inputs.diameters, inputs.K_window, inputs.instance_idx
    )
    S = inputs.render.size
    occ = torch.full((1, S, S), torch.inf)
    occ[:, :, : S // 2] = 0.1  # something 10 cm from the camera covers the left half
    inputs = dataclasses.replace(
        inputs, network=lambda: NetworkEvidence(field, weight), occluder_depth=occ
    )
    rendered = inputs.render.mask[0]
    left = int(rendered[:, : S // 2].sum())
    assert 0 < left < int(rendered.sum())
    kept = FieldTerm(mutual_occlusion=True).residuals(inputs)
    every = FieldTerm(mutual_occlusion=False).residuals(inputs)
    assert int((every.w > 0).sum()) == int(rendered.sum())
    assert int((kept.w > 0).sum()) == int(rendered.sum()) - left
    assert bool((kept.X_obj[kept.w > 0] != 0).any())


def test_two_hypotheses_of_one_object_do_not_occlude_each_other(pair):
    """Two detections of the same model 1 cm apart are one object seen twice: no occluder; the
    other model at the same place is one."""
    models = [pair.render_model("novel"), pair.render_model("novel"), pair.render_model("occluder")]
    T, _ = _poses()
    T2 = T.copy()
    T2[:3, 3] += (0.01, 0.0, -0.01)
    Ts = np.stack([T, T2, T2])
    windows = [crop_window_for_box(K, T, models[0].bbox_corners_obj, 64)]
    K_win = torch.from_numpy(windows[0].K_window(K))[None]
    args = (windows, K, K_win, 64)
    same = occluder_depth(RaycastRenderer(), models[:2], Ts[:2], np.ones(2, bool), [0], *args)
    assert same is None
    other = occluder_depth(RaycastRenderer(), models[::2], Ts[::2], np.ones(2, bool), [0], *args)
    assert other is not None and torch.isfinite(other).any()
