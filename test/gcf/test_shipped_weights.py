"""The shipped weights (the default S = 128 file and the faster S = 64 one) load (weights_only) and
refine held-out synthetic samples drawn at their window size.

The samples are generated here with a seed used by neither the training nor the validation set.
(On the real LM-O frames the current weights do not yet beat the baselines: see docs/results.md.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gcf_ros.eval.metrics import projection_error_px
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Refiner, default_checkpoint, resolve_checkpoint
from gcf_ros.resources import share_dir
from gcf_ros.train.synth import generate_shard
from gcf_ros.train.synth_config import load_synth_yaml

HELD_OUT_SEED = 987_654_321


# Synthetic data recipe of each shipped file's window size (the S = 128 one: camera resolution).
SYNTH_CONFIG = {64: "train.yaml", 128: "train_s128cam.yaml"}
# Requirement: the refined median 2D error is at most this fraction of the initial one on the 24
# held-out samples, about today's value with a margin of <= 1.5x. Measured (default terms field +
# region, one CPU thread): S = 128 19.82 -> 2.97 px (x0.150), S = 64 5.97 -> 1.71 px (x0.287).
# For scale, one iteration instead of 8 gives x0.486 / x0.515 and swapped colour channels
# x0.366 / x0.340 (the field term alone today: x0.169 / x0.360).
MAX_2D_RATIO = {128: 0.22, 64: 0.43}


@pytest.fixture(scope="module", params=["", "gcf_lmo_s64.pt"])
def checkpoint(request):
    path = resolve_checkpoint(request.param)
    assert path.is_file(), f"shipped weights missing at {path}"
    return path


def test_shipped_file_names_resolve():
    assert resolve_checkpoint("") == resolve_checkpoint(None) == default_checkpoint()
    assert resolve_checkpoint("gcf_lmo_s64.pt") == default_checkpoint().parent / "gcf_lmo_s64.pt"
    assert resolve_checkpoint("runs/absent.pt") == Path("runs/absent.pt")  # a path stays a path
    assert NetworkPredictor.from_weights(default_checkpoint()).window_size == 128
    assert NetworkPredictor.from_weights(resolve_checkpoint("gcf_lmo_s64.pt")).window_size == 64


def test_weights_file_is_plain_tensors(checkpoint):
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert {"state_dict", "net_config", "meta"} <= set(blob)
    assert "command" in blob["meta"]


def test_refines_held_out_synthetic_samples(registry, checkpoint, one_torch_thread):
    size = NetworkPredictor.from_weights(checkpoint).window_size
    config, registry_yaml = load_synth_yaml(share_dir() / "config" / SYNTH_CONFIG[size])
    shard = generate_shard(config, registry_yaml, HELD_OUT_SEED, 24)
    ids = [str(s) for s in shard["model_ids"]]
    refiner = Refiner.from_checkpoint(registry, checkpoint, "cpu")
    before, after = [], []
    for i in range(len(shard["image"])):
        model_id = ids[int(shard["model_idx"][i])]
        K = shard["K_window"][i].astype(np.float64)
        T0, T = shard["T_init"][i].astype(np.float64), shard["T_true"][i].astype(np.float64)
        (res,) = refiner.refine_poses(shard["image"][i], K, [model_id], T0[None])
        verts = registry.get(model_id).verts_obj
        before.append(projection_error_px(verts, K, T0, T))
        after.append(projection_error_px(verts, K, res.T_cam_obj, T))
    ratio = np.median(after) / np.median(before)
    assert ratio < MAX_2D_RATIO[size], (np.median(before), np.median(after), ratio)
