"""gcf-simdepth: a copy of a BOP dataset with simulated depth images (docs/design.md §4).

    gcf-simdepth --dataset ../shared/data/lmo --out runs/lmo_simdepth --seed 0

The copy has the BOP layout: each scene's rgb/ images (symlinks, or copies with --copy), a new
depth/NNNNNN.png per frame (uint16, millimetres), scene_camera.json with the depth_scale that
turns those into the dataset's unit (--dataset-unit: 1.0 for BOP's millimetres), and the
scene's annotation files; everything else at the top (models/, camera.json, ...) is symlinked.
The depth is *simulated* from the ground-truth poses of the annotated objects only (unannotated
clutter is absent), over the table plane fitted to them, with the Kinect-like sensor model of
``gcf_ros.eval.simdepth``. Each frame's noise is drawn from a generator seeded with (seed, scene
id, image id), so a frame's depth does not depend on which other frames are written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from gcf_ros.core.bop import DEFAULT_UNIT, BopDataset, BopFrame
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.symmetry import UNITS_TO_M
from gcf_ros.eval.simdepth import DepthNoise, simulate_frame_depth

README = "README.txt"
_ANNOTATIONS = ("scene_gt.json", "scene_gt_info.json")
PNG_UNIT_M = UNITS_TO_M["mm"]  # the depth PNGs written hold millimetres (1 mm steps)


@dataclasses.dataclass(frozen=True)
class SimDepthConfig:
    """What ``gcf-simdepth`` writes (see ``--help``)."""

    dataset: Path
    out: Path
    split: str = "test"
    seed: int = 0
    noise: DepthNoise = dataclasses.field(default_factory=DepthNoise)
    copy_rgb: bool = False
    max_frames: int | None = None
    unit: str = DEFAULT_UNIT


def frame_rng(seed: int, frame: BopFrame) -> np.random.Generator:
    """The generator of one frame's depth noise: seeded with (seed, scene id, image id)."""
    return np.random.default_rng([seed, frame.scene_id, frame.im_id])


def frame_depth(
    frame: BopFrame, registry: ModelRegistry, seed: int, noise: DepthNoise
) -> np.ndarray:
    """The simulated depth of one frame: (H, W) float32 metres, 0 = missing."""
    models = [registry.get(inst.model_id) for inst in frame.instances]
    T = np.stack([inst.T_cam_obj for inst in frame.instances]) if models else np.zeros((0, 4, 4))
    size = (frame.height, frame.width)
    return simulate_frame_depth(models, T, frame.K, size, frame_rng(seed, frame), noise)


def write_dataset(config: SimDepthConfig, progress=None) -> int:
    """Write the copy; returns the number of frames. ``progress(frame)`` is called per frame."""
    dataset = BopDataset(config.dataset, config.split, unit=config.unit)
    registry = dataset.model_registry()
    src_root, out = Path(config.dataset).resolve(), Path(config.out)
    out.mkdir(parents=True)
    for entry in sorted(src_root.iterdir()):
        if entry.name not in (config.split, README):
            (out / entry.name).symlink_to(entry)
    count = 0
    for scene_id in dataset.scene_ids:
        frames = [f for f in dataset.frames() if f.scene_id == scene_id][: config.max_frames]
        src = frames[0].rgb_path.parent.parent.resolve() if frames else None
        dst = out / config.split / f"{scene_id:06d}"
        (dst / "rgb").mkdir(parents=True)
        (dst / "depth").mkdir()
        for frame in frames:
            _write_frame(frame, registry, config, dst)
            count += 1
            if progress is not None:
                progress(frame)
        if src is not None:
            _write_scene_files(src, dst, frames, PNG_UNIT_M / dataset.unit_to_m)
    (out / README).write_text(readme_text(config, count))
    return count


def _write_frame(frame: BopFrame, registry: ModelRegistry, config: SimDepthConfig, dst: Path):
    rgb = dst / "rgb" / frame.rgb_path.name
    if config.copy_rgb:
        shutil.copy2(frame.rgb_path, rgb)
    else:
        rgb.symlink_to(frame.rgb_path.resolve())
    depth = frame_depth(frame, registry, config.seed, config.noise)
    depth_mm = np.round(depth.astype(np.float64) / PNG_UNIT_M)
    depth_mm = np.where(depth_mm <= 65535, depth_mm, 0).astype(np.uint16)  # beyond 65.5 m: none
    if not cv2.imwrite(str(dst / "depth" / f"{frame.im_id:06d}.png"), depth_mm):
        raise OSError(f"{dst / 'depth'}: could not write frame {frame.im_id}")


def _write_scene_files(src: Path, dst: Path, frames: list[BopFrame], depth_scale: float) -> None:
    """scene_camera.json (with ``depth_scale``: PNG value × it = the dataset unit), the
    annotations of the written frames, and symlinks to the scene's other entries (masks, ...)."""
    keys = {str(f.im_id) for f in frames}
    cams = {str(f.im_id): {"cam_K": f.K.reshape(-1).tolist()} for f in frames}
    if (src / "scene_camera.json").is_file():
        given = json.loads((src / "scene_camera.json").read_text())
        cams = {k: {**given.get(k, {}), **cams[k]} for k in cams}
    cams = {k: {**v, "depth_scale": depth_scale} for k, v in cams.items()}
    (dst / "scene_camera.json").write_text(json.dumps(cams))
    for name in _ANNOTATIONS:
        if (src / name).is_file():
            doc = json.loads((src / name).read_text())
            (dst / name).write_text(json.dumps({k: v for k, v in doc.items() if k in keys}))
    for entry in sorted(src.iterdir()):
        if not (dst / entry.name).exists() and entry.name != "depth":
            (dst / entry.name).symlink_to(entry)


def readme_text(config: SimDepthConfig, count: int) -> str:
    """What the copy is, for whoever finds the folder."""
    noise = "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(config.noise).items())
    return (
        f"BOP-layout copy of {Path(config.dataset).resolve()} (split {config.split}, {count} "
        "frames) with SIMULATED depth, written by gcf-simdepth (gcf_ros.eval.simdepth_cli).\n\n"
        "- rgb/: the real colour images (" + ("copies" if config.copy_rgb else "symlinks") + ").\n"
        f"- depth/NNNNNN.png: uint16 millimetres (scene_camera.json depth_scale "
        f"{PNG_UNIT_M / UNITS_TO_M[config.unit]:g}: the dataset unit is {config.unit}), "
        "0 = missing."
        "\n  Simulated from the ground-truth poses of the ANNOTATED objects only (other objects "
        "in the\n  photographs are absent), over a table plane fitted under them, with a "
        "Kinect-like sensor\n  model (axial noise after Nguyen et al. 2012, edge dropout, blob "
        "holes, 1 mm steps).\n"
        "- scene_gt.json, scene_gt_info.json: copied; models/, camera.json etc.: symlinks.\n\n"
        f"seed: {config.seed} (each frame's generator: [seed, scene_id, im_id])\n"
        f"sensor model (gcf_ros.eval.simdepth.DepthNoise, metres / pixels / fractions):\n{noise}\n"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gcf-simdepth",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", type=Path, required=True, help="BOP-layout folder to copy")
    p.add_argument("--out", type=Path, required=True, help="new folder (must not exist)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--dataset-unit", choices=sorted(UNITS_TO_M), default=DEFAULT_UNIT,
        help="the dataset's length unit (default: mm, BOP's convention)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--drop-fraction", type=float, default=0.0,
        help="also remove this fraction of the valid depth pixels at random, in [0, 1)",
    )  # fmt: skip
    p.add_argument("--exact", action="store_true", help="no sensor noise: exact depth (1 mm steps)")
    p.add_argument("--copy", action="store_true", help="copy the rgb images instead of symlinks")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N of each scene")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.out.exists():
            raise FileExistsError(f"{args.out} exists; choose a new folder")
        noise = (
            DepthNoise.ideal(args.drop_fraction)
            if args.exact
            else DepthNoise(drop_fraction=args.drop_fraction)
        )
        config = SimDepthConfig(args.dataset, args.out, args.split, args.seed, noise,
                                args.copy, args.max_frames, args.dataset_unit)  # fmt: skip
        t0 = time.perf_counter()
        with tqdm(desc="gcf-simdepth", unit="frame", mininterval=2.0) as bar:
            count = write_dataset(config, progress=lambda _: bar.update())
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"gcf-simdepth: {err}", file=sys.stderr)
        return 2
    print(f"wrote {count} frames to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
