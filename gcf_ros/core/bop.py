"""Reader for datasets in the BOP format (https://bop.felk.cvut.cz/datasets/), e.g. LM-O.

Layout: ``<root>/camera.json``, ``<root>/models/obj_NNNNNN.ply`` (+ ``models_info.json``) and
``<root>/<split>/<scene:06d>/{scene_gt.json, scene_camera.json, scene_gt_info.json, rgb/, depth/}``.

**Units.** A BOP folder's lengths (``cam_t_m2c``, depth values × ``depth_scale``, models_info,
meshes) are in one unit, the dataset's: millimetres by BOP's convention, else given explicitly
(``BopDataset(unit="m")``, ``gcf-eval --dataset-unit m``). Everything returned here is in metres.

**Optional files.** ``scene_gt_info.json`` (no visibility), ``scene_camera.json`` (camera.json's
intrinsics for every image), ``depth/`` (uint16 PNGs; value × the frame's ``depth_scale`` = the
dataset unit; 0 = no measurement) and ``models/models_info.json`` (see
:mod:`gcf_ros.core.bop_models`).

**Image sizes.** Each image's own: ``width``/``height`` of its ``scene_camera.json`` entry when
given, else read from the header of its rgb file, else camera.json's. A frame whose intrinsics
come from camera.json must have camera.json's size, and every frame's principal point must lie in
its image: otherwise a ValueError names the file.

**Object ids.** An instance's ``model_id`` (the registry id) is ``obj_NNNNNN`` for BOP object id
N, unless the dataset is given a ``model_ids`` map {obj_id: registry id}.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gcf_ros.core._bop_camera import BopCamera, read_json
from gcf_ros.core.bop_models import (
    DEFAULT_UNIT,
    LMO_SYMMETRIC_OBJ_IDS,
    bop_model_registry,
    default_model_id,
    model_info_m,
    unit_to_m,
)
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.symmetry import UNITS_TO_M

__all__ = [
    "DEFAULT_UNIT",
    "LMO_SYMMETRIC_OBJ_IDS",
    "BopDataset",
    "BopFrame",
    "BopInstance",
    "default_model_id",
    "unit_to_m",
]


@dataclass(frozen=True)
class BopInstance:
    """One ground-truth object instance in one image (arrays read-only).

    Attributes:
        scene_id: BOP scene id.
        im_id: image id within the scene.
        inst_idx: index of this instance in the image's ``scene_gt.json`` list.
        obj_id: BOP object id (1 = ape ... for LM-O).
        R_cam_obj: (3, 3) float64 rotation, object frame → camera frame: the stored ``cam_R_m2c``
            projected onto SO(3) (LM-O's matrices are off orthonormal by up to 2e-3).
        t_cam_obj: (3,) float64 translation, metres: X_cam = R_cam_obj @ X_obj + t_cam_obj.
        visib_fract: visible fraction of the object's projection in [0, 1] (None: no gt_info).
        bbox_visib: (x, y, w, h) pixels of the visible part (None: no gt_info).
        bbox_obj: (x, y, w, h) pixels of the whole projected object (None: no gt_info).
        model_id: the registry id of the object ("" → ``obj_NNNNNN``, :func:`default_model_id`).
    """

    scene_id: int
    im_id: int
    inst_idx: int
    obj_id: int
    R_cam_obj: np.ndarray
    t_cam_obj: np.ndarray
    visib_fract: float | None = None
    bbox_visib: tuple[int, int, int, int] | None = None
    bbox_obj: tuple[int, int, int, int] | None = None
    model_id: str = ""

    def __post_init__(self) -> None:
        for name, shape in (("R_cam_obj", (3, 3)), ("t_cam_obj", (3,))):
            array = np.array(getattr(self, name), dtype=np.float64).reshape(shape)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if not self.model_id:
            object.__setattr__(self, "model_id", default_model_id(self.obj_id))

    @property
    def T_cam_obj(self) -> np.ndarray:
        """(4, 4) float64 homogeneous transform, object frame → camera frame, metres."""
        T = np.eye(4)
        T[:3, :3] = self.R_cam_obj
        T[:3, 3] = self.t_cam_obj
        return T


@dataclass(frozen=True)
class BopFrame:
    """One image with its intrinsics and ground-truth instances (K read-only).

    Attributes:
        scene_id: BOP scene id.
        im_id: image id within the scene.
        rgb_path: the colour image file.
        K: (3, 3) float64 pinhole intrinsics, pixels.
        width: this image's width, pixels.
        height: this image's height, pixels.
        instances: the ground-truth instances, in ``scene_gt.json`` order.
        depth_scale: depth PNG value × depth_scale = the dataset unit (``scene_camera.json``; 1.0
            when it gives none).
        unit_to_m: metres per dataset unit (default: BOP's millimetres).
    """

    scene_id: int
    im_id: int
    rgb_path: Path
    K: np.ndarray
    width: int
    height: int
    instances: tuple[BopInstance, ...]
    depth_scale: float = 1.0
    unit_to_m: float = UNITS_TO_M[DEFAULT_UNIT]

    def __post_init__(self) -> None:
        K = np.array(self.K, dtype=np.float64).reshape(3, 3)
        K.flags.writeable = False
        object.__setattr__(self, "K", K)
        for name in ("depth_scale", "unit_to_m"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0.0):
                raise ValueError(f"image {self.im_id}: {name} must be > 0, got {value}")
            object.__setattr__(self, name, value)

    @property
    def depth_path(self) -> Path:
        """Where BOP keeps this frame's depth image: ``<scene>/depth/NNNNNN.png``."""
        return self.rgb_path.parent.parent / "depth" / f"{self.im_id:06d}.png"

    def load_rgb(self) -> np.ndarray:
        """The image as (H, W, 3) uint8, RGB channel order."""
        if not self.rgb_path.is_file():
            raise FileNotFoundError(f"{self.rgb_path}: image file not found")
        bgr = cv2.imread(str(self.rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{self.rgb_path}: unreadable image (corrupt or unsupported format)")
        if bgr.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"{self.rgb_path}: image is {bgr.shape[1]} x {bgr.shape[0]}, its frame "
                f"{self.width} x {self.height}"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def load_depth(self, required: bool = False) -> np.ndarray | None:
        """The depth image as (H, W) float32 camera z in metres, 0 where missing.

        Returns None when the scene has no ``depth/`` folder, unless ``required`` (then
        FileNotFoundError). A missing file in an existing ``depth/`` folder is always an error,
        as is a file that is not a (height, width) single-channel uint16 PNG.
        """
        path = self.depth_path
        if not path.parent.is_dir():
            if not required:
                return None
            raise FileNotFoundError(
                f"{path.parent}: no depth folder: this dataset has no depth images (gcf-simdepth "
                "makes a copy of a BOP dataset with simulated depth)"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{path}: depth image not found")
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: unreadable depth image (corrupt or unsupported format)")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise ValueError(
                f"{path}: a BOP depth image is single-channel uint16, got {raw.dtype} with shape "
                f"{raw.shape}"
            )
        if raw.shape != (self.height, self.width):
            raise ValueError(
                f"{path}: depth image is {raw.shape[1]} x {raw.shape[0]}, the colour image "
                f"{self.width} x {self.height}"
            )
        return (raw * (self.depth_scale * self.unit_to_m)).astype(np.float32)


class BopDataset:
    """A BOP dataset split: scenes discovered on disk, annotations read lazily per scene.

    Args:
        root: the BOP folder.
        split: the split folder under it (``test``).
        unit: the dataset's length unit, ``mm`` (BOP's convention), ``cm`` or ``m``.
        model_ids: registry id per BOP object id; ids not in it are ``obj_NNNNNN``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        unit: str = DEFAULT_UNIT,
        model_ids: Mapping[int, str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = split
        self.unit = unit
        self.unit_to_m = unit_to_m(unit)
        self._model_ids = {int(k): str(v) for k, v in (model_ids or {}).items()}
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir}: BOP split folder not found")
        self._camera = BopCamera.read(self.root / "camera.json")
        self._scene_dirs = {
            int(d.name): d
            for d in sorted(split_dir.iterdir())
            if d.is_dir() and d.name.isdigit() and len(d.name) == 6
        }
        if not self._scene_dirs:
            raise FileNotFoundError(f"{split_dir}: no scene folders (6-digit names)")
        self._scenes: dict[int, dict[int, BopFrame]] = {}

    @property
    def scene_ids(self) -> tuple[int, ...]:
        """Scene ids, sorted."""
        return tuple(sorted(self._scene_dirs))

    def frames(self) -> Iterator[BopFrame]:
        """All frames, sorted by (scene_id, im_id)."""
        for scene_id in self.scene_ids:
            scene = self._scene(scene_id)
            for im_id in sorted(scene):
                yield scene[im_id]

    def frame(self, scene_id: int, im_id: int) -> BopFrame:
        """One frame; KeyError when the scene or the image has no annotation."""
        scene = self._scene(scene_id)
        if im_id not in scene:
            raise KeyError(f"scene {scene_id}: no image {im_id} in scene_gt.json")
        return scene[im_id]

    def __len__(self) -> int:
        return sum(len(self._scene(scene_id)) for scene_id in self.scene_ids)

    def instances(self, min_visib: float = 0.0) -> Iterator[tuple[BopFrame, BopInstance]]:
        """All (frame, instance) with visib_fract >= min_visib; unknown visibility passes only
        when min_visib <= 0."""
        for frame in self.frames():
            for inst in frame.instances:
                visib = inst.visib_fract
                if (visib is None and min_visib <= 0.0) or (
                    visib is not None and visib >= min_visib
                ):
                    yield frame, inst

    def model_id(self, obj_id: int) -> str:
        """The registry id of BOP object ``obj_id`` (the ``model_ids`` map, else obj_NNNNNN)."""
        return self._model_ids.get(int(obj_id)) or default_model_id(obj_id)

    @cached_property
    def models_info(self) -> dict[int, dict[str, Any]]:
        """Per obj_id: ``diameter_m`` (float), ``bbox_min_m`` and ``bbox_size_m`` ((3,) float64),
        metres, from ``models/models_info.json`` (required here; not by :meth:`model_registry`)."""
        raw = read_json(self.root / "models" / "models_info.json")
        return {
            int(k): model_info_m(v, self.unit_to_m)
            for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))
        }

    def model_path(self, obj_id: int) -> Path:
        """``models/obj_NNNNNN.ply``; FileNotFoundError when absent."""
        path = self.root / "models" / f"obj_{obj_id:06d}.ply"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file not found")
        return path

    def model_registry(self, face_budget: int | None = None) -> ModelRegistry:
        """A registry of the dataset's ``models/`` folder, in its unit, with the symmetries of
        its models_info.json (:func:`gcf_ros.core.bop_models.bop_model_registry`)."""
        return bop_model_registry(self.root / "models", self.unit_to_m, face_budget, self.model_id)

    def _scene(self, scene_id: int) -> dict[int, BopFrame]:
        if scene_id not in self._scene_dirs:
            raise KeyError(f"unknown scene {scene_id}; known scenes: {list(self.scene_ids)}")
        if scene_id not in self._scenes:
            self._scenes[scene_id] = _load_scene(self._scene_dirs[scene_id], scene_id, self)
        return self._scenes[scene_id]


def _load_scene(scene_dir: Path, scene_id: int, dataset: BopDataset) -> dict[int, BopFrame]:
    """Every annotated image of one scene, by im_id."""
    gt = read_json(scene_dir / "scene_gt.json")
    cam_path, info_path = scene_dir / "scene_camera.json", scene_dir / "scene_gt_info.json"
    cams = read_json(cam_path) if cam_path.is_file() else {}
    infos = read_json(info_path) if info_path.is_file() else None
    frames = {}
    for key, entries in gt.items():
        im_id = int(key)
        if infos is not None and len(infos.get(key, [])) != len(entries):
            raise ValueError(f"{info_path}: image {key} does not match scene_gt.json's instances")
        info = infos[key] if infos is not None else [None] * len(entries)
        instances = tuple(
            _instance(scene_id, im_id, idx, entry, inf, dataset)
            for idx, (entry, inf) in enumerate(zip(entries, info, strict=True))
        )
        rgb = _rgb_path(scene_dir, im_id)
        cam = cams.get(key, {})
        K, (width, height) = dataset._camera.for_image(rgb, cam, cam_path)
        depth_scale = float(cam.get("depth_scale", 1.0))
        frames[im_id] = BopFrame(
            scene_id, im_id, rgb, K, width, height, instances, depth_scale, dataset.unit_to_m
        )
    return frames


def _instance(
    scene_id: int,
    im_id: int,
    idx: int,
    gt: dict[str, Any],
    info: dict[str, Any] | None,
    dataset: BopDataset,
) -> BopInstance:
    def _box(name: str) -> tuple[int, int, int, int] | None:
        return None if info is None else tuple(int(v) for v in info[name])  # type: ignore[return-value]

    obj_id = int(gt["obj_id"])
    return BopInstance(
        scene_id=scene_id,
        im_id=im_id,
        inst_idx=idx,
        obj_id=obj_id,
        R_cam_obj=nearest_rotation(np.reshape(gt["cam_R_m2c"], (3, 3))),
        t_cam_obj=np.asarray(gt["cam_t_m2c"], dtype=np.float64) * dataset.unit_to_m,
        visib_fract=None if info is None else float(info["visib_fract"]),
        bbox_visib=_box("bbox_visib"),
        bbox_obj=_box("bbox_obj"),
        model_id=dataset.model_id(obj_id),
    )


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation matrix closest to ``M`` (3, 3) in the Frobenius norm (SVD projection)."""
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def _rgb_path(scene_dir: Path, im_id: int) -> Path:
    """``rgb/NNNNNN.png``, or the ``.jpg`` some BOP datasets use when only that exists."""
    png = scene_dir / "rgb" / f"{im_id:06d}.png"
    jpg = png.with_suffix(".jpg")
    return jpg if not png.exists() and jpg.exists() else png
