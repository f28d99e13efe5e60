"""Sweep settings of the soft-rasterizer baselines on SYNTHETIC data (never on LM-O frames).

    python experiments/tune_baselines.py mask "lr_rot=0.01,lr_trans=0.004"
    python experiments/tune_baselines.py rgb "lr_rot=0.005,lr_trans=0.002"

The eight registry models are rendered with the raycast renderer at random poses (seed 123), over
noise backgrounds for rgb; initial poses follow the `medium` protocol (seed 7). Prints rotation and
translation errors before and after refinement, and the time per iteration and instance. The
chosen settings and how: docs/baselines.md, "Defaults and how they were chosen".
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from gcf_ros.baselines.soft_render import SoftRenderConfig, SoftRenderRefiner
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.geometry import random_rotations_about_random_axes
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.eval.metrics import rotation_error_deg, translation_error_cm
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.resources import default_models_yaml

K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1]])


def synthetic_scene(registry: ModelRegistry):
    gen = torch.Generator().manual_seed(123)
    models, T_gt = [], []
    for i, model_id in enumerate(registry.ids):
        T = np.eye(4)
        T[:3, :3] = random_rotations_about_random_axes(1, np.pi, gen, dtype=torch.float64)[0]
        T[:3, 3] = [0.1 * (i % 3 - 1), 0.05 * (i % 2), 0.8 + 0.05 * i]
        models.append(registry.get(model_id))
        T_gt.append(T)
    return models, np.stack(T_gt)


def _parse(overrides: str) -> dict:
    """'a=1,b=0.5' -> {'a': 1, 'b': 0.5} (numbers only)."""
    pairs = (kv.split("=") for kv in overrides.split(",") if kv)
    return {k.strip(): (int(v) if v.strip().isdigit() else float(v)) for k, v in pairs}


def main(space: str, overrides: str = "") -> None:
    cfg = SoftRenderConfig.for_space(space, **_parse(overrides))
    models, T_gt = synthetic_scene(ModelRegistry.from_yaml(default_models_yaml()))
    T0 = np.stack(perturb_instances(list(T_gt), "medium", seed=7))
    S = cfg.window_size
    windows = [
        crop_window_for_box(K, T, m.bbox_corners_obj, S, cfg.padding)
        for m, T in zip(models, T0, strict=True)
    ]
    K_win = np.stack([w.K_window(K) for w in windows])
    out = RaycastRenderer().render(models, torch.tensor(T_gt), torch.tensor(K_win), S)
    rng = np.random.default_rng(0)
    if space == "mask":
        target = out.mask.float().numpy()
    else:
        bg = rng.uniform(0, 0.5, (len(models), 1, 1, 3)) + rng.uniform(
            0, 0.3, (len(models), S, S, 3)
        )
        target = np.where(out.mask.numpy()[..., None], out.rgb.numpy(), bg)
    decimated = [m.simplified(cfg.face_budget) for m in models]
    res = SoftRenderRefiner(cfg, PyTorch3DRenderer()).refine(decimated, T0, K_win, target)
    print(cfg)
    print(
        f"time per iteration and instance: {1e3 * res.time_s / cfg.iterations / len(models):.0f} ms"
    )
    for name, T in (("initial", T0), ("refined", res.T_cam_obj)):
        rot = rotation_error_deg(T[:, :3, :3], T_gt[:, :3, :3])
        trans = translation_error_cm(T[:, :3, 3], T_gt[:, :3, 3])
        print(f"{name:8} rot deg {np.round(rot, 1)} (median {np.median(rot):.1f})")
        print(f"{name:8} trans cm {np.round(trans, 2)} (median {np.median(trans):.2f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
