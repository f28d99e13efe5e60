"""Copy the part of a BOP dataset (LM-O) that gcf-eval's protocol reads for some frames.

    python scripts/lmo_subset.py --out shared/lmo_51_100 --frames 51-100 [--dataset DIR]

(``--dataset``: default ``../shared/data/lmo`` beside the repository.)

Frames are numbered 1..N in (scene, image) order, as ``gcf-eval --frames`` numbers them
(:func:`gcf_ros.eval.cli.frame_range`). The copy holds:

- every scene's ``scene_gt.json``, ``scene_gt_info.json`` and ``scene_camera.json`` whole (a few
  hundred kB): the protocol draws the initial poses in one pass over every instance of the dataset
  (:func:`gcf_ros.eval.harness.select_instances`) and numbers the frames over all of them, so
  annotations cut to the chosen frames would renumber the frames and change the initial poses;
- the colour (and depth, when there is a ``depth/`` folder) images of the chosen frames only:
  the other frames have annotations but no image (BopDataset takes their size from
  scene_camera.json / camera.json) and must not be evaluated;
- ``camera.json``, ``models/models_info.json`` (symmetries), ``test_targets_bop19.json`` cut to
  the chosen images, and the README / dataset_info (the licence asks to keep the attribution).

No meshes: on a machine without open3d the models come from a registry snapshot
(``gpu_check.py --models-snapshot``). So ``BopDataset(OUT)`` reads the same frames and instances
and ``frame_range(select_instances(...), dataset, FRAMES)`` selects the same instances, with the
same initial poses, as on the full dataset.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a plain copy of the repository (no install)
    sys.path.insert(0, str(ROOT))

from gcf_ros.core.bop import BopDataset, BopFrame  # noqa: E402
from gcf_ros.eval.cli import frame_range  # noqa: E402

SCENE_FILES = ("scene_gt.json", "scene_gt_info.json", "scene_camera.json")
ROOT_FILES = ("camera.json", "README.md", "dataset_info.md", "models/models_info.json")
TARGETS = "test_targets_bop19.json"


def chosen_frames(dataset: BopDataset, frames: str) -> list[BopFrame]:
    """The frames ``frames`` ("A-B" or "A", 1-based) selects, numbered as gcf-eval does."""
    return [item[0] for item in frame_range([(f,) for f in dataset.frames()], dataset, frames)]


def write_subset(source: Path, out: Path, frames: str, split: str = "test") -> dict:
    """Copy what the frames ``frames`` of the BOP dataset ``source`` need into ``out`` (a new or
    empty folder); returns a summary (frames, images, bytes)."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty")
    dataset = BopDataset(source, split)
    source = dataset.root
    chosen = chosen_frames(dataset, frames)
    if not chosen:
        raise ValueError(f"--frames {frames}: no frame selected of {len(dataset)}")
    for name in ROOT_FILES:
        _copy(source / name, out / name, required=name == "camera.json")
    for scene_id in dataset.scene_ids:
        scene = f"{split}/{scene_id:06d}"
        for name in SCENE_FILES:
            _copy(source / scene / name, out / scene / name, required=name == "scene_gt.json")
    images = [p for frame in chosen for p in (frame.rgb_path, frame.depth_path) if p.is_file()]
    for path in images:
        _copy(path, out / path.relative_to(source), required=True)
    _write_targets(source / TARGETS, out / TARGETS, {(f.scene_id, f.im_id) for f in chosen})
    (out / "SUBSET.md").write_text(_readme(source, frames, chosen))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"out": str(out), "frames": frames, "n_frames": len(chosen),
            "im_ids": [f.im_id for f in chosen], "images": len(images), "bytes": size}  # fmt: skip


def _copy(src: Path, dst: Path, required: bool) -> None:
    if not src.is_file():
        if required:
            raise FileNotFoundError(f"{src}: not found")
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write_targets(src: Path, dst: Path, keep: set[tuple[int, int]]) -> None:
    """BOP'19 targets of the kept images only (not read by gcf-eval; kept for reference)."""
    if not src.is_file():
        return
    targets = json.loads(src.read_text())
    kept = [t for t in targets if (int(t["scene_id"]), int(t["im_id"])) in keep]
    dst.write_text(json.dumps(kept, indent=1))


def _readme(source: Path, frames: str, chosen: list[BopFrame]) -> str:
    return (
        f"# Subset of {source.name}: frames {frames} (gcf-eval --frames numbering)\n\n"
        f"Written by gcf_ros's scripts/lmo_subset.py from {source}. The annotations of every frame "
        f"are kept (frame numbering and initial poses as on the full set); images only for the "
        f"{len(chosen)} frames {frames} (im_id {chosen[0].im_id}-{chosen[-1].im_id}). No meshes: "
        "load the models from a registry snapshot. Licence and attribution: README.md.\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/lmo")
    p.add_argument("--out", type=Path, required=True, help="the subset folder (new or empty)")
    p.add_argument("--frames", default="51-100", help="A-B, 1-based (gcf-eval --frames)")
    p.add_argument("--split", default="test")
    args = p.parse_args(argv)
    try:
        info = write_subset(args.dataset, args.out, args.frames, args.split)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"lmo_subset: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in info.items() if k != "im_ids"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
