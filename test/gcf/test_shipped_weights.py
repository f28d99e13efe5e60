"""The shipped weights load (weights_only) and move real LM-O instances towards the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.eval.harness import EvalConfig, select_instances
from gcf_ros.eval.metrics import projection_error_px
from gcf_ros.gcf.refiner import Refiner, RefinerConfig, default_checkpoint

N = 16


@pytest.fixture(scope="module")
def checkpoint():
    path = default_checkpoint()
    assert path.is_file(), f"shipped weights missing at {path}"
    return path


def test_weights_file_is_plain_tensors(checkpoint):
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert {"state_dict", "net_config", "meta"} <= set(blob)
    assert "command" in blob["meta"] and "data" in str(blob["meta"]).lower()


@pytest.mark.parametrize("solver", ["gauss_newton", "gradient"])
def test_refines_real_lmo_instances_closer_to_ground_truth(lmo_root, checkpoint, solver):
    dataset = BopDataset(lmo_root)
    registry = dataset.model_registry()
    selected = select_instances(dataset, registry, EvalConfig(lmo_root, "medium", 0, N))
    iterations = 8 if solver == "gauss_newton" else 20
    refiner = Refiner.from_checkpoint(
        registry, checkpoint, "cpu", RefinerConfig(solver=solver, iterations=iterations)
    )
    before, after = [], []
    for frame, inst, _, T0 in selected:
        image = frame.load_rgb()
        (res,) = refiner.refine_poses(image, frame.K, [inst.model_id], T0[None])
        verts = registry.get(inst.model_id).verts_obj
        before.append(projection_error_px(verts, frame.K, T0, inst.T_cam_obj))
        after.append(projection_error_px(verts, frame.K, res.T_cam_obj, inst.T_cam_obj))
    before, after = np.array(before), np.array(after)
    assert np.median(after) < 0.7 * np.median(before), (np.median(before), np.median(after))
    assert (after < before).mean() >= 0.6
