"""How to load one CAD model (:class:`ModelSpec`) and its form in a registry YAML file.

The object frame is the CAD file's own frame: nothing here moves, rotates or re-centres a mesh.
Lengths are scaled to metres (``unit`` or ``scale``); ``up_axis`` only says which way the object
stands in its own frame (for synthetic view sampling). The YAML keys are documented in
``config/models.yaml``; every error names the YAML file, the model id and the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gcf_ros.core import _mesh_utils as mu
from gcf_ros.core._mesh_utils import ModelLoadError
from gcf_ros.core.symmetry import UNITS_TO_M, Symmetry, SymmetryError

__all__ = [
    "DEFAULT_MAX_FACES",
    "PLAUSIBLE_DIAMETER_M",
    "REGISTRY_KEYS",
    "UNITS_TO_M",
    "UP_AXES",
    "YAML_KEYS",
    "ModelSpec",
    "format_length",
    "include_paths",
    "read_registry_yaml",
    "size_warning",
    "spec_from_yaml",
    "specs_from_registry_doc",
    "up_axis_vector",
]

REGISTRY_KEYS = frozenset(["models", "include"])  # top-level keys of a registry file
# Load-time face limit: 10x the largest LM-O model (45 666 faces); above it a mesh is decimated.
DEFAULT_MAX_FACES = 500_000
UP_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")
# Diameters outside this range (metres) are warned about: most likely the wrong unit.
PLAUSIBLE_DIAMETER_M = (0.005, 5.0)
YAML_KEYS = frozenset(
    [
        "mesh",
        "unit",
        "scale",
        "up_axis",
        "symmetry",
        "symmetric",
        "tf_name",
        "face_budget",
        "color",
        "max_faces",
    ]
)


def up_axis_vector(name: str) -> np.ndarray:
    """(3,) float64 unit vector of ``"+x"`` ... ``"-z"`` (one of :data:`UP_AXES`)."""
    sign = -1.0 if name[0] == "-" else 1.0
    return sign * np.eye(3)["xyz".index(name[-1])]


@dataclass(frozen=True)
class ModelSpec:
    """How to load one CAD model.

    Attributes:
        model_id: registry id, e.g. ``"obj_000001"``.
        mesh_path: the mesh file (.ply, .obj, .stl, .glb, .gltf).
        scale: mesh units → metres (0.001 for millimetre meshes); finite and > 0. Give ``scale``
            or ``unit``, not both; with neither the mesh is in metres. Resolved: always a float.
        symmetric: legacy flag; ``True`` without ``symmetry`` means "symmetric, transforms
            unknown" (:meth:`Symmetry.unspecified`). Resolved: always ``symmetry.symmetric``.
        tf_name: TF-friendly frame name; ``None`` means ``model_id``.
        face_budget: maximum number of faces of the render mesh (``None``: full resolution).
        color: flat RGB in [0, 1] used when the mesh has no vertex colours, material colours or
            texture (``None``: the loader's default grey).
        max_faces: load-time face limit: a mesh with more faces is decimated at load by vertex
            clustering (linear time; vertices move by less than one grid cell per axis), with a
            warning. Bounds the memory and start-up time whatever the file holds.
        unit: the mesh file's length unit, ``"mm"``, ``"cm"`` or ``"m"`` (sets ``scale``).
        up_axis: the object's up direction in its own (CAD) frame, one of :data:`UP_AXES`; used
            by synthetic view sampling. The mesh is never rotated.
        symmetry: the object's symmetries, translations in metres (``None``: from ``symmetric``).
    """

    model_id: str
    mesh_path: Path
    scale: float | None = None
    symmetric: bool | None = None
    tf_name: str | None = None
    face_budget: int | None = None
    color: tuple[float, float, float] | None = None
    max_faces: int = DEFAULT_MAX_FACES
    unit: str | None = None
    up_axis: str = "+z"
    symmetry: Symmetry | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, str) or not self.model_id:
            raise ModelLoadError(f"model_id must be a non-empty string, got {self.model_id!r}")
        where = f"model {self.model_id!r}"
        object.__setattr__(self, "mesh_path", Path(self.mesh_path))
        object.__setattr__(self, "scale", self._resolved_scale(where))
        if self.up_axis in ("x", "y", "z"):
            object.__setattr__(self, "up_axis", f"+{self.up_axis}")
        if self.up_axis not in UP_AXES:
            raise ModelLoadError(
                f"{where}: up_axis must be one of {list(UP_AXES)}, got {self.up_axis!r}"
            )
        object.__setattr__(self, "symmetry", self._resolved_symmetry(where))
        object.__setattr__(self, "symmetric", self.symmetry.symmetric)
        if self.tf_name is not None and (not isinstance(self.tf_name, str) or not self.tf_name):
            raise ModelLoadError(f"{where}: tf_name must be a non-empty string")
        for name, optional in (("face_budget", True), ("max_faces", False)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelLoadError(f"{where}: {name} must be an integer")
            if value < 1:
                raise ModelLoadError(f"{where}: {name} must be >= 1")
        if self.color is not None:
            object.__setattr__(self, "color", mu.check_color(self.model_id, self.color))

    def _resolved_scale(self, where: str) -> float:
        if self.unit is None:
            return mu.check_scale(self.model_id, 1.0 if self.scale is None else self.scale)
        if self.unit not in UNITS_TO_M:
            raise ModelLoadError(
                f"{where}: unit must be one of {list(UNITS_TO_M)}, got {self.unit!r}"
            )
        if self.scale is not None and self.scale != UNITS_TO_M[self.unit]:
            raise ModelLoadError(
                f"{where}: give 'unit' or 'scale', not both (unit {self.unit!r} is scale "
                f"{UNITS_TO_M[self.unit]:g}, scale is {self.scale!r})"
            )
        return UNITS_TO_M[self.unit]

    def _resolved_symmetry(self, where: str) -> Symmetry:
        if self.symmetric is not None and not isinstance(self.symmetric, bool):
            raise ModelLoadError(f"{where}: symmetric must be true or false")
        if self.symmetry is None:
            return Symmetry.from_flag(bool(self.symmetric))
        if not isinstance(self.symmetry, Symmetry):
            raise ModelLoadError(f"{where}: symmetry must be a Symmetry, got {self.symmetry!r}")
        if self.symmetric is not None and self.symmetric != self.symmetry.symmetric:
            raise ModelLoadError(
                f"{where}: symmetric {self.symmetric} contradicts symmetry "
                f"{self.symmetry.describe()!r}"
            )
        return self.symmetry

    @property
    def up_vector(self) -> np.ndarray:
        """(3,) float64 unit up direction, object frame."""
        return up_axis_vector(self.up_axis)


def size_warning(diameter_m: float, scale: float) -> str | None:
    """A hint when a diameter (metres, after ``scale``) is implausible, else ``None``.

    E.g. ``"diameter 2000 m: a 2000 m object? the mesh looks like it is in mm"``.
    """
    shown = format_length(diameter_m)
    low, high = PLAUSIBLE_DIAMETER_M
    if low <= diameter_m <= high:
        return None
    raw = diameter_m / scale
    fits = [u for u, s in UNITS_TO_M.items() if low <= raw * s <= high]
    # Of the units that fit, the one giving a size nearest to 30 cm (log scale).
    best = min(fits, key=lambda u: abs(math.log(raw * UNITS_TO_M[u] / 0.3)), default=None)
    hint = (
        f"the mesh looks like it is in {best}" if best else "no unit (mm, cm, m) gives 5 mm - 5 m"
    )
    return f"diameter {shown}: a {shown} object? {hint}"


def format_length(metres: float) -> str:
    """``0.173`` → ``"0.173 m"``, ``0.000173`` → ``"0.173 mm"``, ``3464`` → ``"3.46 km"`` (3
    significant digits)."""
    if abs(metres) < 0.01:
        return f"{metres * 1000:.3g} mm"
    if abs(metres) >= 1000:
        return f"{metres / 1000:.3g} km"
    return f"{metres:.3g} m"


def read_registry_yaml(path: Path, _outer: tuple[Path, ...] = ()) -> dict[str, ModelSpec]:
    """``models: {id: {...}}`` of a registry file → specs; relative meshes are relative to it.

    ``include: [FILE, ...]`` (optional; paths relative to this file, or absolute) adds the models
    of other registry files, read the same way, before this file's own: one registry then holds,
    e.g., the packaged LM-O models and the user's. A model id defined twice, or a file that
    includes itself, is an error.
    """
    return specs_from_registry_doc(path, _registry_doc(path), _outer)


def specs_from_registry_doc(
    path: Path, doc: dict[str, Any], _outer: tuple[Path, ...] = ()
) -> dict[str, ModelSpec]:
    """The specs of a parsed registry file ``doc`` as if read from ``path`` (see
    :func:`read_registry_yaml`): e.g. to check an edited registry before writing it."""
    specs: dict[str, ModelSpec] = {}
    where: dict[str, Path] = {}
    for other in include_paths(path, doc):
        if other.resolve() in (*_outer, path.resolve()):
            raise ModelLoadError(f"{path}: include {other} includes itself")
        for model_id, spec in read_registry_yaml(other, (*_outer, path.resolve())).items():
            _add_once(specs, where, model_id, spec, other)
    base = path.resolve().parent
    for key, entry in doc["models"].items():
        _add_once(specs, where, str(key), spec_from_yaml(str(key), entry, base, path), path)
    return specs


def include_paths(path: Path, doc: dict[str, Any]) -> list[Path]:
    """The registry files named by the ``include:`` key of ``doc`` (parsed from ``path``),
    relative paths resolved against ``path``'s folder."""
    names = doc.get("include") or []
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ModelLoadError(f"{path}: 'include:' must be a file name or a list of them")
    base = path.resolve().parent
    return [(base / Path(n).expanduser()).resolve() for n in names]  # base / absolute = absolute


def _registry_doc(path: Path) -> dict[str, Any]:
    """The parsed registry file, its top-level keys checked."""
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: model registry file not found") from None
    except yaml.YAMLError as err:
        raise ModelLoadError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise ModelLoadError(f"{path}: expected a top-level 'models:' mapping")
    unknown = sorted(set(doc) - REGISTRY_KEYS)
    if unknown:
        raise ModelLoadError(f"{path}: unknown top-level keys {unknown}")
    return doc


def _add_once(specs: dict, where: dict, model_id: str, spec: ModelSpec, path: Path) -> None:
    if model_id in specs:
        raise ModelLoadError(
            f"{path}: model {model_id!r} is defined twice (also in {where[model_id]})"
        )
    specs[model_id], where[model_id] = spec, path


def spec_from_yaml(model_id: str, entry: Any, base: Path, yaml_path: Path) -> ModelSpec:
    """One YAML entry → ModelSpec; errors name the YAML file, the model and the key."""
    where = f"{yaml_path}: model {model_id!r}"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{where}: expected a mapping of settings, got {entry!r}")
    unknown = sorted(set(entry) - YAML_KEYS)
    if unknown:
        raise ModelLoadError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(YAML_KEYS)}")
    if not isinstance(entry.get("mesh"), str) or not entry["mesh"]:
        raise ModelLoadError(f"{where}: missing 'mesh' (path to the mesh file)")
    for a, b in (("unit", "scale"), ("symmetry", "symmetric")):
        if a in entry and b in entry:
            raise ModelLoadError(f"{where}: give '{a}' or '{b}', not both")
    if "unit" not in entry and "scale" not in entry:
        raise ModelLoadError(
            f"{where}: missing 'unit' (the mesh file's length unit: mm, cm or m) or 'scale' "
            "(mesh units → metres)"
        )
    mesh_path = Path(entry["mesh"]).expanduser()
    mesh_path = mesh_path if mesh_path.is_absolute() else (base / mesh_path).resolve()
    try:
        spec = ModelSpec(
            model_id=model_id,
            mesh_path=mesh_path,
            scale=entry.get("scale"),
            unit=entry.get("unit"),
            up_axis=entry.get("up_axis", "+z"),
            symmetric=entry.get("symmetric"),
            tf_name=entry.get("tf_name"),
            face_budget=entry.get("face_budget"),
            color=entry.get("color"),
            max_faces=entry.get("max_faces", DEFAULT_MAX_FACES),
        )
        if "symmetry" not in entry:
            return spec
        symmetry = Symmetry.from_yaml(entry["symmetry"], f"{where}: symmetry", spec.scale)
        return dataclasses.replace(spec, symmetry=symmetry, symmetric=None)
    except SymmetryError as err:  # names the file already
        raise ModelLoadError(str(err)) from err
    except (ModelLoadError, TypeError) as err:
        raise ModelLoadError(f"{yaml_path}: {err}") from err
