"""The refiner's per-iteration hook for studies: what it reports is what the loop used, and it
changes nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gcf_ros.core.pose_update import apply_update
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.gcf.field import true_field
from gcf_ros.gcf.predictor import TrueFieldPredictor
from gcf_ros.gcf.refiner import (
    MAX_ITERATIONS,
    Detection,
    RefinementCancelledError,
    Refiner,
    RefinerConfig,
)

K = np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1]])
IDS = ("obj_000005", "obj_000012")


def _refine(registry, hook=None, cancel=None, caps=(None, None)):
    T_true = np.tile(np.eye(4), (len(IDS), 1, 1))
    T_true[:, :3, :3] = Rotation.random(len(IDS), random_state=3).as_matrix()
    T_true[:, :3, 3] = [[-0.05, 0.02, 0.7], [0.06, -0.03, 0.8]]
    T_init = np.stack(perturb_instances(list(T_true), "medium", seed=4))
    predictor = TrueFieldPredictor(torch.from_numpy(T_true))
    # mutual occlusion off: each instance's steps must not depend on where the other one is
    config = RefinerConfig.resolve(
        predictor.weights, terms=("field",), iterations=3, damping=1e-3, rotation_damping=0.0,
        mutual_occlusion=False,
    )  # fmt: skip
    refiner = Refiner(registry, predictor, config)
    refiner.on_iteration = hook
    refiner.cancel = cancel
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(i, T, iterations=n) for i, T, n in zip(IDS, T_init, caps, strict=True)]
    return T_true, T_init, refiner.refine(image, K, dets)


def test_on_iteration_reports_the_poses_fields_and_steps_of_every_iteration(registry):
    records = []
    T_true, T_init, results = _refine(registry, records.append)
    _, _, plain = _refine(registry)
    for res, ref in zip(results, plain, strict=True):  # the hook changes nothing
        assert np.array_equal(res.T_cam_obj, ref.T_cam_obj) and res.status == ref.status

    seen = [(r.iteration, int(b)) for r in records for b in r.index]
    want = [(it, b) for it in range(3) for b, res in enumerate(results) if it < res.iterations]
    assert seen == want and len(seen) > len(IDS)
    for r in records:
        for k, b in enumerate(r.index):
            before = T_init[b] if r.iteration == 0 else results[b].history[r.iteration - 1]
            assert np.array_equal(r.T_cam_obj[k], before)  # the pose it rendered at
        exact = true_field(r.render, torch.from_numpy(T_true[r.index]), r.K_window)
        mask = r.render.mask
        assert torch.equal(r.network.field[mask], exact[mask])
        mean = (exact.norm(dim=-1) * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
        got = [s["field_residual_px"] for s in r.scores]
        np.testing.assert_allclose(got, mean.numpy(), rtol=1e-5)
        assert r.crops.shape == (len(r.index), *mask.shape[1:], 3) and len(r.windows) == len(got)
    first = records[0]  # the first step is always taken, unscaled
    for k, b in enumerate(first.index):
        step = apply_update(torch.from_numpy(T_init[b]), torch.from_numpy(first.step[k]))
        np.testing.assert_allclose(results[b].history[0], step.numpy(), atol=1e-12)


def test_cancel_stops_the_refinement_between_iterations(registry):
    """The event set during iteration 1: no iteration 2, RefinementCancelledError instead of
    results; an event never set changes nothing."""
    cancel, seen = threading.Event(), []

    def hook(record):
        seen.append(record.iteration)
        if record.iteration == 1:
            cancel.set()

    with pytest.raises(RefinementCancelledError):
        _refine(registry, hook, cancel)
    assert seen == [0, 1]
    _, _, results = _refine(registry, cancel=threading.Event())
    _, _, plain = _refine(registry)
    for a, b in zip(results, plain, strict=True):
        assert np.array_equal(a.T_cam_obj, b.T_cam_obj) and a.iterations == b.iterations == 3


def test_a_detection_runs_its_own_iteration_count_in_the_batch(registry):
    """Detection.iterations (a warm start from a track): that detection leaves the batch after
    its count, MAX_ITERATIONS, with the poses a refinement of that many iterations gives; the
    others run the config's count (3); a count above it runs longer (to convergence)."""
    records = []
    _, _, results = _refine(registry, records.append, caps=(1, None))
    assert [(r.iteration, list(r.index)) for r in records] == [(0, [0, 1]), (1, [1]), (2, [1])]
    assert (results[0].iterations, results[0].status) == (1, MAX_ITERATIONS)
    assert len(results[0].history) == 1 and results[1].iterations == 3
    _, _, plain = _refine(registry)
    np.testing.assert_array_equal(results[0].T_cam_obj, plain[0].history[0])
    np.testing.assert_array_equal(results[1].T_cam_obj, plain[1].T_cam_obj)
    _, _, longer = _refine(registry, caps=(None, 5))
    assert longer[0].iterations == 3 and 3 < longer[1].iterations <= 5
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        Detection(IDS[0], np.eye(4), iterations=0)
