"""The README picture: initial (red) vs GCF-refined (green) outlines on the shipped LM-O demo frame.

    python scripts/refine_picture.py --out docs/images/refinement.png [--noise medium] [--seed 0]
        [--terms field,region]   # default: the refiner's default terms

    # leave-one-object-out (docs/results.md): each object refined by the network that never saw it
    python scripts/refine_picture.py --out docs/images/novel_object.png \
        --network obj_000008=runs/loo/wo8/gcf_loo_wo8.pt --only-networks --crop 40 --zoom 2

Initial poses: the demo frame's ground truth perturbed with the evaluation protocol (every visible
instance's, so the draws do not depend on which are drawn). Prints the per-instance 2D projection
errors before and after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from gcf_ros.core.draw import draw_outline, outline_contours
from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.cli import parse_overrides
from gcf_ros.eval.metrics import projection_error_px
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.eval.sequence import load_sequence
from gcf_ros.gcf.refiner import STATUS_NAMES, Detection, Refiner
from gcf_ros.resources import default_models_yaml


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/images/refinement.png"))
    p.add_argument("--noise", default="medium")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--terms", default=None, help="solver terms (default: the refiner's)")
    p.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="MODEL_ID=WEIGHTS",
        help="refine this model with these weights (repeatable; others: shipped)",
    )
    p.add_argument(
        "--only-networks", action="store_true", help="draw only the models given with --network"
    )
    p.add_argument(
        "--crop",
        type=int,
        default=None,
        metavar="PX",
        help="crop to the drawn outlines plus this margin",
    )
    p.add_argument("--zoom", type=float, default=1.0, help="scale the written picture by this")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a RefinerConfig field, as gcf-eval --set (repeatable)",
    )  # fmt: skip
    return p


def main() -> None:
    p = _parser()
    args = p.parse_args()
    networks = dict(item.split("=", 1) for item in args.network)
    frame = load_sequence()[0]  # scene 2, image 3
    image, K = frame.image_rgb, frame.K
    keep = [i for i in range(len(frame.model_ids)) if frame.visib[i] >= 0.3]
    registry = ModelRegistry.from_yaml(default_models_yaml())
    T_gt = [frame.T_gt[i] for i in keep]
    T0 = perturb_instances(T_gt, args.noise, args.seed)
    overrides = parse_overrides(args.set)
    if args.terms:
        overrides["terms"] = tuple(args.terms.split(","))
    ids = [frame.model_ids[i] for i in keep]
    unknown = sorted(set(networks) - set(ids))
    if unknown:
        p.error(f"--network: {unknown} not visible in the demo frame ({ids})")
    drawn = [i for i, m in enumerate(ids) if m in networks or not args.only_networks]
    refiners = {w: Refiner.from_checkpoint(registry, w, overrides=overrides)
                for w in {networks.get(ids[i]) for i in drawn}}  # fmt: skip
    results: dict = {}
    for weights, refiner in refiners.items():  # one batch per network, as the node refines
        group = [i for i in drawn if networks.get(ids[i]) == weights]
        dets = [Detection(ids[i], T0[i]) for i in group]
        results.update(zip(group, refiner.refine(image, K, dets), strict=True))
    out = image
    h, w = image.shape[:2]
    boxes = []
    for i in drawn:
        model_id, T_true, T_init, res = ids[i], T_gt[i], T0[i], results[i]
        model = registry.get(model_id)
        for T in (T_init, res.T_cam_obj):
            for c in outline_contours(model, K, T, (w, h)):
                boxes.append(cv2.boundingRect(c.reshape(-1, 1, 2).astype(np.int32)))
        out = draw_outline(out, outline_contours(model, K, T_init, (w, h)), (255, 40, 40), 1)
        out = draw_outline(out, outline_contours(model, K, res.T_cam_obj, (w, h)), (40, 255, 60))
        before = projection_error_px(model.verts_obj, K, T_init, T_true)
        after = projection_error_px(model.verts_obj, K, res.T_cam_obj, T_true)
        print(f"{model_id} ({model.tf_name:<11}) 2D error {before:6.2f} -> {after:6.2f} px "
              f"({res.iterations} iterations, {STATUS_NAMES[res.status]}, "
              f"confidence {res.confidence:.2f}; "
              f"{networks.get(model_id, 'shipped network')})")  # fmt: skip
    if args.crop is not None and boxes:
        x0 = max(min(b[0] for b in boxes) - args.crop, 0)
        y0 = max(min(b[1] for b in boxes) - args.crop, 0)
        x1 = min(max(b[0] + b[2] for b in boxes) + args.crop, w)
        y1 = min(max(b[1] + b[3] for b in boxes) + args.crop, h)
        out = out[y0:y1, x0:x1]
    if args.zoom != 1.0:
        out = cv2.resize(out, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
