"""Coarse-to-fine windows (``RefinerConfig.coarse_window_size`` / ``coarse_iterations``, issue 21):
the first iterations crop, render and predict at the coarse size, the rest at the full size, and
the loop still converges to the true pose with the exact field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scenes import _inputs, _perturbed, _synthetic_image, _true_pose
from scipy.spatial.transform import Rotation

from gcf_ros.eval.metrics import rotation_error_deg
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.gcf.predictor import TrueFieldPredictor
from gcf_ros.gcf.refiner import CONVERGED, Detection, Refiner, RefinerConfig
from gcf_ros.gcf.terms import LineConfig, RegionConfig, RegionTerm, silhouette
from gcf_ros.gcf.weights_meta import WeightsMeta

K = np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1]])
IDS = ("obj_000001", "obj_000005", "obj_000010", "obj_000012")
S, S_COARSE = 96, 48


def _true_poses() -> np.ndarray:
    Ts = np.tile(np.eye(4), (len(IDS), 1, 1))
    Ts[:, :3, :3] = Rotation.random(len(IDS), random_state=5).as_matrix()
    Ts[:, :3, 3] = [[0.12 * (i - 1.5), 0.05 * (-1) ** i, 0.7 + 0.1 * i] for i in range(len(IDS))]
    return Ts


class _SizeLog:
    """A predictor wrapper that records the window size of every call."""

    def __init__(self, inner) -> None:
        self.inner, self.weights, self.sizes = inner, inner.weights, []

    def predict(self, image_windows, render, *args):
        self.sizes.append(int(image_windows.shape[1]))
        return self.inner.predict(image_windows, render, *args)


def _refine(registry, coarse_predictor=None, **overrides):
    T_true = _true_poses()
    T_init = np.stack(perturb_instances(list(T_true), "medium", seed=11))
    predictor = _SizeLog(TrueFieldPredictor(torch.from_numpy(T_true)))
    settings = {"terms": ("field",), "window_size": S, "iterations": 6, "damping": 1e-3,
                "rotation_damping": 0.0, **overrides}  # fmt: skip
    refiner = Refiner(
        registry, predictor, RefinerConfig.resolve(predictor.weights, **settings),
        coarse_predictor=coarse_predictor,
    )  # fmt: skip
    records = []
    refiner.on_iteration = records.append
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(i, T) for i, T in zip(IDS, T_init, strict=True)]
    return T_true, refiner.refine(image, K, dets), records, predictor


def test_the_first_coarse_iterations_run_at_the_coarse_window(registry):
    _, results, records, predictor = _refine(
        registry, coarse_window_size=S_COARSE, coarse_iterations=2
    )
    assert [r.iteration for r in records][:3] == [0, 1, 2]
    for r in records:
        size = S_COARSE if r.iteration < 2 else S
        assert r.crops.shape[1:3] == (size, size), r.iteration
        assert r.render.size == size and r.network.field.shape[1:3] == (size, size)
        # K_window maps the same image to the smaller window: focal length scales with S
        assert all(w.size == size for w in r.windows)
    assert predictor.sizes[:2] == [S_COARSE, S_COARSE] and set(predictor.sizes[2:]) == {S}
    assert all(res.iterations >= 3 for res in results)  # every instance ran a full-size iteration


def test_the_coarse_schedule_converges_to_the_true_pose_with_the_exact_field(registry):
    T_true, results, _, _ = _refine(registry, coarse_window_size=S_COARSE, coarse_iterations=3)
    for res, T in zip(results, T_true, strict=True):
        rot = rotation_error_deg(res.T_cam_obj[:3, :3], T[:3, :3])
        trans_mm = 1e3 * np.linalg.norm(res.T_cam_obj[:3, 3] - T[:3, 3])
        assert rot < 0.1 and trans_mm < 1.0, f"{res.model_id}: {rot:.3f} deg {trans_mm:.2f} mm"
        assert res.status == CONVERGED and res.confidence == pytest.approx(1.0)


def test_instances_converged_while_coarse_wait_for_the_full_size(registry):
    """With 4 coarse iterations the exact field converges while coarse: such instances skip the
    remaining coarse iterations and all run again at the first full-size one."""
    _, results, records, _ = _refine(
        registry, coarse_window_size=S_COARSE, coarse_iterations=4, iterations=8
    )
    ran = {it: {int(b) for b in r.index} for r in records for it in [r.iteration]}
    assert len(ran[3]) < len(IDS)  # some converged at the coarse window (and waited)
    assert ran[4] == set(range(len(IDS)))  # all back at the first full-size iteration
    for b, res in enumerate(results):
        assert res.iterations == sum(b in idx for idx in ran.values())  # iterations run
        assert res.status == CONVERGED


def test_a_coarse_predictor_runs_only_in_the_coarse_iterations(registry):
    coarse = _SizeLog(TrueFieldPredictor(torch.from_numpy(_true_poses())))
    _, _, _, predictor = _refine(registry, coarse, coarse_window_size=S_COARSE, coarse_iterations=2)
    assert coarse.sizes == [S_COARSE, S_COARSE]
    assert predictor.sizes and set(predictor.sizes) == {S}


def test_off_by_default_and_the_full_size_everywhere(registry):
    _, _, records, predictor = _refine(registry)
    assert {r.crops.shape[1] for r in records} == {S} and set(predictor.sizes) == {S}


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"coarse_window_size": 60, "coarse_iterations": 2}, "multiple of 8"),
        ({"coarse_window_size": 128, "coarse_iterations": 2}, "multiple of 8 in"),
        ({"coarse_window_size": 8, "coarse_iterations": 2}, "multiple of 8 in"),
        ({"coarse_window_size": 64, "coarse_iterations": -1}, ">= 0"),
        ({"coarse_window_size": 64, "coarse_iterations": 8}, "at least one full-size"),
        ({"coarse_window_size": 64, "coarse_iterations": 5, "depth_iterations": 5}, "full-size"),
    ],
)
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        RefinerConfig.resolve(None, **overrides)


def test_the_default_schedule_where_it_was_chosen_and_fits():
    """With a network and the default terms, S = 128 gets 64 px x 2 (COARSE_SCHEDULES); other
    sizes or terms, no network, fewer iterations than it was measured with, or an explicit setting:
    as set or off."""
    s128, s64 = WeightsMeta(window_size=128), WeightsMeta(window_size=64)
    cfg = RefinerConfig.resolve(s128)
    assert (cfg.coarse_window_size, cfg.coarse_iterations, cfg.coarse_stop) == (64, 2, 2)
    assert RefinerConfig.resolve(s64).coarse_stop == 0
    assert RefinerConfig.resolve(s64, window_size=128).coarse_stop == 2  # the final window size
    assert RefinerConfig.resolve(None).coarse_stop == 0  # silhouette terms alone: not measured
    assert RefinerConfig.resolve(s128, terms=("field",)).coarse_stop == 0  # lost accuracy there
    assert RefinerConfig.resolve(s128, terms=["field", "region"]).coarse_stop == 2
    assert RefinerConfig.resolve(s128, iterations=2).coarse_stop == 0  # 2 coarse + 0 full: off
    assert RefinerConfig.resolve(s128, iterations=7).coarse_stop == 0  # measured with 8: off
    assert RefinerConfig.resolve(s128, iterations=12).coarse_stop == 2
    assert RefinerConfig.resolve(s128, depth_iterations=7).coarse_stop == 0
    assert RefinerConfig.resolve(s128, depth_iterations=2).coarse_stop == 0
    assert RefinerConfig.resolve(s128, coarse_iterations=0).coarse_stop == 0
    assert RefinerConfig.resolve(s128, coarse_window_size=None).coarse_stop == 0  # None: off
    assert RefinerConfig.resolve(s128, coarse_window_size=96).window_at(1) == 96
    with pytest.raises(ValueError, match="full-size"):  # explicit settings are checked
        RefinerConfig.resolve(s128, iterations=2, coarse_window_size=96, coarse_iterations=2)


def test_window_and_min_pixels_per_iteration():
    cfg = RefinerConfig.resolve(None, coarse_window_size=64, coarse_iterations=2, min_pixels=25)
    assert [cfg.window_at(i) for i in range(4)] == [64, 64, 128, 128]
    assert [cfg.min_pixels_at(i) for i in (1, 2)] == [7, 25]  # ceil(25 / 4) at half the side
    off = RefinerConfig.resolve(None, coarse_window_size=64)  # no coarse iterations: off
    assert off.coarse_stop == 0 and off.window_at(0) == 128


def test_line_lengths_scale_with_the_window():
    """Lengths are given for a 128 px window, whatever window the refiner runs at (a coarse
    window, a network trained at 64 px)."""
    lines = LineConfig(steps_px=(4.0, 2.0), min_sigma_px=0.5, normal_sigma_px=1.5)
    term = RegionTerm(lines, RegionConfig(inner_px=2, band_px=24))
    half = term.lines_for(64)
    assert half.steps_px == (2.0, 1.0) and half.min_sigma_px == 0.25
    assert half.normal_sigma_px == 0.75 and half.border_px == lines.border_px
    assert term.lines_for(128) == term.config
    assert term.region.scaled(0.5) == RegionConfig(inner_px=1, band_px=12)
    assert RegionConfig(inner_px=1).scaled(0.25).inner_px == 1  # a margin stays a margin
    assert RegionConfig(inner_px=0).scaled(0.5).inner_px == 0
    for window in (64, 128):
        config = RefinerConfig.resolve(None, window_size=window)
        built = RegionTerm.from_config(config)
        assert built.window_size == 128 and built.lines_for(window).step(0) == 4.0 * window / 128
    assert RegionTerm(lines, window_size=None).lines_for(64) == lines  # None: as given


@pytest.mark.parametrize("size", [64, 96, 128])
def test_region_colour_margins_scale_with_the_window(novel_registry, monkeypatch, size):
    """The region term counts its colour histograms with the margin and band scaled to the
    window it runs at (a 64 px window: half of the 128 px lengths)."""
    seen = []
    original = silhouette.colour_regions
    monkeypatch.setattr(
        silhouette, "colour_regions", lambda m, i, rc: seen.append(rc) or original(m, i, rc)
    )
    model = novel_registry.get("novel")
    image, _ = _synthetic_image(model, _true_pose())
    inputs = _inputs(model, _perturbed(_true_pose(), 5.0, 1.0), image, S=size)
    res = RegionTerm(region=RegionConfig(inner_px=2, band_px=24)).residuals(inputs)
    assert res.w.sum() > 0 and len(seen) == 1
    assert seen[0].band_px == round(24 * size / 128) and seen[0].inner_px == round(2 * size / 128)


def test_the_step_judge_starts_afresh_at_the_full_size(registry):
    """The field's residual is in window px (twice as large at twice the side): compared with
    the coarse residuals, the first full-size iteration would undo a good step."""
    _, results, _, _ = _refine(
        registry, coarse_window_size=S_COARSE, coarse_iterations=2, damping=1.0
    )
    for res in results:  # slow, steady steps with the exact field: none is ever undone
        undone = [
            i for i in range(1, len(res.history))
            if np.array_equal(res.history[i], res.history[i - 2 if i >= 2 else 0])
            or np.array_equal(res.history[i], res.T_init)
        ]  # fmt: skip
        assert not undone, f"{res.model_id}: steps undone after iterations {undone}"


def test_from_checkpoint_loads_a_coarse_network(registry):
    overrides = {"coarse_window_size": 64, "coarse_iterations": 4}
    refiner = Refiner.from_checkpoint(
        registry, overrides=overrides, coarse_checkpoint="gcf_lmo_s64.pt"
    )
    assert refiner.predictor.window_size == 128 and refiner.coarse_predictor.window_size == 64
    assert Refiner.from_checkpoint(registry).coarse_predictor is None


@pytest.mark.parametrize("trained", [IDS[1:], IDS])
def test_a_call_with_an_untrained_model_runs_at_full_size(registry, trained):
    """An instance the field term does not refine (a model the weights file does not list) is
    refined by the silhouette terms alone, for which the coarse schedule was not chosen (they
    lose accuracy at 64 px): its call runs at full size; a call of trained models only does
    not."""
    T_true = _true_poses()
    T_init = np.stack(perturb_instances(list(T_true), "small", seed=3))
    predictor = _SizeLog(TrueFieldPredictor(torch.from_numpy(T_true)))
    predictor.weights = dataclasses.replace(predictor.weights, trained_models=trained)
    settings = {"terms": ("field", "region"), "window_size": S, "iterations": 4,
                "coarse_window_size": S_COARSE, "coarse_iterations": 2}  # fmt: skip
    refiner = Refiner(registry, predictor, RefinerConfig.resolve(predictor.weights, **settings))
    dets = [Detection(IDS[0], T_init[0]), Detection(IDS[1], T_init[1])]
    refiner.refine(np.zeros((480, 640, 3), np.uint8), K, dets)
    if trained == IDS:
        assert predictor.sizes[:2] == [S_COARSE, S_COARSE]
    else:
        assert predictor.sizes and set(predictor.sizes) == {S}


@pytest.mark.parametrize("cap", [1, 3, 6])
def test_a_call_with_a_detection_of_its_own_smaller_count_runs_at_full_size(registry, cap):
    """A tracked instance's few iterations (``Detection.iterations`` below the config's) are a
    warm start: the call skips the coarse schedule (chosen for full refinements)."""
    T_true = _true_poses()
    T_init = np.stack(perturb_instances(list(T_true), "small", seed=3))
    predictor = _SizeLog(TrueFieldPredictor(torch.from_numpy(T_true)))
    settings = {"terms": ("field",), "window_size": S, "iterations": 6, "damping": 1e-3,
                "rotation_damping": 0.0, "coarse_window_size": S_COARSE,
                "coarse_iterations": 2}  # fmt: skip
    refiner = Refiner(registry, predictor, RefinerConfig.resolve(predictor.weights, **settings))
    dets = [Detection(IDS[0], T_init[0], iterations=cap), Detection(IDS[1], T_init[1])]
    results = refiner.refine(np.zeros((480, 640, 3), np.uint8), K, dets)
    assert results[0].iterations <= cap
    if cap < 6:
        assert set(predictor.sizes) == {S}
    else:  # the config's own count: a full refinement, the schedule runs
        assert predictor.sizes[:2] == [S_COARSE, S_COARSE]
