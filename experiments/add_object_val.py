"""What fine-tuning on a new object buys on held-out synthetic windows of the training distribution.

    python experiments/add_object_val.py --config config/train_add_object.yaml \
        --val data/synthetic/add_object_val --n 200 \
        "shipped|region" "shipped|field,region" "runs/add_object/gcf_add_object.pt|field,region"

Each window of ``--val`` (a gcf-synth set of the config's registry, never trained on: clutter,
occluders, camera blur and noise as in training) is refined as a whole image from its initial pose,
for every ``WEIGHTS|TERMS`` (``shipped``: weights/gcf_lmo.pt). Prints per configuration and per
group (the models that ``model_weights`` weighs, i.e. the new ones, and the rest) the median
rotation (deg), translation (cm) and 2D (px) errors and the ADD(-S) < 0.1 d rate, and the initial
ones. README, "Adding your own object"; docs/results.md, "Adding an object (issue 20)".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.metrics import pose_errors
from gcf_ros.gcf.refiner import Refiner, default_checkpoint
from gcf_ros.train.shards import validation_windows
from gcf_ros.train.synth_config import load_synth_yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", help="WEIGHTS|TERMS (WEIGHTS 'shipped': the default)")
    p.add_argument("--config", type=Path, required=True, help="the training YAML")
    p.add_argument("--val", type=Path, required=True, help="a held-out gcf-synth set of it")
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    synth, registry_yaml = load_synth_yaml(args.config)
    registry = ModelRegistry.from_yaml(registry_yaml)
    new = set(synth.model_weights)
    windows = validation_windows(args.val, args.n)
    groups = {"new (" + ",".join(sorted(new)) + ")": [w.model_id in new for w in windows]}
    groups["shipped models"] = [not g for g in next(iter(groups.values()))]
    initial = np.array([_errors(registry, w, w.T_init) for w in windows])
    _print("initial", groups, initial)
    for spec in args.configs:
        weights, _, terms = spec.partition("|")
        path = default_checkpoint() if weights == "shipped" else Path(weights)
        refiner = Refiner.from_checkpoint(registry, path, "cpu", {"terms": tuple(terms.split(","))})
        rows = []
        for w in windows:
            (res,) = refiner.refine_poses(w.image, w.K, [w.model_id], w.T_init[None])
            rows.append(_errors(registry, w, res.T_cam_obj))
        _print(spec, groups, np.array(rows))
    return 0


def _errors(registry: ModelRegistry, w, T_est: np.ndarray) -> tuple[float, ...]:
    model = registry.get(w.model_id)
    e = pose_errors(model.verts_obj, model.diameter, model.symmetric, w.K, T_est, w.T_true)
    return e.rot_deg, e.trans_cm, e.proj_px, float(e.add_m < 0.1 * model.diameter)


def _print(name: str, groups: dict[str, list[bool]], errs: np.ndarray) -> None:
    for group, mask in groups.items():
        sub = errs[np.array(mask)]
        rot, trans, px = np.median(sub[:, :3], axis=0)
        add = 100 * sub[:, 3].mean()
        print(f"{name:<52} {group:<16} n {len(sub):3d}: rot {rot:5.2f} deg, trans {trans:5.2f} "
              f"cm, 2D {px:5.2f} px, ADD(-S)<0.1d {add:5.1f} %", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
