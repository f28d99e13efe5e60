"""The object models of a BOP folder as a model registry: meshes, unit, symmetries and ids.

- **Models**: ``obj_NNNNNN.ply`` in the models folder. The objects are the keys of its
  ``models_info.json`` when the folder has one, else every ``obj_NNNNNN.ply`` there.
- **Unit**: the dataset's (millimetres by BOP's convention): the meshes, the models_info lengths
  and the symmetry translations are scaled by ``unit_to_m``.
- **Symmetries**: each object's ``symmetries_discrete`` / ``symmetries_continuous`` in
  models_info.json (:meth:`gcf_ros.core.symmetry.Symmetry.from_bop`). Fallback: a models folder
  whose objects are exactly LM-O's (1, 5, 6, 8, 9, 10, 11, 12) and whose models_info.json gives no
  symmetry at all (or is absent) gets :data:`LMO_SYMMETRIC_OBJ_IDS` (eggbox, glue) as
  ``unspecified`` symmetries, with a warning; every other object without an entry has none.
- **Registry ids**: ``model_id(obj_id)``, ``obj_NNNNNN`` by default.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gcf_ros.core._bop_camera import read_json
from gcf_ros.core.models import ModelRegistry, ModelSpec
from gcf_ros.core.symmetry import UNITS_TO_M, Symmetry

__all__ = [
    "DEFAULT_UNIT",
    "LMO_OBJ_IDS",
    "LMO_SYMMETRIC_OBJ_IDS",
    "bop_model_registry",
    "bop_symmetries",
    "default_model_id",
    "model_info_m",
    "unit_to_m",
]

_LOG = logging.getLogger(__name__)
DEFAULT_UNIT = "mm"  # BOP's convention
LMO_OBJ_IDS: tuple[int, ...] = (1, 5, 6, 8, 9, 10, 11, 12)
LMO_SYMMETRIC_OBJ_IDS: tuple[int, ...] = (10, 11)
_SYMMETRY_KEYS = ("symmetries_discrete", "symmetries_continuous")
_MESH_NAME = re.compile(r"obj_(\d{6})\.ply")


def unit_to_m(unit: str) -> float:
    """Metres per dataset unit (``mm``, ``cm`` or ``m``); ValueError naming the choices."""
    if unit not in UNITS_TO_M:
        raise ValueError(f"dataset unit must be one of {sorted(UNITS_TO_M)}, got {unit!r}")
    return UNITS_TO_M[unit]


def default_model_id(obj_id: int) -> str:
    """The registry id of BOP object ``obj_id``: ``obj_NNNNNN`` (the name of its mesh file)."""
    return f"obj_{int(obj_id):06d}"


def model_info_m(info: dict[str, float], unit_to_m: float) -> dict[str, Any]:
    """One models_info.json entry's ``diameter_m`` (float), ``bbox_min_m`` and ``bbox_size_m``
    ((3,) float64), in metres."""
    return {
        "diameter_m": float(info["diameter"]) * unit_to_m,
        "bbox_min_m": np.array([info["min_x"], info["min_y"], info["min_z"]], float) * unit_to_m,
        "bbox_size_m": np.array([info["size_x"], info["size_y"], info["size_z"]], float)
        * unit_to_m,
    }


def bop_symmetries(models: str | Path, unit_to_m: float) -> dict[int, Symmetry]:
    """The symmetry of every object of a BOP models folder (or of its ``models_info.json``)."""
    info_path, folder = _locate(Path(models).expanduser())
    if info_path is not None:
        info = read_json(info_path)
        if not isinstance(info, dict):
            raise ValueError(f"{info_path}: expected an object of model entries")
        ids = sorted(int(k) for k in info)
        symmetries = {
            int(k): Symmetry.from_bop(v, unit_to_m, f"{info_path}: object {k}")
            for k, v in info.items()
        }
        if any(key in v for v in info.values() for key in _SYMMETRY_KEYS):
            return dict(sorted(symmetries.items()))
    else:
        names = (_MESH_NAME.fullmatch(p.name) for p in folder.iterdir())
        ids = sorted(int(m.group(1)) for m in names if m)
        if not ids:
            raise FileNotFoundError(f"{folder}: no models_info.json and no obj_NNNNNN.ply meshes")
        symmetries = {i: Symmetry() for i in ids}
    if tuple(ids) == LMO_OBJ_IDS:
        _LOG.warning(
            "%s: LM-O's objects without symmetries in models_info.json: objects %s (eggbox, glue) "
            "taken as symmetric with unknown transforms (ADD-S)",
            folder, list(LMO_SYMMETRIC_OBJ_IDS),
        )  # fmt: skip
        symmetries.update({i: Symmetry.unspecified() for i in LMO_SYMMETRIC_OBJ_IDS})
    return dict(sorted(symmetries.items()))


def bop_model_registry(
    models: str | Path,
    unit_to_m: float,
    face_budget: int | None = None,
    model_id: Callable[[int], str] = default_model_id,
) -> ModelRegistry:
    """A registry of a BOP models folder (or its ``models_info.json``): ``obj_NNNNNN.ply`` scaled
    by ``unit_to_m``, with the symmetries of :func:`bop_symmetries`, ids ``model_id(obj_id)``.
    A mesh missing for an object of models_info.json is a FileNotFoundError naming it."""
    _, folder = _locate(Path(models).expanduser())
    specs = {}
    for obj_id, symmetry in bop_symmetries(models, unit_to_m).items():
        mesh = folder / f"obj_{obj_id:06d}.ply"
        if not mesh.is_file():
            raise FileNotFoundError(f"{mesh}: model file not found")
        spec = ModelSpec(
            model_id=model_id(obj_id),
            mesh_path=mesh,
            scale=unit_to_m,
            symmetry=symmetry,
            face_budget=face_budget,
        )
        if spec.model_id in specs:
            raise ValueError(f"{folder}: two objects map to the registry id {spec.model_id!r}")
        specs[spec.model_id] = spec
    return ModelRegistry(specs)


def _locate(models: Path) -> tuple[Path | None, Path]:
    """(models_info.json or None, the folder of the meshes) of a folder or a models_info path."""
    if models.is_dir():
        info = models / "models_info.json"
        return (info if info.is_file() else None), models
    if models.suffix == ".json":
        if not models.is_file():
            raise FileNotFoundError(f"{models}: models_info file not found")
        return models, models.parent
    raise FileNotFoundError(f"{models}: not a BOP models folder or models_info.json")
