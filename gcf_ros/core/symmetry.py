"""Object symmetries: rigid transforms of the object frame that leave the object looking the same.

Conventions: 4 x 4 homogeneous transforms act on column vectors of object-frame points in metres,
``X' = R X + t``. A pose ``T_cam_obj`` is ambiguous up to ``T_cam_obj @ S`` for every symmetry
``S``. Pure numpy (no open3d): the BOP reader and the metrics use it too.

Kinds:

- ``"none"``: no symmetry. :meth:`Symmetry.poses` is the identity alone.
- ``"unspecified"``: symmetric, transforms unknown: the legacy ``symmetric: true`` of the model
  registry and the ``symmetric=True`` of older callers. :meth:`Symmetry.poses` is the identity
  alone, so a metric cannot enumerate the ambiguity and falls back to ADD-S (nearest point).
- ``"discrete"``: a finite set ``transforms`` (K, 4, 4); the identity is implied.
- ``"continuous"``: rotations by any angle about ``axis`` through ``offset``, optionally combined
  with discrete ``transforms`` (BOP allows both, e.g. a cylinder with a flip). Sampled by
  :meth:`Symmetry.poses` as ``C_k @ D_j`` (BOP toolkit order: the discrete one first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["KINDS", "UNITS_TO_M", "Symmetry", "SymmetryError"]

KINDS = ("none", "unspecified", "discrete", "continuous")
UNITS_TO_M: dict[str, float] = {"mm": 0.001, "cm": 0.01, "m": 1.0}
# Rotation parts of the transforms may deviate this much from orthonormal (BOP files keep ~6-9
# digits); within it they are projected onto the nearest rotation.
RIGID_TOL = 1e-3
_YAML_KEYS = frozenset({"discrete", "continuous", "unit"})


class SymmetryError(ValueError):
    """A symmetry description is malformed; the message names where it came from."""


def _empty_transforms() -> np.ndarray:
    return np.zeros((0, 4, 4))


@dataclass(frozen=True, eq=False)
class Symmetry:
    """The symmetries of one object. Arrays are float64 copies, read-only; equal and hashable by
    value (so a :class:`~gcf_ros.core.models.ModelSpec` holding one is too).

    Attributes:
        kind: one of :data:`KINDS` (see the module docstring).
        transforms: (K, 4, 4) float64 discrete symmetry transforms, object frame, translation in
            metres; K = 0 unless ``kind`` is ``"discrete"`` or ``"continuous"`` (combined).
            Identity not required. Rotation parts are projected onto SO(3).
        axis: (3,) float64 unit axis of the continuous symmetry, object frame; ``None`` unless
            ``kind`` is ``"continuous"``.
        offset: (3,) float64, metres: a point on the continuous symmetry's axis, object frame.
    """

    kind: str = "none"
    transforms: np.ndarray = field(default_factory=_empty_transforms)
    axis: np.ndarray | None = None
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SymmetryError(f"symmetry kind must be one of {KINDS}, got {self.kind!r}")
        transforms = _rigid_stack(self.transforms)
        offset = _vector3(self.offset, "offset")
        axis = None
        if self.axis is not None:
            axis = _vector3(self.axis, "axis")
            norm = float(np.linalg.norm(axis))
            if not norm > 1e-9:
                raise SymmetryError(f"continuous symmetry axis must be non-zero, got {axis}")
            axis = axis / norm
        if (self.kind == "continuous") != (axis is not None):
            raise SymmetryError(f"kind {self.kind!r}: an axis is given iff kind is 'continuous'")
        if self.kind == "discrete" and len(transforms) == 0:
            raise SymmetryError("kind 'discrete' needs at least one transform")
        if self.kind in ("none", "unspecified") and len(transforms):
            raise SymmetryError(f"kind {self.kind!r} takes no transforms")
        for name, value in (("transforms", transforms), ("axis", axis), ("offset", offset)):
            if value is not None:
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Symmetry):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        axis = None if self.axis is None else self.axis.tobytes()
        return (self.kind, self.transforms.tobytes(), axis, self.offset.tobytes())

    @property
    def symmetric(self) -> bool:
        """The object has a pose ambiguity (any kind but ``"none"``)."""
        return self.kind != "none"

    @classmethod
    def unspecified(cls) -> Symmetry:
        """Symmetric, transforms unknown (the legacy ``symmetric: true``)."""
        return cls(kind="unspecified")

    @classmethod
    def from_flag(cls, symmetric: bool) -> Symmetry:
        """The legacy bool: ``True`` → ``"unspecified"``, ``False`` → ``"none"``."""
        return cls.unspecified() if symmetric else cls()

    def poses(self, n_continuous: int = 36) -> np.ndarray:
        """(M, 4, 4) float64: every symmetry transform, the identity first, duplicates removed.

        Discrete: the identity and ``transforms``. Continuous: ``n_continuous`` rotations about
        the axis through the offset (angles 2πk/n), each composed with the identity and every
        discrete transform (``C_k @ D_j``). ``"none"`` and ``"unspecified"``: the identity alone.
        """
        if isinstance(n_continuous, bool) or not isinstance(n_continuous, int | np.integer):
            raise ValueError(f"n_continuous must be a positive integer, got {n_continuous!r}")
        if n_continuous < 1:
            raise ValueError(f"n_continuous must be a positive integer, got {n_continuous!r}")
        discrete = np.concatenate([np.eye(4)[None], self.transforms])
        if self.axis is None:
            return _unique(discrete)
        angles = 2.0 * np.pi * np.arange(int(n_continuous)) / int(n_continuous)
        continuous = np.stack([self._rotation_about_axis(a) for a in angles])
        return _unique((continuous[:, None] @ discrete[None]).reshape(-1, 4, 4))

    def _rotation_about_axis(self, angle: float) -> np.ndarray:
        """(4, 4) rotation by ``angle`` about the axis through the offset (Rodrigues)."""
        assert self.axis is not None
        x, y, z = self.axis
        k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
        R = np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = self.offset - R @ self.offset
        return T

    def describe(self) -> str:
        """A short human-readable form: ``none``, ``discrete(3)``, ``continuous z``, ..."""
        if self.axis is None:
            return self.kind if self.kind != "discrete" else f"discrete({len(self.transforms)})"
        text = f"continuous {_axis_name(self.axis)}"
        if np.linalg.norm(self.offset) > 0:
            text += f" through {np.round(self.offset, 4).tolist()} m"
        return text + (f" + discrete({len(self.transforms)})" if len(self.transforms) else "")

    def to_yaml(self) -> Any:
        """The registry form read back by :meth:`from_yaml` (translations in metres)."""
        if self.kind in ("none", "unspecified"):
            return self.kind
        out: dict[str, Any] = {"unit": "m"}
        if len(self.transforms):
            out["discrete"] = [[_plain(row) for row in T] for T in self.transforms]
        if self.axis is not None:
            out["continuous"] = {"axis": _plain(self.axis), "offset": _plain(self.offset)}
        return out

    @classmethod
    def from_bop(
        cls, info: Mapping[str, Any], unit_to_m: float, where: str = "models_info.json entry"
    ) -> Symmetry:
        """From one BOP ``models_info.json`` entry (translations in the dataset's unit).

        ``symmetries_discrete``: list of 16 floats, a row-major 4 x 4; ``symmetries_continuous``:
        list of ``{"axis": [3], "offset": [3]}`` (at most one). ``unit_to_m``: 0.001 for mm.
        """
        unit_to_m = _check_unit_to_m(unit_to_m, where)
        if not isinstance(info, Mapping):
            raise SymmetryError(f"{where}: expected a mapping, got {type(info).__name__}")
        raw_discrete = info.get("symmetries_discrete") or []
        raw_continuous = info.get("symmetries_continuous") or []
        if not isinstance(raw_continuous, list) or len(raw_continuous) > 1:
            raise SymmetryError(
                f"{where}: symmetries_continuous: expected a list of at most one axis, "
                f"got {raw_continuous!r}"
            )
        transforms = _transforms(raw_discrete, unit_to_m, f"{where}: symmetries_discrete")
        cont = raw_continuous[0] if raw_continuous else None
        return _build(transforms, cont, unit_to_m, f"{where}: symmetries_continuous[0]")

    @classmethod
    def from_yaml(cls, value: Any, where: str, unit_to_m: float = 1.0) -> Symmetry:
        """From a registry ``symmetry:`` value; errors start with ``where`` (file, model, field).

        Accepted: ``none`` / ``null`` / ``false``; ``unspecified`` / ``true`` (symmetric,
        transforms unknown); a mapping with ``discrete`` (a list of 4 x 4 transforms, each 16
        row-major numbers or 4 nested rows of 4), ``continuous`` (``{axis: [x, y, z], offset:
        [x, y, z]}``, offset optional, default the origin), or both, and optionally ``unit``
        (``mm``, ``cm`` or ``m``) for the translations and the offset. Without ``unit``, they
        are in ``unit_to_m`` units (the registry passes the mesh's scale: the CAD file's unit).
        """
        if value is None or value is False or value == "none":
            return cls()
        if value is True or value == "unspecified":
            return cls.unspecified()
        if not isinstance(value, Mapping):
            raise SymmetryError(
                f"{where}: expected none, unspecified, true/false or a mapping with 'discrete' "
                f"and/or 'continuous', got {value!r}"
            )
        unknown = sorted(set(value) - _YAML_KEYS)
        if unknown:
            raise SymmetryError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_YAML_KEYS)}")
        if "discrete" not in value and "continuous" not in value:
            raise SymmetryError(f"{where}: give 'discrete' and/or 'continuous'")
        if "unit" in value:
            if value["unit"] not in UNITS_TO_M:
                raise SymmetryError(
                    f"{where}.unit: must be one of {list(UNITS_TO_M)}, got {value['unit']!r}"
                )
            unit_to_m = UNITS_TO_M[value["unit"]]
        unit_to_m = _check_unit_to_m(unit_to_m, where)
        raw = value.get("discrete") or []
        transforms = _transforms(raw, unit_to_m, f"{where}.discrete")
        return _build(transforms, value.get("continuous"), unit_to_m, f"{where}.continuous")


def _build(transforms: np.ndarray, cont: Any, unit_to_m: float, where: str) -> Symmetry:
    """A Symmetry from checked discrete transforms and a raw continuous entry (or None)."""
    if cont is None:
        return Symmetry(kind="discrete", transforms=transforms) if len(transforms) else Symmetry()
    if not isinstance(cont, Mapping) or "axis" not in cont:
        raise SymmetryError(f"{where}: expected a mapping with 'axis' (and 'offset'), got {cont!r}")
    unknown = sorted(set(cont) - {"axis", "offset"})
    if unknown:
        raise SymmetryError(f"{where}: unknown key(s) {unknown}; allowed: ['axis', 'offset']")
    axis = _numbers(cont["axis"], (3,), f"{where}.axis")
    if not np.linalg.norm(axis) > 1e-9:
        raise SymmetryError(f"{where}.axis: must be non-zero, got {axis.tolist()}")
    offset = _numbers(cont.get("offset", [0.0, 0.0, 0.0]), (3,), f"{where}.offset") * unit_to_m
    return Symmetry(kind="continuous", transforms=transforms, axis=axis, offset=offset)


def _transforms(raw: Any, unit_to_m: float, where: str) -> np.ndarray:
    """(K, 4, 4) rigid transforms, translations scaled to metres; errors name the index."""
    if not isinstance(raw, list | tuple):
        raise SymmetryError(f"{where}: expected a list of 4 x 4 transforms, got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        arr = np.asarray(item, dtype=object)
        shape = (16,) if arr.shape == (16,) else (4, 4)
        T = _numbers(item, shape, here).reshape(4, 4)
        try:
            T = _rigid(T)
        except SymmetryError as err:
            raise SymmetryError(f"{here}: {err}") from None
        T[:3, 3] *= unit_to_m
        out.append(T)
    return np.stack(out) if out else _empty_transforms()


def _numbers(raw: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``raw`` as a finite float64 array of ``shape``, else SymmetryError naming ``where``."""
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != shape or isinstance(raw, str):
        matrix = shape in ((16,), (4, 4))
        what = "16 numbers (row-major) or 4 rows of 4" if matrix else f"{shape[0]} numbers"
        raise SymmetryError(f"{where}: expected {what}, got {raw!r}")
    if not np.isfinite(arr).all():
        raise SymmetryError(f"{where}: values must be finite, got {raw!r}")
    return arr


def _rigid(T: np.ndarray) -> np.ndarray:
    """``T`` with its rotation projected onto SO(3), or SymmetryError unless it is rigid."""
    T = np.array(T, dtype=np.float64)
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=RIGID_TOL):
        raise SymmetryError(f"not a rigid transform: last row must be [0, 0, 0, 1], got {T[3]}")
    R = T[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > RIGID_TOL:
        raise SymmetryError(
            f"not a rigid transform: rotation part is not orthonormal (|RᵀR - I| = {err:.3g} "
            f"> {RIGID_TOL}); scaling and shear are not symmetries"
        )
    if np.linalg.det(R) < 0:
        raise SymmetryError("not a rigid transform: rotation part has det -1 (a reflection)")
    u, _, vt = np.linalg.svd(R)
    T[:3, :3] = u @ vt
    T[3] = (0.0, 0.0, 0.0, 1.0)
    return T


def _rigid_stack(transforms: Any) -> np.ndarray:
    arr = np.array(transforms, dtype=np.float64, copy=True)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise SymmetryError(f"transforms: expected shape (K, 4, 4), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise SymmetryError("transforms: values must be finite")
    for i in range(len(arr)):
        try:
            arr[i] = _rigid(arr[i])
        except SymmetryError as err:
            raise SymmetryError(f"transforms[{i}]: {err}") from None
    return arr


def _vector3(value: Any, name: str) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, copy=True)
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise SymmetryError(f"{name}: expected 3 finite numbers, got {value!r}")
    return arr


def _check_unit_to_m(unit_to_m: Any, where: str) -> float:
    if isinstance(unit_to_m, bool) or not isinstance(unit_to_m, int | float):
        raise SymmetryError(f"{where}: unit_to_m must be a number, got {unit_to_m!r}")
    if not (math.isfinite(unit_to_m) and unit_to_m > 0):
        raise SymmetryError(f"{where}: unit_to_m must be finite and > 0, got {unit_to_m!r}")
    return float(unit_to_m)


def _unique(transforms: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """``transforms`` (M, 4, 4) without near-duplicates, first occurrences in order."""
    keep: list[np.ndarray] = []
    for T in transforms:
        if not any(np.abs(T - K).max() <= tol for K in keep):
            keep.append(T)
    return np.stack(keep)


def _axis_name(axis: np.ndarray) -> str:
    for i, name in enumerate("xyz"):
        for sign in (1.0, -1.0):
            if np.allclose(axis, sign * np.eye(3)[i], atol=1e-9):
                return ("-" if sign < 0 else "") + name
    return str(np.round(axis, 4).tolist())


def _plain(values: np.ndarray) -> list[float]:
    """Floats for YAML, with -0.0 and float noise (below 1e-12) written as 0."""
    return [0.0 if abs(v) < 1e-12 else float(v) for v in np.asarray(values).reshape(-1)]
