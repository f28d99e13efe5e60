"""gcf-render: draw a model's outline and axes at a given pose on an image.

    gcf-render --image IN.png --mesh M.ply --scale 0.001 --K fx,fy,cx,cy \
        --pose "qx qy qz qw tx ty tz" --out OUT.png

The pose is the model's pose in the camera optical frame (metres, quaternion in ROS order x, y, z,
w). Repeat ``--mesh``/``--pose`` (in pairs) to draw several models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.draw import draw_pose
from gcf_ros.core.geometry import quaternion_to_matrix
from gcf_ros.core.models import ModelLoadError, ModelSpec, load_model
from gcf_ros.core.render.raycast import RaycastRenderer

PALETTE_RGB = ((255, 220, 0), (0, 230, 255), (255, 80, 200), (120, 255, 80), (255, 140, 0))


def parse_K(text: str) -> np.ndarray:
    """'fx,fy,cx,cy' -> (3, 3) float64."""
    try:
        fx, fy, cx, cy = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--K wants fx,fy,cx,cy; got {text!r}") from None
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


def parse_pose(text: str) -> np.ndarray:
    """'qx qy qz qw tx ty tz' -> T_cam_obj (4, 4) float64."""
    try:
        vals = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        vals = []
    if len(vals) != 7 or not np.isfinite(vals).all():
        raise argparse.ArgumentTypeError(f"--pose wants 'qx qy qz qw tx ty tz'; got {text!r}")
    q = torch.tensor(vals[:4], dtype=torch.float64)
    if q.norm() < 1e-9:
        raise argparse.ArgumentTypeError("--pose quaternion has zero norm")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(q).numpy()
    T[:3, 3] = vals[4:]
    return T


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gcf-render", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", type=Path, required=True, help="input image (PNG/JPEG)")
    p.add_argument("--mesh", type=Path, action="append", required=True, help="CAD model file")
    p.add_argument("--scale", type=float, default=1.0, help="mesh units to metres (0.001 for mm)")
    p.add_argument("--K", type=parse_K, required=True, help="intrinsics fx,fy,cx,cy (pixels)")
    pose_help = "pose of the model in the camera optical frame: 'qx qy qz qw tx ty tz'"
    p.add_argument("--pose", type=parse_pose, action="append", required=True, help=pose_help)
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.mesh) != len(args.pose):
        print(f"gcf-render: {len(args.mesh)} --mesh but {len(args.pose)} --pose", file=sys.stderr)
        return 2
    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        print(f"gcf-render: cannot read image {args.image}", file=sys.stderr)
        return 2
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    renderer = RaycastRenderer()
    for i, (mesh, T) in enumerate(zip(args.mesh, args.pose, strict=True)):
        try:
            model = load_model(ModelSpec(model_id=mesh.stem, mesh_path=mesh, scale=args.scale))
        except ModelLoadError as err:
            print(f"gcf-render: {err}", file=sys.stderr)
            return 2
        image = draw_pose(image, model, args.K, T, PALETTE_RGB[i % len(PALETTE_RGB)], renderer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        print(f"gcf-render: cannot write {args.out}", file=sys.stderr)
        return 2
    print(f"gcf-render: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
