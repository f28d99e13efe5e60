"""Registry snapshots: loaded models in one file, served later without open3d or the mesh files.

A snapshot is written where open3d and the meshes are (:func:`write_snapshot`, or
:meth:`ModelRegistry.save_snapshot <gcf_ros.core.models.ModelRegistry.save_snapshot>`) and read
anywhere numpy is (:func:`read_snapshot`, used by :meth:`ModelRegistry.load_snapshot
<gcf_ros.core.models.ModelRegistry.load_snapshot>`): e.g. on a GPU machine that has torch but no
open3d. It holds, per model id, the spec, the full-resolution model (``get``) and the render model
(``render_model``; recorded as "the same model" when the registry serves one object for both).

**Format.** One ``np.savez_compressed`` archive (zip of ``.npy`` files, deflated), read with
``allow_pickle=False``: no pickle anywhere. Member ``meta`` is the UTF-8 bytes (a uint8 array) of a
JSON document; every numpy array (vertices, faces, colours, normals, boxes, up axes, symmetry
transforms) is a member ``aN``, kept in the model's own dtype (float32 vertices, int32 faces, ...)
and referenced from the JSON by name. Identical arrays are stored once, so two registries of the
same meshes (the packaged LM-O registry and an LM-O dataset's) cost one copy. The JSON::

    {"format": "gcf_ros.model_snapshot", "version": 1,
     "registries": {NAME: {ID: {"spec": {...}, "full": {...}, "render": "full" | {...}}}}}

A file may hold several named registries (:func:`write_snapshot`), e.g. ``default`` (the packaged
models.yaml) and ``lmo`` (the LM-O dataset's models/): the same ids there carry different metadata
(tf_name, source file), so each keeps its own entries and only the arrays are shared.

Loading rebuilds every object through its constructor (so everything is checked again), then puts
the stored float64 arrays back bit for bit: ``Symmetry`` re-projects its transforms onto SO(3) and
``ObjectModel`` re-normalises its up axis, which moves them by ~1e-16 and would break equality by
value. Paths (``mesh_path``, ``source_path``) are those of the writing machine, for information:
nothing reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gcf_ros.core._mesh_utils import ModelLoadError
from gcf_ros.core.model_spec import ModelSpec
from gcf_ros.core.symmetry import Symmetry

if TYPE_CHECKING:
    from gcf_ros.core.models import ModelRegistry, ObjectModel

__all__ = [
    "DEFAULT_NAME",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "read_snapshot",
    "snapshot_names",
    "write_snapshot",
]

SNAPSHOT_FORMAT = "gcf_ros.model_snapshot"
SNAPSHOT_VERSION = 1
DEFAULT_NAME = "default"
_META = "meta"
_MODEL_ARRAYS = ("verts_obj", "faces", "vert_colors", "vert_normals_obj", "bbox_min", "bbox_max")
_RESTORE_ATOL = 1e-9  # stored vs re-constructed float64 arrays (re-projection moves ~1e-16)

# What read_snapshot returns per registry: specs, full-resolution and render models by id.
Loaded = tuple[dict[str, ModelSpec], dict[str, "ObjectModel"], dict[str, "ObjectModel"]]


class _Arrays:
    """The arrays of a snapshot being written, stored once per distinct content."""

    def __init__(self) -> None:
        self.members: dict[str, np.ndarray] = {}
        self._names: dict[tuple[str, tuple[int, ...], str], str] = {}

    def ref(self, array: np.ndarray | None) -> str | None:
        """The member name of ``array`` (added when new); None for None."""
        if array is None:
            return None
        array = np.ascontiguousarray(array)
        key = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
        if key not in self._names:
            self._names[key] = f"a{len(self._names)}"
            self.members[self._names[key]] = array
        return self._names[key]


def write_snapshot(
    path: str | Path,
    registries: Mapping[str, ModelRegistry],
    ids: Iterable[str] | None = None,
) -> Path:
    """Write the models of ``registries`` (by name) to one snapshot file at ``path``.

    Args:
        path: the file (written whole, then moved into place; no suffix is added).
        registries: name → registry; each model is loaded now (``get`` and ``render_model``) if
            it was not yet, which needs open3d and the mesh files.
        ids: the model ids to write from every registry (default: all of each); a registry that
            lacks one raises KeyError.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path).expanduser()
    if not registries:
        raise ValueError("write_snapshot: no registries given")
    arrays = _Arrays()
    wanted = None if ids is None else list(ids)
    doc = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "registries": {
            str(name): _registry_doc(registry, wanted, arrays)
            for name, registry in registries.items()
        },
    }
    meta = np.frombuffer(json.dumps(doc, indent=1).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as f:  # a file object: savez adds no ".npz" suffix
            np.savez_compressed(f, **{_META: meta}, **arrays.members)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _registry_doc(
    registry: ModelRegistry, ids: Sequence[str] | None, arrays: _Arrays
) -> dict[str, Any]:
    """{id: {"spec", "full", "render"}} of one registry, its arrays added to ``arrays``."""
    out = {}
    for model_id in registry.ids if ids is None else ids:
        spec = registry.spec(model_id)
        full, render = registry.get(model_id), registry.render_model(model_id)
        out[model_id] = {
            "spec": _spec_doc(spec, arrays),
            "full": _model_doc(full, arrays),
            "render": "full" if render is full else _model_doc(render, arrays),
        }
    return out


def _spec_doc(spec: ModelSpec, arrays: _Arrays) -> dict[str, Any]:
    return {
        "model_id": spec.model_id,
        "mesh_path": str(spec.mesh_path),
        "scale": spec.scale,
        "unit": spec.unit,
        "up_axis": spec.up_axis,
        "tf_name": spec.tf_name,
        "face_budget": spec.face_budget,
        "color": None if spec.color is None else list(spec.color),
        "max_faces": spec.max_faces,
        "symmetry": _symmetry_doc(spec.symmetry, arrays),
    }


def _model_doc(model: ObjectModel, arrays: _Arrays) -> dict[str, Any]:
    doc: dict[str, Any] = {name: arrays.ref(getattr(model, name)) for name in _MODEL_ARRAYS}
    doc.update(
        model_id=model.model_id,
        diameter=model.diameter,
        tf_name=model.tf_name,
        source_path=str(model.source_path),
        color_source=model.color_source,
        up_axis=arrays.ref(model.up_axis),
        symmetry=_symmetry_doc(model.symmetry, arrays),
    )
    return doc


def _symmetry_doc(symmetry: Symmetry | None, arrays: _Arrays) -> dict[str, Any]:
    assert symmetry is not None  # resolved by ModelSpec / ObjectModel
    return {
        "kind": symmetry.kind,
        "transforms": arrays.ref(symmetry.transforms),
        "axis": arrays.ref(symmetry.axis),
        "offset": arrays.ref(symmetry.offset),
    }


def snapshot_names(path: str | Path) -> tuple[str, ...]:
    """The names of the registries in the snapshot at ``path``, sorted."""
    with _opened(Path(path).expanduser()) as (doc, _):
        return tuple(sorted(doc["registries"]))


def read_snapshot(path: str | Path, name: str | None = None) -> Loaded:
    """The specs, full-resolution and render models (by id) of registry ``name`` of a snapshot.

    ``name`` None: the file's only registry (ModelLoadError when it holds several: it names
    them). Needs numpy only. ModelLoadError naming the file when it is not a readable snapshot.
    """
    path = Path(path).expanduser()
    with _opened(path) as (doc, npz):
        registries = doc["registries"]
        if name is None and len(registries) != 1:
            raise ModelLoadError(
                f"{path}: the snapshot holds registries {sorted(registries)}: name one"
            )
        name = next(iter(registries)) if name is None else name
        if name not in registries:
            raise ModelLoadError(
                f"{path}: no registry {name!r} in the snapshot; it holds {sorted(registries)}"
            )
        try:
            return _loaded(registries[name], _Reader(npz))
        except (KeyError, TypeError, ValueError) as err:  # ModelLoadError, SymmetryError too
            raise ModelLoadError(f"{path}: registry {name!r}: malformed snapshot: {err}") from err


@contextmanager
def _opened(path: Path) -> Iterator[tuple[dict[str, Any], Any]]:
    """(the JSON document, the open archive) of the snapshot at ``path``; closed on exit."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: model snapshot file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: not a model snapshot ({err})") from err
    with npz:
        try:
            doc = json.loads(bytes(npz[_META]).decode("utf-8"))
        except (KeyError, ValueError) as err:
            raise ModelLoadError(f"{path}: not a model snapshot ({err})") from err
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
            raise ModelLoadError(f"{path}: not a model snapshot (format {SNAPSHOT_FORMAT})")
        if doc.get("version") != SNAPSHOT_VERSION:
            raise ModelLoadError(
                f"{path}: snapshot version {doc.get('version')!r}; this gcf_ros reads version "
                f"{SNAPSHOT_VERSION}"
            )
        yield doc, npz


class _Reader:
    """The arrays of an open snapshot by member name, each read once."""

    def __init__(self, npz: Any) -> None:
        self.npz = npz
        self._cache: dict[str, np.ndarray] = {}

    def get(self, ref: str | None) -> np.ndarray | None:
        """The array stored as ``ref`` (None for None); KeyError when there is none."""
        if ref is None:
            return None
        if ref not in self._cache:
            if ref == _META or ref not in self.npz.files:
                raise KeyError(f"no array {ref!r}")
            self._cache[ref] = self.npz[ref]
        return self._cache[ref]


def _loaded(entries: dict[str, Any], arrays: _Reader) -> Loaded:
    specs, full, render = {}, {}, {}
    for model_id, entry in entries.items():
        specs[model_id] = _spec(entry["spec"], arrays)
        full[model_id] = _model(entry["full"], arrays)
        same = entry["render"] == "full"
        render[model_id] = full[model_id] if same else _model(entry["render"], arrays)
    return specs, full, render


def _spec(doc: dict[str, Any], arrays: _Reader) -> ModelSpec:
    return ModelSpec(
        model_id=doc["model_id"],
        mesh_path=Path(doc["mesh_path"]),
        scale=doc["scale"],
        unit=doc["unit"],
        up_axis=doc["up_axis"],
        tf_name=doc["tf_name"],
        face_budget=doc["face_budget"],
        color=None if doc["color"] is None else tuple(doc["color"]),
        max_faces=doc["max_faces"],
        symmetry=_symmetry(doc["symmetry"], arrays),
    )


def _model(doc: dict[str, Any], arrays: _Reader) -> ObjectModel:
    from gcf_ros.core.models import ObjectModel

    symmetry = _symmetry(doc["symmetry"], arrays)
    up_axis = arrays.get(doc["up_axis"])
    model = ObjectModel(
        **{name: arrays.get(doc[name]) for name in _MODEL_ARRAYS},
        model_id=doc["model_id"],
        diameter=doc["diameter"],
        symmetric=symmetry.symmetric,
        tf_name=doc["tf_name"],
        source_path=Path(doc["source_path"]),
        symmetry=symmetry,
        up_axis=up_axis,
        color_source=doc["color_source"],
    )
    _restore(model, {"up_axis": up_axis})
    return model


def _symmetry(doc: dict[str, Any], arrays: _Reader) -> Symmetry:
    stored = {name: arrays.get(doc[name]) for name in ("transforms", "axis", "offset")}
    symmetry = Symmetry(kind=doc["kind"], **stored)
    _restore(symmetry, stored)
    return symmetry


def _restore(obj: object, stored: Mapping[str, np.ndarray | None]) -> None:
    """Set the stored arrays on the frozen ``obj`` bit for bit (read-only copies) where its
    constructor re-projected or re-normalised them; ValueError when they differ by more."""
    for name, value in stored.items():
        current = getattr(obj, name)
        if value is None or current is None:
            continue
        if current.shape != value.shape or not np.allclose(
            current, value, rtol=0.0, atol=_RESTORE_ATOL
        ):
            raise ValueError(f"{type(obj).__name__}.{name}: stored {value} is not valid")
        exact = np.array(value, dtype=current.dtype, copy=True)
        exact.flags.writeable = False
        object.__setattr__(obj, name, exact)
