"""CAD object models: loading, checking, simplification, and a registry configured from YAML.

Meshes (.ply, .obj, .stl, .glb, .gltf) are read with open3d, scaled to metres, cleaned (duplicated
and degenerate triangles, unreferenced vertices) and given per-vertex colours (from the file's
vertex colours, else per face from its material's texture sampled at the UVs or, for OBJ, the
material's ``Kd`` colour in the .mtl, else a flat colour) and unit normals. The object frame is
the file's own frame: meshes are scaled, never moved or rotated. Low-level mesh helpers live in
:mod:`gcf_ros.core._mesh_utils` and :mod:`gcf_ros.core._obj_materials`; how a model is described
(:class:`ModelSpec`, the registry YAML) in :mod:`gcf_ros.core.model_spec`.

open3d is imported only by what reads, decimates or converts meshes: this module imports without
it, and a registry snapshot (:meth:`ModelRegistry.save_snapshot` where open3d is installed,
:meth:`ModelRegistry.load_snapshot` anywhere: :mod:`gcf_ros.core.model_snapshot`) serves the
models on a machine that lacks it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gcf_ros.core import _decimate
from gcf_ros.core import _mesh_utils as mu
from gcf_ros.core._mesh_utils import ModelLoadError
from gcf_ros.core._obj_materials import material_colors
from gcf_ros.core._open3d import SNAPSHOT_HINT, require_open3d
from gcf_ros.core.model_spec import (
    DEFAULT_MAX_FACES,
    UP_AXES,
    ModelSpec,
    read_registry_yaml,
    size_warning,
)
from gcf_ros.core.symmetry import Symmetry

if TYPE_CHECKING:
    import open3d as o3d

__all__ = [
    "COLOR_SOURCES",
    "DEFAULT_COLOR",
    "DEFAULT_MAX_FACES",
    "SUPPORTED_EXTENSIONS",
    "UP_AXES",
    "ModelLoadError",
    "ModelRegistry",
    "ModelSpec",
    "ObjectModel",
    "Symmetry",
    "load_model",
]

_LOG = logging.getLogger(__name__)
SUPPORTED_EXTENSIONS = mu.SUPPORTED_EXTENSIONS
DEFAULT_COLOR: tuple[float, float, float] = (0.7, 0.7, 0.7)
COLOR_SOURCES = ("vertex", "texture", "material", "flat")


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
        symmetric: the object has a pose-ambiguous symmetry; must equal ``symmetry.symmetric``
            when ``symmetry`` is given (kept for callers that pass or read a bool).
        tf_name: TF-friendly frame name.
        source_path: the mesh file it was loaded from.
        symmetry: (keyword) the symmetries; ``None`` → from ``symmetric`` (``True``: kind
            ``"unspecified"``, transforms unknown).
        up_axis: (keyword) (3,) float64 unit up direction in the object frame (default +z), for
            synthetic view sampling. The mesh is never rotated to it.
        color_source: (keyword) where ``vert_colors`` came from: a ``"+"``-joined subset of
            :data:`COLOR_SOURCES` (``"vertex"``, ``"texture"``, ``"material"``, ``"flat"``).
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
    symmetry: Symmetry | None = field(default=None, kw_only=True)
    up_axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]), kw_only=True)
    color_source: str = field(default="vertex", kw_only=True)

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
        self._set_symmetry()
        up = np.array(self.up_axis, dtype=np.float64, copy=True)
        if up.shape != (3,) or not np.linalg.norm(up) > 1e-9:
            raise ValueError(f"ObjectModel.up_axis: expected a non-zero (3,) vector, got {up}")
        up /= np.linalg.norm(up)
        up.flags.writeable = False
        object.__setattr__(self, "up_axis", up)

    def _set_symmetry(self) -> None:
        if self.symmetry is None:
            object.__setattr__(self, "symmetry", Symmetry.from_flag(bool(self.symmetric)))
        elif bool(self.symmetric) != self.symmetry.symmetric:
            raise ValueError(
                f"ObjectModel {self.model_id!r}: symmetric={self.symmetric} contradicts symmetry "
                f"{self.symmetry.describe()!r}"
            )
        object.__setattr__(self, "symmetric", self.symmetry.symmetric)

    def _meta(self) -> dict[str, Any]:
        """The non-geometry fields, to rebuild this model around another mesh."""
        names = ("model_id", "symmetry", "tf_name", "up_axis", "color_source")
        return {name: getattr(self, name) for name in names}

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
        ImportError without open3d (when there is something to decimate).
        """
        if isinstance(max_faces, bool) or not isinstance(max_faces, int | np.integer):
            raise ValueError(f"max_faces must be a positive integer, got {max_faces!r}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be a positive integer, got {max_faces!r}")
        max_faces = int(max_faces)
        if self.num_faces <= max_faces:
            return self
        require_open3d(f"simplifying model {self.model_id!r} (quadric decimation)", SNAPSHOT_HINT)
        mesh = _decimate.decimate(self.to_open3d_legacy(), max_faces)
        if len(mesh.triangles) == 0:
            raise ModelLoadError(
                f"{self.source_path}: nothing left after decimating to {max_faces}"
            )
        mesh.compute_vertex_normals()
        _LOG.info(
            "%s: simplified %d → %d faces", self.model_id, self.num_faces, len(mesh.triangles)
        )
        return _model_from_mesh(mesh, self.source_path, **self._meta())

    def to_open3d_legacy(self) -> o3d.geometry.TriangleMesh:
        """A new legacy open3d mesh (float64 copies) with colours and normals, metres.

        ImportError without open3d."""
        o3d = require_open3d("converting a model to an open3d mesh")
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
    ImportError without open3d (saying what to do instead: load a registry snapshot).
    """
    o3d = require_open3d("loading mesh files", SNAPSHOT_HINT)
    path = mu.check_path(spec.mesh_path)
    mesh = mu.read_mesh(path)
    mu.check_arrays(mesh, path)
    color = spec.color if spec.color is not None else DEFAULT_COLOR
    materials = material_colors(path, mesh) if path.suffix.lower() == ".obj" else None
    colors, color_source = mu.vertex_colors(mesh, color, materials)
    mesh.vertex_colors = o3d.utility.Vector3dVector(colors)
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
    model = _model_from_mesh(
        mesh,
        path,
        model_id=spec.model_id,
        symmetry=spec.symmetry,
        tf_name=spec.tf_name or spec.model_id,
        up_axis=spec.up_vector,
        color_source=color_source,
    )
    hint = size_warning(model.diameter, spec.scale)
    if hint:
        unit = f"unit {spec.unit}" if spec.unit else f"scale {spec.scale:g}"
        _LOG.warning("%s: model %r (%s): %s; check its unit", path, spec.model_id, unit, hint)
    return model


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


def _model_from_mesh(mesh: o3d.geometry.TriangleMesh, path: Path, **meta: Any) -> ObjectModel:
    """Wrap a cleaned legacy mesh (metres, with colours and normals) as an ObjectModel; ``meta``:
    model_id, symmetry, tf_name, up_axis, color_source."""
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    diameter = mu.diameter(verts)
    if not diameter > 0.0:
        raise ModelLoadError(f"{path}: degenerate mesh (zero diameter)")
    verts32 = verts.astype(np.float32)
    return ObjectModel(
        verts_obj=verts32,
        faces=np.asarray(mesh.triangles, dtype=np.int32),
        vert_colors=np.clip(np.asarray(mesh.vertex_colors), 0.0, 1.0),
        vert_normals_obj=mu.unit_rows(np.asarray(mesh.vertex_normals)),
        diameter=diameter,
        bbox_min=verts32.min(axis=0),
        bbox_max=verts32.max(axis=0),
        symmetric=meta["symmetry"].symmetric,
        source_path=path,
        **meta,
    )


class ModelRegistry:
    """Model specs by id, with lazily loaded, cached full-resolution and render meshes.

    Thread-safe: loading happens under a lock, so concurrent callers share one load. A registry
    from :meth:`load_snapshot` holds its models already (loaded elsewhere): it needs neither open3d
    nor the mesh files.
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
        """Read ``models: {id: {mesh, unit | scale, up_axis, symmetry, tf_name, ...}}`` (the
        keys: ``config/models.yaml``). Relative mesh paths are relative to the YAML file's folder.
        """
        return cls(read_registry_yaml(Path(path).expanduser()))

    @classmethod
    def load_snapshot(cls, path: str | Path, name: str | None = None) -> ModelRegistry:
        """The registry saved in a snapshot file (:meth:`save_snapshot`,
        :func:`gcf_ros.core.model_snapshot.write_snapshot`): its specs, full-resolution and
        render models, served without open3d and without the mesh files.

        ``name``: which registry of a file that holds several (None: the file's only one).
        ModelLoadError naming the file when it is missing or not a snapshot.
        """
        from gcf_ros.core.model_snapshot import read_snapshot

        specs, full, render = read_snapshot(path, name)
        registry = cls(specs)
        registry._full.update(full)
        registry._render.update(render)
        return registry

    def save_snapshot(
        self, path: str | Path, ids: Iterable[str] | None = None, name: str | None = None
    ) -> Path:
        """Write the models ``ids`` (default: all) to one snapshot file for :meth:`load_snapshot`.

        Each model is loaded first if it is not yet (needs open3d and the mesh files here). The
        file holds, per id, the spec, ``get(id)`` and ``render_model(id)`` with all their fields
        (format: :mod:`gcf_ros.core.model_snapshot`: compressed npz arrays and a JSON document,
        no pickle). ``name``: the registry's name in the file (default ``"default"``).
        """
        from gcf_ros.core.model_snapshot import DEFAULT_NAME, write_snapshot

        return write_snapshot(path, {name or DEFAULT_NAME: self}, ids)

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
