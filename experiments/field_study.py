"""Sim-to-real study: the predicted field against the true one, on real LM-O crops and on
synthetic validation windows, for one weights file. Analysis only: nothing is fitted here.

    python experiments/field_study.py [--weights W] [--n 100] [--noise medium] [--picture P.png]

For each evaluated LM-O instance (the gcf-eval selection and initial poses) the refiner runs one
iteration (the field term alone) and reports it (``Refiner.on_iteration``): the window at T0, the
raycast rendering, the network's field and weights; the true field is computed from the
ground-truth pose. Rows:

- EPE (px): mean end-point error over the rendered pixels; "visible" keeps the pixels whose true
  target lands on the instance's visible mask (LM-O is heavily occluded); "zero" is the EPE of
  predicting no motion (the size of the true field).
- conf at T0: the mean predicted weight over the rendered pixels at the initial pose (the
  refiner reports it after its last iteration as the confidence).
- 1-step: median rotation (deg) and reprojection (px) errors after one damped Gauss–Newton step
  on the predicted field (``gcf_ros.train.pose_loss``), next to their values at T0.

Synthetic rows use the validation shards' samples of the same noise level. The answer is in
docs/results.md, "Why rotation does not improve on real frames".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.geometry import rotation_angle
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.visibility import render_scene_masks
from gcf_ros.eval.harness import EvalConfig, select_instances
from gcf_ros.gcf.field import pixel_grid, true_field
from gcf_ros.gcf.inputs import render_input
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import IterationRecord, Refiner, RefinerConfig, default_checkpoint
from gcf_ros.resources import default_models_yaml
from gcf_ros.train.pose_loss import one_step_error
from gcf_ros.train.shards import ShardDataset

LEVELS = ("small", "medium", "large", "xlarge")
DAMPING = 0.1  # the one-step rows' Levenberg-Marquardt lambda (the refiner's default when run)


def real_rows(predictor, registry, dataset: Path, noise: str, n: int, keep: int):
    config = RefinerConfig.resolve(predictor.weights, iterations=1, terms=("field",))
    refiner = Refiner(registry, predictor, config, RaycastRenderer(nthreads=1))
    first: list[IterationRecord] = []
    refiner.on_iteration = first.append
    selected = select_instances(BopDataset(dataset), registry, EvalConfig(dataset, noise, 0, n))
    rows, shown = [], []
    frame_key, image, visible_all = None, None, None  # per frame: image, visible masks (N, H, W)
    for frame, inst, _visib, T0 in selected:  # in frame order
        if frame_key != (frame.scene_id, frame.im_id):
            frame_key = (frame.scene_id, frame.im_id)
            models = [registry.get(i.model_id) for i in frame.instances]
            T_all = np.stack([i.T_cam_obj for i in frame.instances])
            visible_all = render_scene_masks(models, T_all, frame.K, frame.width,
                                             frame.height).visible  # fmt: skip
            image = frame.load_rgb()
        first.clear()
        refiner.refine_poses(image, frame.K, [inst.model_id], T0[None])
        (rec,) = first
        win, render, K_win, S = rec.windows[0], rec.render, rec.K_window, rec.crops.shape[1]
        T_true = torch.from_numpy(inst.T_cam_obj)[None]
        true = true_field(render, T_true, K_win)[0]
        diam = torch.tensor([registry.get(inst.model_id).diameter], dtype=torch.float32)
        field, weight = rec.network.field[0], rec.network.weight[0]
        m = render.mask[0]
        # Where each rendered point truly is, in full-image pixels -> on the visible mask?
        target = (pixel_grid(S) + true + 0.5) / win.scale - 0.5
        target += torch.tensor([win.x0, win.y0])
        col, row = target[..., 0].round().long(), target[..., 1].round().long()
        inside = (col >= 0) & (col < frame.width) & (row >= 0) & (row < frame.height)
        vis = torch.zeros_like(m)
        vis[inside] = torch.from_numpy(visible_all[inst.inst_idx])[row[inside], col[inside]]
        vis &= m
        step = one_step_error(
            field.permute(2, 0, 1)[None], weight[None], render_input(render, diam), render.mask,
            torch.from_numpy(T0)[None].float(), T_true.float(), K_win.float(), diam, DAMPING,
        )  # fmt: skip
        epe = (field - true).norm(dim=-1)
        rot0 = torch.rad2deg(rotation_angle(torch.from_numpy(T0[:3, :3]),
                                            torch.from_numpy(inst.T_cam_obj[:3, :3])))  # fmt: skip
        rows.append(_row(epe, m, vis, true, weight, step, float(rot0)))
        if len(shown) < keep and int(vis.sum()) > 200:
            shown.append((rec.crops[0].numpy(), render.rgb[0].numpy(), m.numpy(),
                          true.numpy(), field.numpy()))  # fmt: skip
    return rows, shown


def synthetic_rows(net, val_dir: Path, level: str, diameters: dict[str, float]):
    ds = ShardDataset(val_dir)
    idx = ds.level_indices(level)
    table = torch.tensor([diameters[i] for i in ds.model_ids])
    rows = []
    for start in range(0, len(idx), 64):
        b = ds.batch(idx[start : start + 64])
        with torch.inference_mode():
            out = net(b.image, b.render)
        diam = table[b.model_idx]
        step = one_step_error(out.field, out.weight, b.render, b.mask, b.T_init, b.T_true,
                              b.K_window, diam, DAMPING)  # fmt: skip
        rot0 = torch.rad2deg(rotation_angle(b.T_init[:, :3, :3].double(),
                                            b.T_true[:, :3, :3].double()))  # fmt: skip
        for k in range(len(idx[start : start + 64])):
            field, true = out.field[k].permute(1, 2, 0), b.field[k].permute(1, 2, 0)
            sub = type(step)(step.error_px[k : k + 1], step.error0_px[k : k + 1],
                             step.rotation_deg[k : k + 1])  # fmt: skip
            epe = (field - true).norm(dim=-1)
            rows.append(_row(epe, b.mask[k], b.mask[k], true, out.weight[k, 0], sub,
                             float(rot0[k])))  # fmt: skip
    return rows


def _row(epe, mask, vis, true, weight, step, rot0) -> dict:
    m = mask.bool()
    return {
        "epe": float(epe[m].mean()),
        "epe_vis": float(epe[vis].mean()) if vis.any() else float("nan"),
        "zero": float(true.norm(dim=-1)[m].mean()),
        "conf": float(weight[m].mean()),
        "rot1": float(step.rotation_deg[0]),
        "rot0": rot0,
        "px1": float(step.error_px[0]),
        "px0": float(step.error0_px[0]),
    }


def _summary(name: str, rows: list[dict]) -> str:
    a = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    ok = {k: v[np.isfinite(v)] for k, v in a.items()}  # no occluded pixels: nan
    med = {k: float(np.median(v)) if v.size else float("nan") for k, v in ok.items()}
    mean = {k: float(np.mean(v)) if v.size else float("nan") for k, v in ok.items()}
    return (
        f"| {name} | {len(rows)} | {mean['epe']:.2f} | {mean['epe_vis']:.2f} | {mean['zero']:.2f} "
        f"| {mean['conf']:.2f} "
        f"| {med['rot0']:.2f} → {med['rot1']:.2f}"
        f" | {med['px0']:.2f} → {med['px1']:.2f} |"
    )


def _flow_rgb(field: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    """(S, S, 2) field -> (S, S, 3) uint8: hue = direction, value = length / scale."""
    ang = (np.degrees(np.arctan2(field[..., 1], field[..., 0])) % 360) / 2
    mag = np.clip(np.linalg.norm(field, axis=-1) / scale, 0, 1) * 255
    hsv = np.stack([ang, np.full_like(ang, 255), mag], -1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb[~mask] = 40
    return rgb


def picture(shown, path: Path) -> None:
    """One row per instance: real crop | rendering at T0 | true field | predicted field."""
    rows = []
    for crop, shading, mask, true, pred in shown:
        scale = max(float(np.percentile(np.linalg.norm(true[mask], axis=-1), 95)), 1.0)
        tiles = [crop, (shading * 255).astype(np.uint8), _flow_rgb(true, mask, scale),
                 _flow_rgb(pred, mask, scale)]  # fmt: skip
        rows.append(np.concatenate([cv2.resize(t, (192, 192), interpolation=cv2.INTER_NEAREST)
                                    for t in tiles], axis=1))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--dataset", type=Path, default=Path("../shared/data/lmo"))
    p.add_argument("--val", type=Path, default=Path("data/synthetic/val"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--noise", default="medium", choices=LEVELS[:3])
    p.add_argument("--picture", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    predictor = NetworkPredictor.from_weights(args.weights or default_checkpoint())
    registry = ModelRegistry.from_yaml(default_models_yaml())
    diameters = {i: float(registry.get(i).diameter) for i in registry.ids}
    real, shown = real_rows(predictor, registry, args.dataset, args.noise, args.n, keep=4)
    print(f"weights: {args.weights or default_checkpoint()}; noise {args.noise}")
    print("| data | n | EPE px | EPE visible px | zero-field EPE px | conf at T0 "
          "| 1-step rot deg | 1-step reproj px |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(_summary("LM-O real crops", real))
    if args.val.is_dir():
        print(
            _summary(
                "synthetic val", synthetic_rows(predictor.net, args.val, args.noise, diameters)
            )
        )
    if args.picture:
        picture(shown, args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
