"""The refiners' profiling hooks record every phase and change nothing in the results."""

from __future__ import annotations

import numpy as np
import pytest

from gcf_ros.bench.frame import load_bench_frame
from gcf_ros.core.phase_timer import PhaseTimer
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig, default_checkpoint


@pytest.fixture(scope="module")
def frame():
    return load_bench_frame()


def test_refiner_hook_records_phases_and_keeps_results(registry, frame):
    predictor = NetworkPredictor.from_weights(default_checkpoint())
    refiner = Refiner(registry, predictor, RefinerConfig.resolve(predictor.weights, iterations=3))
    dets = [Detection(frame.model_ids[i], frame.T_init[i]) for i in frame.evaluated[:2]]
    plain = refiner.refine(frame.image_rgb, frame.K, dets)
    refiner.timer = PhaseTimer()
    hooked = refiner.refine(frame.image_rgb, frame.K, dets)
    times = refiner.timer.times
    iterations = max(r.iterations for r in hooked)
    # field: the field term (its network call is "network" inside it); region: the region term;
    # occluders: two instances, each rendered into the other's window for the region's lines
    assert set(times) == {
        "iteration", "crop", "render", "occluders", "field", "network", "region", "solve",
        "update",
    }  # fmt: skip
    assert all(len(v) == iterations for v in times.values())
    assert sum(times["iteration"]) >= sum(sum(times[p]) for p in ("render", "network"))
    for a, b in zip(plain, hooked, strict=True):
        assert np.array_equal(a.T_cam_obj, b.T_cam_obj)
        assert a.confidence == b.confidence and a.iterations == b.iterations
        assert all(np.array_equal(x, y) for x, y in zip(a.history, b.history, strict=True))


def test_soft_render_hook_records_phases_and_keeps_results(registry, frame):
    from gcf_ros.baselines.soft_render import SoftRenderConfig, SoftRenderRefiner
    from gcf_ros.core.camera import crop_window_for_box
    from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

    config = SoftRenderConfig.for_space("rgb", iterations=2, window_size=24, face_budget=200)
    i = frame.evaluated[0]
    model = registry.get(frame.model_ids[i])
    window = crop_window_for_box(frame.K, frame.T_init[i], model.bbox_corners_obj, 24, 1.4)
    args = (
        [model.simplified(200)],
        frame.T_init[i][None],
        window.K_window(frame.K)[None],
        (window.resample(frame.image_rgb) / 255.0)[None],
    )
    refiner = SoftRenderRefiner(config, PyTorch3DRenderer())
    plain = refiner.refine(*args)
    refiner.timer = PhaseTimer()
    hooked = refiner.refine(*args)
    assert {k: len(v) for k, v in refiner.timer.times.items()} == {
        "iteration": 2, "forward": 2, "backward": 2, "step": 2,
    }  # fmt: skip
    assert np.array_equal(plain.T_cam_obj, hooked.T_cam_obj)
    assert np.array_equal(plain.loss_history, hooked.loss_history)
