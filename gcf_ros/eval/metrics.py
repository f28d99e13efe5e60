"""Pose-error metrics of docs/design.md §4, per instance and summarised.

Per instance: rotation error (geodesic, degrees), translation error (cm), 2D projection error
(mean reprojection distance of the model vertices, px; BOP's "proj") and ADD or ADD-S (metres).

Symmetric objects: only ADD-S is symmetry-aware. The rotation error, the 5°/5 cm criterion and the
projection error are the **plain** ones for every object (no symmetry set is known for a
``symmetric`` flag), so for symmetric objects they are pessimistic; read ADD-S for those.

Thresholds in :func:`summarize` are strict (``error < threshold``: an error exactly at the
threshold fails); :func:`accuracy_curve` counts ``value <= threshold`` (a cumulative distribution).
Non-finite errors (a diverged or failed estimate) count as failures and as +inf in the medians.
The caller picks the vertices: pass a decimated set (e.g. BOP's ``models_eval``) for speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "PoseErrors",
    "Summary",
    "accuracy_curve",
    "add",
    "add_or_adds",
    "adds",
    "pose_errors",
    "projection_error_px",
    "rotation_error_deg",
    "summarize",
    "translation_error_cm",
]


def _pose(T: np.ndarray, name: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got {T.shape}")
    return T


def _verts(verts_obj: np.ndarray) -> np.ndarray:
    v = np.asarray(verts_obj, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"verts_obj must have shape (V>0, 3), got {v.shape}")
    return v


def _transform(T: np.ndarray, verts: np.ndarray) -> np.ndarray:
    return verts @ T[:3, :3].T + T[:3, 3]


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> np.ndarray | float:
    """Geodesic angle between rotations (..., 3, 3) -> (...) degrees in [0, 180].

    With R = R_est R_gtᵀ: θ = atan2(sin θ, cos θ), sin θ = ‖R − Rᵀ‖_F / (2√2) (the antisymmetric
    part), cos θ = (tr R − 1) / 2, in float64. Each of the two is used where it is well
    conditioned, so the angle is accurate at 0 and near 180°, where arccos of the trace alone loses
    half the digits. Plain geodesic also for symmetric objects (see the module docstring).
    """
    R_est = np.asarray(R_est, dtype=np.float64)
    R_gt = np.asarray(R_gt, dtype=np.float64)
    if R_est.shape[-2:] != (3, 3) or R_gt.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must be (..., 3, 3), got {R_est.shape} and {R_gt.shape}")
    R = R_est @ np.swapaxes(R_gt, -1, -2)
    sin = np.linalg.norm(R - np.swapaxes(R, -1, -2), axis=(-2, -1)) / (2.0 * math.sqrt(2.0))
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    out = np.degrees(np.arctan2(sin, cos))
    return float(out) if out.ndim == 0 else out


def translation_error_cm(t_est: np.ndarray, t_gt: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between translations (..., 3) in metres -> (...) centimetres."""
    t_est = np.asarray(t_est, dtype=np.float64)
    t_gt = np.asarray(t_gt, dtype=np.float64)
    if t_est.shape[-1:] != (3,) or t_gt.shape[-1:] != (3,):
        raise ValueError(f"translations must be (..., 3), got {t_est.shape} and {t_gt.shape}")
    out = 100.0 * np.linalg.norm(t_est - t_gt, axis=-1)
    return float(out) if out.ndim == 0 else out


def projection_error_px(
    verts_obj: np.ndarray, K: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray
) -> float:
    """Mean 2D distance (px) between the vertices (V, 3) (metres) projected with both poses.

    ``K`` is the (3, 3) pinhole matrix; ``T_est``, ``T_gt`` are ``T_cam_obj`` (4, 4). Returns
    +inf when any vertex has non-positive depth under either pose (its projection is meaningless).
    """
    v = _verts(verts_obj)
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    uv = []
    for T, name in ((T_est, "T_est"), (T_gt, "T_gt")):
        X = _transform(_pose(T, name), v)
        if not (X[:, 2] > 0.0).all():
            return math.inf
        x = X @ K.T
        uv.append(x[:, :2] / x[:, 2:3])
    return float(np.linalg.norm(uv[0] - uv[1], axis=1).mean())


def add(verts_obj: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray) -> float:
    """ADD, metres: mean distance between corresponding vertices (V, 3) under the two poses."""
    v = _verts(verts_obj)
    d = _transform(_pose(T_est, "T_est"), v) - _transform(_pose(T_gt, "T_gt"), v)
    return float(np.linalg.norm(d, axis=1).mean())


def adds(verts_obj: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray) -> float:
    """ADD-S, metres: mean distance from each vertex under ``T_est`` to the nearest vertex under
    ``T_gt`` (k-d tree, O(V log V)). Always ≤ :func:`add` for the same inputs."""
    v = _verts(verts_obj)
    tree = cKDTree(_transform(_pose(T_gt, "T_gt"), v))
    dist, _ = tree.query(_transform(_pose(T_est, "T_est"), v), k=1)
    return float(np.mean(dist))


def add_or_adds(
    model_or_verts: Any, symmetric: bool | None, T_est: np.ndarray, T_gt: np.ndarray
) -> float:
    """ADD-S if the object is symmetric, else ADD (metres).

    Args:
        model_or_verts: an ``ObjectModel`` (anything with ``verts_obj``) or vertices (V, 3) metres.
        symmetric: the symmetry flag; ``None`` takes ``model_or_verts.symmetric``.
        T_est, T_gt: ``T_cam_obj`` (4, 4), metres.
    """
    verts = getattr(model_or_verts, "verts_obj", model_or_verts)
    if symmetric is None:
        if not hasattr(model_or_verts, "symmetric"):
            raise ValueError("symmetric=None needs a model with a `symmetric` attribute")
        symmetric = bool(model_or_verts.symmetric)
    return adds(verts, T_est, T_gt) if symmetric else add(verts, T_est, T_gt)


@dataclass(frozen=True)
class PoseErrors:
    """Errors of one estimated pose against its ground truth.

    Attributes:
        rot_deg: geodesic rotation error, degrees in [0, 180] (plain, also for symmetric objects).
        trans_cm: translation error, centimetres.
        proj_px: mean 2D projection error of the model vertices, pixels (+inf: behind the camera).
        add_m: ADD (ADD-S for symmetric objects), metres.
        diameter_m: the object's diameter, metres (for the 0.1·d threshold).
    """

    rot_deg: float
    trans_cm: float
    proj_px: float
    add_m: float
    diameter_m: float


def pose_errors(
    model_verts_obj: np.ndarray,
    diameter_m: float,
    symmetric: bool,
    K: np.ndarray,
    T_est: np.ndarray,
    T_gt: np.ndarray,
) -> PoseErrors:
    """All per-instance errors of ``T_est`` against ``T_gt`` (both ``T_cam_obj`` (4, 4), metres).

    ``model_verts_obj`` (V, 3) metres, ideally decimated; ``K`` (3, 3) the camera matrix.
    """
    T_est = _pose(T_est, "T_est")
    T_gt = _pose(T_gt, "T_gt")
    return PoseErrors(
        rot_deg=float(rotation_error_deg(T_est[:3, :3], T_gt[:3, :3])),
        trans_cm=float(translation_error_cm(T_est[:3, 3], T_gt[:3, 3])),
        proj_px=projection_error_px(model_verts_obj, K, T_est, T_gt),
        add_m=add_or_adds(model_verts_obj, bool(symmetric), T_est, T_gt),
        diameter_m=float(diameter_m),
    )


@dataclass(frozen=True)
class Summary:
    """Aggregate of many :class:`PoseErrors`. Fractions in [0, 1], strict thresholds (< t).

    Attributes:
        add_s_01d: fraction with ADD(-S) < 0.1 · diameter.
        deg5_cm5: fraction with rotation error < 5° and translation error < 5 cm.
        proj_5px: fraction with 2D projection error < 5 px.
        median_rot_deg: median rotation error, degrees.
        median_trans_cm: median translation error, centimetres.
        median_proj_px: median projection error, pixels.
        acc_pi6: fraction with rotation error < 30° (π/6, Pix3D-style).
        acc_pi18: fraction with rotation error < 10° (π/18).
        n: number of instances. With n = 0 every other field is NaN.
    """

    add_s_01d: float
    deg5_cm5: float
    proj_5px: float
    median_rot_deg: float
    median_trans_cm: float
    median_proj_px: float
    acc_pi6: float
    acc_pi18: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a plain ``{name: value}`` dict (JSON-ready except for NaN)."""
        return asdict(self)


def _median(x: np.ndarray) -> float:
    return float(np.median(np.where(np.isnan(x), np.inf, x)))


def summarize(errors: Sequence[PoseErrors]) -> Summary:
    """Summarise per-instance errors. Thresholds are strict: an error exactly at 5°, 5 cm, 5 px,
    0.1·d, 30° or 10° fails. NaN errors fail every threshold and count as +inf in medians. Empty
    input gives ``n = 0`` and NaN for every fraction and median."""
    n = len(errors)
    if n == 0:
        nan = math.nan
        return Summary(nan, nan, nan, nan, nan, nan, nan, nan, 0)
    rot = np.array([e.rot_deg for e in errors], dtype=np.float64)
    trans = np.array([e.trans_cm for e in errors], dtype=np.float64)
    proj = np.array([e.proj_px for e in errors], dtype=np.float64)
    add_m = np.array([e.add_m for e in errors], dtype=np.float64)
    diam = np.array([e.diameter_m for e in errors], dtype=np.float64)
    return Summary(
        add_s_01d=float(np.mean(add_m < 0.1 * diam)),
        deg5_cm5=float(np.mean((rot < 5.0) & (trans < 5.0))),
        proj_5px=float(np.mean(proj < 5.0)),
        median_rot_deg=_median(rot),
        median_trans_cm=_median(trans),
        median_proj_px=_median(proj),
        acc_pi6=float(np.mean(rot < 30.0)),
        acc_pi18=float(np.mean(rot < 10.0)),
        n=n,
    )


def accuracy_curve(values: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Fraction of ``values`` ≤ each threshold -> (len(thresholds),) float64 (for plots).

    NaN values count as failures; empty ``values`` give NaN everywhere.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.full(t.shape, np.nan)
    return (v[None, :] <= t[:, None]).mean(axis=1)
