"""Why rotation does not improve: how far rotation errors move the rendered surface at window size
S, and what one solver step makes of exact and predicted fields. SYNTHETIC validation windows only
(never LM-O frames); analysis, nothing is fitted here.

    python experiments/rotation_study.py [--weights W ...] [--val DIR] [--n 200] [--json OUT]

Part 1, observability. Each validation window's true pose T* is rotated by delta about a random
axis through the model origin; at each rotated pose the model is rendered into the sample's window
camera and compared with the sample's image window (which shows the object at T*). Columns:
``true |F|``, the mean length (window px) of the exact field over the rendered pixels — how far a
rotation error of delta moves the surface in the picture the network sees; ``pred |F|``, the
network's mean predicted field length there (at delta = 0 its floor: the exact field is zero);
``P(up)``, the fraction of windows whose predicted length at delta exceeds the one at delta = 0.

Part 2, one Gauss–Newton step from the samples' initial poses T0 (the training pose loss,
``gcf_ros.train.pose_loss.one_step_error``) at several Levenberg–Marquardt dampings, with the exact
field (weights = mask) and with each network's field and weights: median rotation error (deg) and
reprojection error (window px) after the step. The answer is in docs/results.md, "Why even
synthetic rotation barely moves" and "Session 5".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.geometry import rotation_angle
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.gcf.field import true_field
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import default_checkpoint
from gcf_ros.resources import default_models_yaml
from gcf_ros.train.pose_loss import one_step_error
from gcf_ros.train.shards import ShardDataset, validation_windows

DELTAS_DEG = (0.0, 2.5, 5.0, 10.0, 15.0)
DAMPINGS = (0.1, 0.01, 0.001)


def _mean_length(field: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(B,) mean |field| over the mask; field (B, S, S, 2), mask (B, S, S)."""
    m = mask.float()
    return ((field.norm(dim=-1) * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1.0)).numpy()


def observability(predictors, registry, ds: ShardDataset, seed: int = 0) -> dict:
    """Part 1: {name: (n, len(DELTAS_DEG)) mean field lengths}, name 'true' or a weights name."""
    renderer = RaycastRenderer(nthreads=1)
    rng = np.random.default_rng(seed)
    out = {name: np.zeros((len(ds), len(DELTAS_DEG))) for name in ["true", *predictors]}
    D, S = len(DELTAS_DEG), ds.size
    for i, w in enumerate(validation_windows(ds)):
        model = registry.render_model(w.model_id)
        T_true = w.T_true
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        T = np.repeat(T_true[None], D, axis=0)
        for j, delta in enumerate(DELTAS_DEG):
            T[j, :3, :3] = cv2.Rodrigues(axis * np.deg2rad(delta))[0] @ T_true[:3, :3]
        K = torch.from_numpy(w.K)[None].expand(D, 3, 3)
        render = renderer.render([model] * D, torch.from_numpy(T), K.contiguous(), S)
        exact = true_field(render, torch.from_numpy(T_true)[None].expand(D, 4, 4), K)
        out["true"][i] = _mean_length(exact, render.mask)
        image = torch.from_numpy(w.image)[None].expand(D, S, S, 3).contiguous()
        diameters = torch.full((D,), model.diameter)
        for name, predictor in predictors.items():
            field, _ = predictor.predict(image, render, diameters, K, np.arange(D))
            out[name][i] = _mean_length(field, render.mask)
    return out


def one_step(nets, registry, ds: ShardDataset) -> list[dict]:
    """Part 2 rows: solver damping, field source, median rotation / reprojection after one step."""
    n, b = len(ds), ds.batch(np.arange(len(ds)))
    diameter = torch.tensor(
        [registry.get(ds.model_ids[int(k)]).diameter for k in b.model_idx], dtype=torch.float64
    )
    image, render, mask = b.image, b.render, b.mask
    T0, Tt, K = b.T_init.double(), b.T_true.double(), b.K_window.double()
    fields = {"exact": (b.field, mask[:, None].float())}
    for name, net in nets.items():
        with torch.inference_mode():
            outs = [net(image[i : i + 50], render[i : i + 50]) for i in range(0, n, 50)]
        fields[name] = (torch.cat([o.field for o in outs]), torch.cat([o.weight for o in outs]))
    rot0 = torch.rad2deg(rotation_angle(T0[:, :3, :3], Tt[:, :3, :3]))
    rows = [{"damping": None, "field": "none (T0)", "rot_deg": float(rot0.median())}]
    for damping in DAMPINGS:
        for name, (field, weight) in fields.items():
            r = one_step_error(field, weight, render, mask, T0, Tt, K, diameter, damping)
            rows.append({"damping": damping, "field": name,
                         "rot_deg": float(r.rotation_deg.median()),
                         "reproj_px": float(r.error_px.median()),
                         "reproj0_px": float(r.error0_px.median())})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, nargs="+", default=[default_checkpoint()])
    p.add_argument("--val", type=Path, default=Path("data/synthetic/val"))
    p.add_argument("--n", type=int, default=200, help="the first N validation windows")
    p.add_argument("--json", type=Path, default=None, help="write both parts here")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = ShardDataset(args.val, max_samples=args.n)
    n, S = len(ds), ds.size
    registry = ModelRegistry.from_yaml(default_models_yaml())
    names = [str(w) for w in args.weights]
    predictors = {name: NetworkPredictor.from_weights(name) for name in names}
    nets = {name: predictor.net for name, predictor in predictors.items()}

    lengths = observability(predictors, registry, ds)
    print(f"\nPart 1: rotation about a random axis at T*, {n} windows, S = {S} (median, window px)")
    print("| delta ° | true |F| | " + " | ".join(f"{k} pred |F| | P(up)" for k in names) + " |")
    print("|---|---|" + "---|---|" * len(names))
    for j, delta in enumerate(DELTAS_DEG):
        cells = [f"{np.median(lengths['true'][:, j]):.2f}"]
        for k in names:
            up = np.mean(lengths[k][:, j] > lengths[k][:, 0]) if j else float("nan")
            cells += [f"{np.median(lengths[k][:, j]):.2f}", f"{up:.2f}"]
        print(f"| {delta:g} | " + " | ".join(cells) + " |")

    rows = one_step(nets, registry, ds)
    print(f"\nPart 2: one Gauss–Newton step from T0, {n} windows (median)")
    print("| damping | field | rotation ° | reprojection px |")
    print("|---|---|---|---|")
    for r in rows:
        reproj = f"{r['reproj_px']:.2f}" if "reproj_px" in r else f"{rows[1]['reproj0_px']:.2f}"
        print(f"| {r['damping'] or '-'} | {r['field']} | {r['rot_deg']:.2f} | {reproj} |")
    if args.json:
        observed = {k: v.tolist() for k, v in lengths.items()}
        doc = {"n": n, "window_size": S, "deltas_deg": DELTAS_DEG, "observability": observed,
               "one_step": rows}  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc))


if __name__ == "__main__":
    main()
