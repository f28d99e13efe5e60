"""Tune the refiner's solver settings on SYNTHETIC validation samples (never on LM-O frames).

    python scripts/tune_refiner.py WEIGHTS "damping=0.001" "damping=0.1" ... [--n 48] [--oracle]

Each validation sample's S x S image window serves as the whole image, with its window camera as
K, and the sample's initial pose as the detection; prints median rotation (deg), translation (cm)
and 2D projection (px) errors after refinement for every setting, with quantiles of the results'
confidence and the share REJECTED (any reason): what ``min_confidence`` is calibrated on.
``--oracle`` replaces the network by the exact field towards the true pose (WEIGHTS is then
ignored): what the solver settings alone allow. A setting is ``key=value,...`` of RefinerConfig
fields, typed as by ``gcf-eval --set``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.cli import parse_overrides
from gcf_ros.eval.metrics import projection_error_px, rotation_error_deg, translation_error_cm
from gcf_ros.gcf.predictor import TrueFieldPredictor
from gcf_ros.gcf.refiner import REJECTED, Refiner, RefinerConfig
from gcf_ros.resources import default_models_yaml
from gcf_ros.train.shards import validation_windows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", type=Path)
    p.add_argument("settings", nargs="+")
    p.add_argument("--val", type=Path, default=Path("data/synthetic/val"))
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--oracle", action="store_true", help="the exact field instead of the network")
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = ModelRegistry.from_yaml(default_models_yaml())
    windows = validation_windows(args.val, args.n)
    n = len(windows)
    for setting in args.settings:
        settings = parse_overrides([kv for kv in setting.split(",") if kv])
        config = RefinerConfig.resolve(TrueFieldPredictor.weights, **settings)
        if not args.oracle:
            refiner = Refiner.from_checkpoint(registry, args.weights, "cpu", settings)
        errs, conf, rejected = [], [], 0
        for w in windows:
            image, K, model_id, T = w.image, w.K, w.model_id, w.T_true
            if args.oracle:
                refiner = Refiner(registry, TrueFieldPredictor(torch.from_numpy(T[None])), config)
            (res,) = refiner.refine_poses(image, K, [model_id], w.T_init[None])
            conf.append(res.confidence)
            rejected += res.status == REJECTED
            verts = registry.get(model_id).verts_obj
            errs.append((rotation_error_deg(res.T_cam_obj[:3, :3], T[:3, :3]),
                         translation_error_cm(res.T_cam_obj[:3, 3], T[:3, 3]),
                         projection_error_px(verts, K, res.T_cam_obj, T)))  # fmt: skip
        med = np.median(np.array(errs), axis=0)
        keys = ("median_rot_deg", "median_trans_cm", "median_proj_px")
        row = {
            "setting": setting + (" (exact field)" if args.oracle else ""),
            "n": n,
            **{k: round(float(v), 2) for k, v in zip(keys, med, strict=True)},
            "confidence_p2_p10_p25_p50": [
                round(float(q), 3) for q in np.quantile(conf, [0.02, 0.1, 0.25, 0.5])
            ],
            "rejected": round(rejected / n, 3),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
