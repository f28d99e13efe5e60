"""The bundled LM-O sequence (data/demo): frames with ground truth, and coarse detections.

No ROS here: the demo player, the node tests, the benchmark and the README picture all read the
frames through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcf_ros.core.bop import BopFrame, nearest_rotation
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.resources import share_dir


@dataclass(frozen=True)
class SequenceFrame:
    """One bundled frame: image (H, W, 3) uint8 RGB, K (3, 3), ground-truth instances."""

    name: str
    image_rgb: np.ndarray
    K: np.ndarray
    model_ids: list[str]
    T_gt: np.ndarray  # (N, 4, 4) T_cam_obj, metres
    visib: np.ndarray  # (N,) visible fraction


def load_frame(path: Path) -> SequenceFrame:
    """One frame JSON (``cam_K``, ``image``, ``instances`` with ``obj_id``, ``cam_R_m2c``,
    ``cam_t_m2c_mm``, ``visib_fract``; BOP conventions: mm, row-major R)."""
    meta = json.loads(path.read_text())
    bgr = cv2.imread(str(path.parent / meta["image"]), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path.parent / meta["image"])
    insts = meta["instances"]
    T = np.tile(np.eye(4), (len(insts), 1, 1))
    for i, inst in enumerate(insts):
        R = np.asarray(inst["cam_R_m2c"], dtype=np.float64).reshape(3, 3)
        T[i, :3, :3] = nearest_rotation(R)  # stored rotations are off SO(3) by up to 2e-3
        T[i, :3, 3] = np.asarray(inst["cam_t_m2c_mm"], dtype=np.float64) / 1000.0
    return SequenceFrame(
        name=path.stem,
        image_rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
        K=np.asarray(meta["cam_K"], dtype=np.float64).reshape(3, 3),
        model_ids=[f"obj_{inst['obj_id']:06d}" for inst in insts],
        T_gt=T,
        visib=np.array([inst.get("visib_fract", 1.0) for inst in insts]),
    )


def frame_from_bop(frame: BopFrame) -> SequenceFrame:
    """A BOP dataset frame (:mod:`gcf_ros.core.bop`) as a SequenceFrame (image read now)."""
    return SequenceFrame(
        name=f"lmo_{frame.scene_id:06d}_{frame.im_id:06d}",
        image_rgb=frame.load_rgb(),
        K=np.array(frame.K),
        model_ids=[inst.model_id for inst in frame.instances],
        T_gt=np.array([inst.T_cam_obj for inst in frame.instances]).reshape(-1, 4, 4),
        visib=np.array([1.0 if i.visib_fract is None else i.visib_fract for i in frame.instances]),
    )


def load_sequence(path: Path | None = None) -> list[SequenceFrame]:
    """The frames listed in data/demo/sequence.json, in playback order."""
    path = path or share_dir() / "data" / "demo" / "sequence.json"
    return [load_frame(path.parent / name) for name in json.loads(path.read_text())["frames"]]


@dataclass(frozen=True)
class CoarseInstance:
    """A coarse detection the player sends, with the ground truth it came from."""

    model_id: str
    instance_id: str
    T_init: np.ndarray
    T_gt: np.ndarray


def coarse_instances(
    frame: SequenceFrame, level: str = "medium", seed: int = 0, min_visib: float = 0.3
) -> list[CoarseInstance]:
    """Perturbed ground truth of the frame's instances visible at least ``min_visib``."""
    keep = np.flatnonzero(frame.visib >= min_visib)
    T_init = perturb_instances([frame.T_gt[i] for i in keep], level, seed=seed)
    return [
        CoarseInstance(frame.model_ids[i], str(k), np.asarray(T0), frame.T_gt[i])
        for k, (i, T0) in enumerate(zip(keep, T_init, strict=True))
    ]
