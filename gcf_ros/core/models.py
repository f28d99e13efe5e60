"""CAD object models: loading, checking, simplification, and a registry configured from YAML.

Meshes (.ply, .obj, .stl, .glb, .gltf) are read with open3d, scaled to metres, cleaned (duplicated
and degenerate triangles, unreferenced vertices) and given per-vertex colours (from the file, else
sampled from the texture, else a flat colour) and unit normals. Low-level mesh helpers live in
:mod:`gcf_ros.core._mesh_utils`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open3d as o3d
import yaml

from gcf_ros.core import _decimate
from gcf_ros.core import _mesh_utils as mu
from gcf_ros.core._mesh_utils import ModelLoadError

__all__ = [
    "DEFAULT_COLOR",
    "DEFAULT_MAX_FACES",
    "SUPPORTED_EXTENSIONS",
    "ModelLoadError",
    "ModelRegistry",
    "ModelSpec",
    "ObjectModel",
    "load_model",
]

_LOG = logging.getLogger(__name__)
SUPPORTED_EXTENSIONS = mu.SUPPORTED_EXTENSIONS
DEFAULT_COLOR: tuple[float, float, float] = (0.7, 0.7, 0.7)
# Load-time face limit: 10x the largest LM-O model (45 666 faces); above it a mesh is decimated.
DEFAULT_MAX_FACES = 500_000
_YAML_KEYS = frozenset(
    {"mesh", "scale", "symmetric", "tf_name", "face_budget", "color", "max_faces"}
)


@dataclass(frozen=True)
class ModelSpec:
    """How to load one CAD model.

    Attributes:
        model_id: registry id, e.g. ``"obj_000001"``.
        mesh_path: the mesh file (.ply, .obj, .stl, .glb, .gltf).
        scale: mesh units → metres (0.001 for millimetre meshes); finite and > 0.
        symmetric: the object has a symmetry (pose ambiguity) that metrics must account for.
        tf_name: TF-friendly frame name; ``None`` means ``model_id``.
        face_budget: maximum number of faces of the render mesh (``None``: full resolution).
        color: flat RGB in [0, 1] used when the mesh has neither vertex colours nor a texture
            (``None``: :data:`DEFAULT_COLOR`).
        max_faces: load-time face limit: a mesh with more faces is decimated at load by vertex
            clustering (linear time; vertices move by less than one grid cell per axis), with a
            warning. Bounds the memory and start-up time whatever the file holds.
    """

    model_id: str
    mesh_path: Path
    scale: float = 1.0
    symmetric: bool = False
    tf_name: str | None = None
    face_budget: int | None = None
    color: tuple[float, float, float] | None = None
    max_faces: int = DEFAULT_MAX_FACES

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, str) or not self.model_id:
            raise ModelLoadError(f"model_id must be a non-empty string, got {self.model_id!r}")
        object.__setattr__(self, "mesh_path", Path(self.mesh_path))
        object.__setattr__(self, "scale", mu.check_scale(self.model_id, self.scale))
        if not isinstance(self.symmetric, bool):
            raise ModelLoadError(f"model {self.model_id!r}: symmetric must be true or false")
        if self.tf_name is not None and (not isinstance(self.tf_name, str) or not self.tf_name):
            raise ModelLoadError(f"model {self.model_id!r}: tf_name must be a non-empty string")
        for name, optional in (("face_budget", True), ("max_faces", False)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelLoadError(f"model {self.model_id!r}: {name} must be an integer")
            if value < 1:
                raise ModelLoadError(f"model {self.model_id!r}: {name} must be >= 1")
        if self.color is not None:
            object.__setattr__(self, "color", mu.check_color(self.model_id, self.color))


@dataclass(frozen=True, eq=False)
class ObjectModel:
    """A loaded, checked triangle mesh in the object frame. Arrays are read-only (shared by caches).

    Attributes:
        model_id: registry id, e.g. ``"obj_000001"``.
        verts_obj: (V, 3) float32, metres, object frame.
        faces: (F, 3) int32, indices into ``verts_obj``.
        vert_colors: (V, 3) float32, RGB in [0, 1].
        vert_normals_obj: (V, 3) float32, unit vectors, object frame.
        diameter: metres, the largest distance between two vertices (exact, over the hull).
        bbox_min: (3,) float32, metres, minimum corner of the axis-aligned box, object frame.
        bbox_max: (3,) float32, metres, maximum corner of the axis-aligned box, object frame.
        symmetric: the object has a pose-ambiguous symmetry.
        tf_name: TF-friendly frame name.
        source_path: the mesh file it was loaded from.
    """

    model_id: str
    verts_obj: np.ndarray
    faces: np.ndarray
    vert_colors: np.ndarray
    vert_normals_obj: np.ndarray
    diameter: float
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    symmetric: bool
    tf_name: str
    source_path: Path

    def __post_init__(self) -> None:
        n_verts = len(self.verts_obj)
        shapes = {
            "verts_obj": ((n_verts, 3), np.float32),
            "faces": ((len(self.faces), 3), np.int32),
            "vert_colors": ((n_verts, 3), np.float32),
            "vert_normals_obj": ((n_verts, 3), np.float32),
            "bbox_min": ((3,), np.float32),
            "bbox_max": ((3,), np.float32),
        }
        for name, (shape, dtype) in shapes.items():
            array = np.array(getattr(self, name), dtype=dtype, copy=True)
            if array.shape != shape:
                raise ValueError(f"ObjectModel.{name}: expected shape {shape}, got {array.shape}")
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        object.__setattr__(self, "diameter", float(self.diameter))
        object.__setattr__(self, "source_path", Path(self.source_path))

    @property
    def num_faces(self) -> int:
        """Number of triangles."""
        return len(self.faces)

    @property
    def bbox_corners_obj(self) -> np.ndarray:
        """(8, 3) float32 box corners, metres: corner i has max x/y/z where bit 2/1/0 of i is 1."""
        bits = (np.arange(8)[:, None] >> np.array([2, 1, 0])) & 1
        return np.where(bits == 1, self.bbox_max, self.bbox_min).astype(np.float32)

    def simplified(self, max_faces: int) -> ObjectModel:
        """This model decimated (open3d quadric) to at most ``max_faces`` faces; colours kept.

        Normals, diameter and bounding box are recomputed. Returns ``self`` when within budget.
        """
        if isinstance(max_faces, bool) or not isinstance(max_faces, int | np.integer):
            raise ValueError(f"max_faces must be a positive integer, got {max_faces!r}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be a positive integer, got {max_faces!r}")
        max_faces = int(max_faces)
        if self.num_faces <= max_faces:
            return self
        mesh = _decimate.decimate(self.to_open3d_legacy(), max_faces)
        if len(mesh.triangles) == 0:
            raise ModelLoadError(
                f"{self.source_path}: nothing left after decimating to {max_faces}"
            )
        mesh.compute_vertex_normals()
        _LOG.info(
            "%s: simplified %d → %d faces", self.model_id, self.num_faces, len(mesh.triangles)
        )
        return _model_from_mesh(mesh, self.model_id, self.symmetric, self.tf_name, self.source_path)

    def to_open3d_legacy(self) -> o3d.geometry.TriangleMesh:
        """A new legacy open3d mesh (float64 copies) with colours and normals, metres."""
        mesh = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(self.verts_obj.astype(np.float64)),
            o3d.utility.Vector3iVector(self.faces.astype(np.int32)),
        )
        mesh.vertex_colors = o3d.utility.Vector3dVector(self.vert_colors.astype(np.float64))
        mesh.vertex_normals = o3d.utility.Vector3dVector(self.vert_normals_obj.astype(np.float64))
        return mesh


def load_model(spec: ModelSpec) -> ObjectModel:
    """Load, check and clean ``spec.mesh_path``; raise :class:`ModelLoadError` naming the file.

    A mesh with more than ``spec.max_faces`` faces is decimated instead of cleaned (clustering
    drops collapsed and repeated faces itself; open3d's cleaning alone took 1.5-6 s on 2 M faces).
    """
    path = mu.check_path(spec.mesh_path)
    mesh = mu.read_mesh(path)
    mu.check_arrays(mesh, path)
    color = spec.color if spec.color is not None else DEFAULT_COLOR
    mesh.vertex_colors = o3d.utility.Vector3dVector(mu.vertex_colors(mesh, color))
    if len(mesh.triangles) > spec.max_faces:
        mesh = _limit_faces(mesh, spec, path)
    else:
        is_stl = path.suffix.lower() == ".stl"
        mu.clean(mesh, path, merge_vertices=is_stl)
        if len(mesh.triangles) == 0:
            raise ModelLoadError(f"{path}: every triangle is degenerate")
        mu.warn_non_manifold(mesh, path)
        mu.ensure_normals(mesh, recompute=is_stl)
    mesh.vertices = o3d.utility.Vector3dVector(np.asarray(mesh.vertices) * spec.scale)
    tf_name = spec.tf_name or spec.model_id
    return _model_from_mesh(mesh, spec.model_id, spec.symmetric, tf_name, path)


def _limit_faces(
    mesh: o3d.geometry.TriangleMesh, spec: ModelSpec, path: Path
) -> o3d.geometry.TriangleMesh:
    """``mesh`` decimated to ``spec.max_faces`` faces (with normals), and a warning."""
    n_faces = len(mesh.triangles)
    out, cell = _decimate.cluster_to_limit(mesh, spec.max_faces)
    if len(out.triangles) == 0:
        raise ModelLoadError(
            f"{path}: {n_faces} faces cannot be clustered to max_faces {spec.max_faces} or "
            "fewer (nothing would be left); raise max_faces"
        )
    _LOG.warning(
        "%s: %d faces > max_faces %d: decimated to %d faces by vertex clustering (cell %.3g m; "
        "vertices move by less than a cell per axis). Decimate the file beforehand for a "
        "better mesh, or raise max_faces.",
        path, n_faces, spec.max_faces, len(out.triangles), cell * spec.scale,
    )  # fmt: skip
    return out


def _model_from_mesh(
    mesh: o3d.geometry.TriangleMesh, model_id: str, symmetric: bool, tf_name: str, path: Path
) -> ObjectModel:
    """Wrap a cleaned legacy mesh (metres, with colours and normals) as an ObjectModel."""
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    diameter = mu.diameter(verts)
    if not diameter > 0.0:
        raise ModelLoadError(f"{path}: degenerate mesh (zero diameter)")
    verts32 = verts.astype(np.float32)
    return ObjectModel(
        model_id=model_id,
        verts_obj=verts32,
        faces=np.asarray(mesh.triangles, dtype=np.int32),
        vert_colors=np.clip(np.asarray(mesh.vertex_colors), 0.0, 1.0),
        vert_normals_obj=mu.unit_rows(np.asarray(mesh.vertex_normals)),
        diameter=diameter,
        bbox_min=verts32.min(axis=0),
        bbox_max=verts32.max(axis=0),
        symmetric=symmetric,
        tf_name=tf_name,
        source_path=path,
    )


class ModelRegistry:
    """Model specs by id, with lazily loaded, cached full-resolution and render meshes.

    Thread-safe: loading happens under a lock, so concurrent callers share one load.
    """

    def __init__(self, specs: Mapping[str, ModelSpec]) -> None:
        for model_id, spec in specs.items():
            if model_id != spec.model_id:
                raise ModelLoadError(
                    f"registry key {model_id!r} != spec.model_id {spec.model_id!r}"
                )
        self._specs: dict[str, ModelSpec] = dict(specs)
        self._full: dict[str, ObjectModel] = {}
        self._render: dict[str, ObjectModel] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelRegistry:
        """Read ``models: {id: {mesh, scale, symmetric, tf_name, face_budget, color, max_faces}}``.

        Relative mesh paths are relative to the YAML file's folder.
        """
        path = Path(path).expanduser()
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: model registry file not found") from None
        except yaml.YAMLError as err:
            raise ModelLoadError(f"{path}: invalid YAML: {err}") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
            raise ModelLoadError(f"{path}: expected a top-level 'models:' mapping")
        if set(doc) != {"models"}:
            raise ModelLoadError(f"{path}: unknown top-level keys {sorted(set(doc) - {'models'})}")
        base = path.resolve().parent
        specs = {str(k): _spec_from_yaml(str(k), v, base, path) for k, v in doc["models"].items()}
        return cls(specs)

    @property
    def ids(self) -> tuple[str, ...]:
        """All model ids, sorted."""
        return tuple(sorted(self._specs))

    def spec(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id``; KeyError listing the known ids when absent."""
        try:
            return self._specs[model_id]
        except KeyError:
            raise KeyError(f"unknown model id {model_id!r}; known ids: {list(self.ids)}") from None

    def get(self, model_id: str) -> ObjectModel:
        """The full-resolution model (loaded on first use, then cached)."""
        spec = self.spec(model_id)
        with self._lock:
            if model_id not in self._full:
                self._full[model_id] = load_model(spec)
            return self._full[model_id]

    def render_model(self, model_id: str) -> ObjectModel:
        """The model simplified to its spec's ``face_budget`` (full resolution when unset)."""
        spec = self.spec(model_id)
        with self._lock:
            if model_id not in self._render:
                full = self.get(model_id)
                budget = spec.face_budget
                self._render[model_id] = full if budget is None else full.simplified(budget)
            return self._render[model_id]

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __repr__(self) -> str:
        return f"ModelRegistry({list(self.ids)})"


def _spec_from_yaml(model_id: str, entry: Any, base: Path, yaml_path: Path) -> ModelSpec:
    """One YAML entry → ModelSpec; errors name the YAML file, the model and the key."""
    where = f"{yaml_path}: model {model_id!r}"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{where}: expected a mapping of settings, got {entry!r}")
    unknown = sorted(set(entry) - _YAML_KEYS)
    if unknown:
        raise ModelLoadError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_YAML_KEYS)}")
    if not isinstance(entry.get("mesh"), str) or not entry["mesh"]:
        raise ModelLoadError(f"{where}: missing 'mesh' (path to the mesh file)")
    mesh_path = Path(entry["mesh"]).expanduser()
    mesh_path = mesh_path if mesh_path.is_absolute() else (base / mesh_path).resolve()
    try:
        return ModelSpec(
            model_id=model_id,
            mesh_path=mesh_path,
            scale=entry.get("scale", 1.0),
            symmetric=entry.get("symmetric", False),
            tf_name=entry.get("tf_name"),
            face_budget=entry.get("face_budget"),
            color=entry.get("color"),
            max_faces=entry.get("max_faces", DEFAULT_MAX_FACES),
        )
    except (ModelLoadError, TypeError) as err:
        raise ModelLoadError(f"{yaml_path}: {err}") from err
