"""Where does the refiner come to rest? Start AT the true pose and refine: a network with no bias
predicts a zero field there and stays; what it does instead is its fixed-point bias, the floor of
its accuracy. Analysis only: nothing is fitted or chosen here.

    python experiments/fixed_point_study.py [--weights W] [--n 60] [SETTING ...] [--flip-average]
    python experiments/fixed_point_study.py --baseline rgb --n 60   # the RGB baseline, real frames

Two sets of windows, the same refiner:

- ``synthetic``: validation windows (``--val``, camera-resolution ones by default) with the window
  as the whole image, as ``scripts/tune_refiner.py`` uses them;
- ``real``: the first ``--n`` LM-O instances of the gcf-eval selection (ground-truth poses of
  ../shared/data/lmo), refined in the full image.

Per setting (``key=value,...`` of RefinerConfig fields as in ``scripts/tune_refiner.py``; "" = the
weights file's own settings) it prints the median drift after refinement: rotation (deg),
translation (cm) split into depth |dz| and lateral |dxy|, 2D projection error (px), and the median
signed shift (du, dv) of the projected object centre (px, full image for real frames, window for
synthetic ones). ``--flip-average`` averages the network's field over the window and its mirror
image (both branches flipped, the field flipped back): if that halves the drift, the drift is the
network's variance; if not, it is a bias. ``--baseline rgb`` runs the soft-rasterizer RGB baseline
of gcf-eval from the true poses instead (real frames only; ~10 s per instance): where photometric
agreement with the image lies, a reference for the network's drift that does not depend on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.cli import parse_overrides
from gcf_ros.eval.harness import EvalConfig, evaluate, select_instances
from gcf_ros.eval.methods import EvalFrame, Method, MethodOutput
from gcf_ros.eval.metrics import projection_error_px, rotation_error_deg, translation_error_cm
from gcf_ros.gcf.inputs import image_input, render_input
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Refiner, RefinerConfig, default_checkpoint
from gcf_ros.resources import default_models_yaml
from gcf_ros.train.shards import validation_windows


class FlipAveragedPredictor(NetworkPredictor):
    """The network's field averaged over the window and its left-right mirror image.

    Mirroring the rendering branch flips its pixels and negates the x component of the camera-frame
    normals; the mirrored field is flipped back with its u component negated.
    """

    @torch.inference_mode()
    def predict(self, image_windows, render, diameters, K_window, instance_idx):
        if not self.net.config.weight_head:
            raise ValueError("--flip-average needs a network with a weight head")
        image = image_input(image_windows).to(self.device)
        rend = render_input(render, diameters).to(self.device)
        mirrored = rend.flip(-1).clone()
        mirrored[:, 3] = -mirrored[:, 3]  # channels: xyz/diameter (0-2), normals (3-5), ...
        out = self.net(torch.cat([image, image.flip(-1)]), torch.cat([rend, mirrored]))
        B = image.shape[0]
        field_back = out.field[B:].flip(-1).clone()
        field_back[:, 0] = -field_back[:, 0]
        field = (out.field[:B] + field_back) / 2
        weight = (out.weight[:B, 0] + out.weight[B:, 0].flip(-1)) / 2
        field = field.permute(0, 2, 3, 1).float().cpu().contiguous()
        return field, weight.float().cpu() * render.mask


def _centre_px(K: np.ndarray, T: np.ndarray) -> np.ndarray:
    p = K @ T[:3, 3]
    return p[:2] / p[2]


def _drift(registry, model_id, K, T_rest, T_true) -> list[float]:
    d = T_rest[:3, 3] - T_true[:3, 3]
    du, dv = _centre_px(K, T_rest) - _centre_px(K, T_true)
    verts = registry.get(model_id).verts_obj
    return [
        rotation_error_deg(T_rest[:3, :3], T_true[:3, :3]),
        translation_error_cm(T_rest[:3, 3], T_true[:3, 3]),
        100 * abs(d[2]),
        100 * np.linalg.norm(d[:2]),
        projection_error_px(verts, K, T_rest, T_true),
        du,
        dv,
    ]


def synthetic_drift(refiner: Refiner, registry, val: Path, n: int) -> np.ndarray:
    rows = []
    for w in validation_windows(val, n):
        (res,) = refiner.refine_poses(w.image, w.K, [w.model_id], w.T_true[None])
        rows.append(_drift(registry, w.model_id, w.K, res.T_cam_obj, w.T_true))
    return np.array(rows)


def _real_instances(registry, dataset: Path, n: int) -> list:
    """The gcf-eval selection with every initial pose replaced by the truth (the noise level only
    draws the initial poses, which are not used)."""
    selected = select_instances(BopDataset(dataset), registry, EvalConfig(dataset, "medium", 0, n))
    return [(frame, inst, visib, inst.T_cam_obj) for frame, inst, visib, _T0 in selected]


class _Recorded:
    """A gcf-eval method that keeps the drift of every instance it refines."""

    def __init__(self, method: Method, registry) -> None:
        self.method, self.registry, self.label = method, registry, method.label
        self.rows: list[list[float]] = []

    def refine(self, frame: EvalFrame, T_init: np.ndarray) -> MethodOutput:
        out = self.method.refine(frame, T_init)
        for model, T_rest, T_true in zip(frame.models, out.T_cam_obj, T_init, strict=True):
            self.rows.append(_drift(self.registry, model.model_id, frame.K, T_rest, T_true))
        return out


def baseline_drift(space: str, registry, dataset: Path, n: int) -> np.ndarray:
    from gcf_ros.baselines.soft_render import SoftRenderConfig
    from gcf_ros.eval.methods import SoftRenderMethod

    method = _Recorded(SoftRenderMethod(SoftRenderConfig.for_space(space), registry), registry)
    evaluate(_real_instances(registry, dataset, n), registry, method)
    return np.array(method.rows)


def real_drift(refiner: Refiner, registry, dataset: Path, n: int) -> np.ndarray:
    selected = _real_instances(registry, dataset, n)
    rows, key, image = [], None, None
    for frame, inst, _visib, T in selected:
        if key != (frame.scene_id, frame.im_id):
            key, image = (frame.scene_id, frame.im_id), frame.load_rgb()
        (res,) = refiner.refine_poses(image, frame.K, [inst.model_id], T[None])
        rows.append(_drift(registry, inst.model_id, frame.K, res.T_cam_obj, T))
    return np.array(rows)


def summary(rows: np.ndarray) -> dict:
    med = np.median(rows, axis=0)
    names = ("rot_deg", "trans_cm", "depth_cm", "lateral_cm", "proj_px", "du_px", "dv_px")
    out = {k: round(float(v), 2) for k, v in zip(names, med, strict=True)}
    out["share_dv_positive"] = round(float(np.mean(rows[:, 6] > 0)), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("settings", nargs="*", default=[""])
    p.add_argument("--weights", type=Path, default=default_checkpoint())
    p.add_argument("--val", type=Path, default=Path("data/synthetic/val_s128cam"))
    p.add_argument("--dataset", type=Path, default=Path("../shared/data/lmo"))
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--flip-average", action="store_true")
    p.add_argument("--skip", choices=("synthetic", "real"), help="leave one set out")
    p.add_argument("--baseline", choices=("rgb",), help="this baseline instead of the network")
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = ModelRegistry.from_yaml(default_models_yaml())
    if args.baseline:
        rows = baseline_drift(args.baseline, registry, args.dataset, args.n)
        print(json.dumps({"set": "real", "method": args.baseline, "n": len(rows), **summary(rows)}))
        return
    predictor_cls = FlipAveragedPredictor if args.flip_average else NetworkPredictor
    predictor = predictor_cls.from_weights(args.weights)
    for setting in args.settings:
        refiner = Refiner(
            registry,
            predictor,
            RefinerConfig.resolve(
                predictor.weights, **parse_overrides([kv for kv in setting.split(",") if kv])
            ),
        )
        for name, study in (("synthetic", synthetic_drift), ("real", real_drift)):
            if args.skip == name:
                continue
            source = args.val if name == "synthetic" else args.dataset
            rows = study(refiner, registry, source, args.n)
            row = {"set": name, "setting": setting or "(weights' own)", "n": len(rows)}
            print(json.dumps({**row, "flip_average": args.flip_average, **summary(rows)}))


if __name__ == "__main__":
    main()
