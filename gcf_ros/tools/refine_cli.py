"""gcf-refine: refine coarse poses of your own models on your own photo, without ROS.

    gcf-refine --models my_models.yaml --image photo.jpg --K fx,fy,cx,cy \
        --detection mug "qx qy qz qw tx ty tz" [--detection ID POSE ...] \
        [--depth depth.png --depth-unit 0.001] [--terms auto] [--out overlay.png] [--json out.json]

Poses are T_cam_obj in the image's optical frame (x right, y down, z forward), metres, quaternion in
ROS order x, y, z, w: the same text as ``gcf-render --pose``. For each detection it prints the
status, the reason, the confidence and the refined pose in that form (paste it back as a new
start), and draws the initial (red) and refined (green) outlines into ``--out``.

``--terms auto`` (the default) runs the refiner's default terms (the learned field and the
region term) when the network was trained on every model of the call, and the training-free
``region`` term alone otherwise (the field is unreliable on a model it never saw; README:
"Adding your own object"). ``--depth``: a depth image registered to the photo (same size and K):
16-bit PNG in ``--depth-unit`` metres per count, float32 TIFF or .npy in metres; 0 = missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.draw import draw_pose
from gcf_ros.core.geometry import matrix_to_quaternion
from gcf_ros.core.models import ModelLoadError, ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.gcf.checkpoints import find_checkpoint
from gcf_ros.gcf.refiner import STATUS_NAMES, Detection, Refiner, RefinerConfig, RefineResult
from gcf_ros.gcf.weights_meta import read_weights_meta
from gcf_ros.tools.render_cli import parse_K, parse_pose

INITIAL_RGB, REFINED_RGB = (255, 60, 60), (60, 255, 90)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gcf-refine", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, required=True, help="model registry YAML (gcf-models)")
    p.add_argument("--image", type=Path, required=True, help="the photo (PNG/JPEG)")
    p.add_argument("--K", type=parse_K, required=True, help="intrinsics fx,fy,cx,cy (pixels)")
    p.add_argument(
        "--detection",
        nargs=2,
        action="append",
        required=True,
        metavar=("MODEL_ID", "POSE"),
        help="a model id of the registry and its coarse pose 'qx qy qz qw tx ty tz'",
    )
    p.add_argument("--depth", type=Path, default=None, help="registered depth image")
    p.add_argument(
        "--depth-unit",
        type=float,
        default=0.001,
        help="metres per count of a 16-bit depth PNG (default 0.001: millimetres)",
    )
    p.add_argument(
        "--terms",
        default="auto",
        help="auto, or a comma-separated list of terms (field, region, contour, mask)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="network weights: a path or a shipped name (default: gcf_lmo.pt)",
    )
    p.add_argument("--iterations", type=int, default=None, help="default: the refiner's")
    p.add_argument(
        "--out", type=Path, default=None, help="overlay PNG (initial red, refined green)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    return p  # fmt: skip


def read_depth(path: Path, unit: float, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 metres from a 16-bit PNG (counts x ``unit``), a float TIFF or a .npy
    (metres); ValueError when unreadable or not of the photo's ``size`` (H, W)."""
    if path.suffix == ".npy":
        depth = np.load(path)
    else:
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise ValueError(f"cannot read depth image {path}")
    if depth.ndim != 2:
        raise ValueError(f"{path}: a depth image has one channel, got shape {depth.shape}")
    if depth.shape != tuple(size):
        raise ValueError(f"{path}: depth {depth.shape[1]}x{depth.shape[0]} is not registered to "
                         f"the {size[1]}x{size[0]} photo")  # fmt: skip
    if np.issubdtype(depth.dtype, np.integer):
        return depth.astype(np.float32) * np.float32(unit)
    return depth.astype(np.float32)


def choose_terms(text: str, checkpoint: Path, model_ids: list[str]) -> tuple[tuple[str, ...], str]:
    """The terms to run and why."""
    if text != "auto":
        return tuple(t.strip() for t in text.split(",") if t.strip()), "--terms"
    trained = read_weights_meta(checkpoint).trained_models
    unknown = sorted({m for m in model_ids if trained and m not in trained})
    if unknown:
        why = f"the network was not trained on {', '.join(unknown)}: training-free region term"
        return ("region",), why
    return RefinerConfig.terms, f"the network was trained on every model ({checkpoint.name})"


def format_pose(T: np.ndarray) -> str:
    """T_cam_obj (4, 4) -> 'qx qy qz qw tx ty tz' (the --detection / gcf-render --pose form)."""
    q = matrix_to_quaternion(torch.from_numpy(np.asarray(T[:3, :3], dtype=np.float64))).numpy()
    return " ".join(f"{v:.6f}" for v in (*q, *T[:3, 3]))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results, image, K, registry, note = _run(args)
    except (FileNotFoundError, ValueError, ModelLoadError, KeyError) as err:
        print(f"gcf-refine: {err}", file=sys.stderr)
        return 2
    print(f"gcf-refine: terms: {note}")
    rows = []
    for r in results:
        rot = np.degrees(np.arccos(np.clip(
            (np.trace(r.T_init[:3, :3].T @ r.T_cam_obj[:3, :3]) - 1) / 2, -1, 1)))  # fmt: skip
        moved_cm = 100 * np.linalg.norm(r.T_cam_obj[:3, 3] - r.T_init[:3, 3])
        print(f"{r.model_id}: {STATUS_NAMES[r.status]} after {r.iterations} iterations, "
              f"confidence {r.confidence:.3f}, moved {rot:.1f} deg / {moved_cm:.1f} cm"
              + (f" ({r.status_reason})" if r.status_reason else ""))  # fmt: skip
        print(f"  pose: {format_pose(r.T_cam_obj)}")
        rows.append({"model_id": r.model_id, "status": STATUS_NAMES[r.status],
                     "reason": r.status_reason, "confidence": r.confidence,
                     "iterations": r.iterations, "pose": format_pose(r.T_cam_obj),
                     "T_cam_obj": r.T_cam_obj.tolist(), "scores": r.scores})  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"terms": note, "results": rows}, indent=1))
    if args.out:
        renderer, overlay = RaycastRenderer(), image
        for r in results:
            model = registry.get(r.model_id)
            overlay = draw_pose(overlay, model, K, r.T_init, INITIAL_RGB, renderer)
            overlay = draw_pose(overlay, model, K, r.T_cam_obj, REFINED_RGB, renderer)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.out), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
            print(f"gcf-refine: cannot write {args.out}", file=sys.stderr)
            return 2
        print(f"gcf-refine: wrote {args.out}")
    return 0


def _run(args) -> tuple[list[RefineResult], np.ndarray, np.ndarray, ModelRegistry, str]:
    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {args.image}")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    registry = ModelRegistry.from_yaml(args.models)
    detections = []
    for model_id, pose in args.detection:
        if model_id not in registry.ids:
            raise KeyError(f"--detection {model_id!r}: not in {args.models} "
                           f"(ids: {', '.join(registry.ids)})")  # fmt: skip
        try:
            detections.append(Detection(model_id, parse_pose(pose)))
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"--detection {model_id}: {err}") from None
    checkpoint = find_checkpoint(args.checkpoint)
    terms, note = choose_terms(args.terms, checkpoint, [d.model_id for d in detections])
    overrides: dict = {"terms": terms}
    if args.iterations:
        overrides.update(iterations=args.iterations, depth_iterations=args.iterations)
    if "field" in terms or "mask" in terms:
        refiner = Refiner.from_checkpoint(registry, checkpoint, overrides=overrides)
    else:
        refiner = Refiner(registry, None, RefinerConfig.resolve(None, **overrides))
    depth = None
    if args.depth is not None:
        depth = read_depth(args.depth, args.depth_unit, image.shape[:2])
        note += "; with depth"
    return refiner.refine(image, args.K, detections, depth_m=depth), image, args.K, registry, note


if __name__ == "__main__":
    sys.exit(main())
