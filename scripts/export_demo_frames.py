"""Export LM-O frames into data/demo/ (image + one JSON per frame) and write sequence.json.

    python scripts/export_demo_frames.py [--lmo ../shared/data/lmo] [--scene 2] [--images 3 8 17 27]

The demo sequence is a handful of consecutive evaluation frames of LM-O scene 2 (CC BY-SA 4.0, see
data/demo/README.md). They are shown to users and used by tests; never for training or tuning.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export(lmo: Path, scene: int, image_id: int, out_dir: Path) -> str:
    scene_dir = lmo / "test" / f"{scene:06d}"
    cam = json.loads((scene_dir / "scene_camera.json").read_text())[str(image_id)]
    gts = json.loads((scene_dir / "scene_gt.json").read_text())[str(image_id)]
    infos = json.loads((scene_dir / "scene_gt_info.json").read_text())[str(image_id)]
    name = f"lmo_{scene:06d}_{image_id:06d}"
    shutil.copyfile(scene_dir / "rgb" / f"{image_id:06d}.png", out_dir / f"{name}.png")
    meta = {
        "source": f"BOP'19 LM-O test scene {scene}, image {image_id} "
        "(see README.md in this folder)",
        "image": f"{name}.png",
        "cam_K": cam["cam_K"],
        "width": 640,
        "height": 480,
        "instances": [
            {
                "obj_id": gt["obj_id"],
                "cam_R_m2c": gt["cam_R_m2c"],
                "cam_t_m2c_mm": gt["cam_t_m2c"],
                "visib_fract": round(info["visib_fract"], 4),
            }
            for gt, info in zip(gts, infos, strict=True)
        ],
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return f"{name}.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lmo", type=Path, default=ROOT.parent / "shared" / "data" / "lmo")
    p.add_argument("--scene", type=int, default=2)
    p.add_argument("--images", type=int, nargs="+", default=[3, 8, 17, 27])
    p.add_argument("--out", type=Path, default=ROOT / "data" / "demo")
    args = p.parse_args()
    frames = [export(args.lmo, args.scene, i, args.out) for i in args.images]
    (args.out / "sequence.json").write_text(json.dumps({"frames": frames}, indent=1) + "\n")
    print(f"wrote {len(frames)} frames to {args.out}")


if __name__ == "__main__":
    main()
