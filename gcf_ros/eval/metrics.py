"""Pose-error metrics of docs/design.md §4, per instance and summarised.

Per instance: rotation error (geodesic, degrees), translation error (cm), 2D projection error
(mean reprojection distance of the model vertices, px; BOP's "proj") and ADD (metres).

**Symmetry** (``gcf_ros.core.symmetry.Symmetry``; a bool is the legacy flag: True = unspecified).
The set G of correct poses is ``T_gt @ S`` over the object's symmetry transforms S
(:func:`gcf_ros.eval.symmetry_match.candidate_gt_poses`: the identity and the discrete transforms;
for a continuous symmetry 36 sampled angles and the closed-form best angle). G = {T_gt} for
``none`` and for ``unspecified`` (symmetric, transforms unknown: the legacy ``symmetric: true``).

- rotation and translation errors: those of the one pose of G with the smallest rotation error
  (so 5°/5 cm judges a single correct pose);
- projection error: the minimum over G;
- ``add_m``, **ADD(-S)** (the ``add_s_01d`` criterion, unchanged from before symmetries were
  known): ADD, the mean distance of corresponding vertices, for ``none``; ADD-S, the mean distance
  from each vertex under the estimate to the nearest vertex under T_gt, for every symmetric kind;
- ``add_sym_m``, **ADD over symmetries** (BOP-style, the ``add_sym_01d`` criterion): the minimum
  ADD over G: ADD for ``none``, ADD-S for ``unspecified`` (no transforms to enumerate).

For ``none`` and ``unspecified`` every error is thus what it was before symmetries were known. On
LM-O, whose models_info.json gives one discrete symmetry (a half turn) each for obj 10 (eggbox) and
11 (glue), those two get symmetry-aware rotation, translation and projection errors and an
``add_sym_m`` stricter than their ADD-S, which stays the published ADD(-S).

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

from gcf_ros.core.symmetry import Symmetry
from gcf_ros.eval.symmetry_match import as_symmetry, candidate_gt_poses

__all__ = [
    "PoseErrors",
    "Summary",
    "accuracy_curve",
    "add",
    "add_or_adds",
    "add_symmetric",
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
    half the digits. Plain geodesic: :func:`pose_errors` applies the symmetries.
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
    model_or_verts: Any, symmetric: Symmetry | bool | None, T_est: np.ndarray, T_gt: np.ndarray
) -> float:
    """ADD(-S), metres: ADD-S if the object is symmetric (any kind), else ADD.

    Args:
        model_or_verts: an ``ObjectModel`` (anything with ``verts_obj``) or vertices (V, 3) metres.
        symmetric: a Symmetry or the flag; ``None`` takes ``model_or_verts.symmetric``.
        T_est, T_gt: ``T_cam_obj`` (4, 4), metres.
    """
    verts = getattr(model_or_verts, "verts_obj", model_or_verts)
    if symmetric is None:
        if not hasattr(model_or_verts, "symmetric"):
            raise ValueError("symmetric=None needs a model with a `symmetric` attribute")
        symmetric = bool(model_or_verts.symmetric)
    symmetric = as_symmetry(symmetric).symmetric
    return adds(verts, T_est, T_gt) if symmetric else add(verts, T_est, T_gt)


def add_symmetric(
    verts_obj: np.ndarray, symmetry: Symmetry | bool, T_est: np.ndarray, T_gt: np.ndarray
) -> float:
    """ADD over symmetries, metres: the minimum ADD over the correct poses ``T_gt @ S``; ADD-S
    for an ``unspecified`` symmetry (module docstring)."""
    sym = as_symmetry(symmetry)
    T_est, T_gt = _pose(T_est, "T_est"), _pose(T_gt, "T_gt")
    return _add_over(verts_obj, sym, T_est, T_gt, candidate_gt_poses(sym, T_est, T_gt))


def _add_over(
    verts: np.ndarray, sym: Symmetry, T_est: np.ndarray, T_gt: np.ndarray, G: np.ndarray
) -> float:
    if sym.kind == "unspecified":
        return adds(verts, T_est, T_gt)
    return min(add(verts, T_est, T) for T in G)


@dataclass(frozen=True)
class PoseErrors:
    """Errors of one estimated pose against its ground truth.

    Attributes:
        rot_deg: geodesic rotation error, degrees in [0, 180] (module docstring: symmetries).
        trans_cm: translation error, centimetres.
        proj_px: mean 2D projection error of the model vertices, pixels (+inf: behind the camera).
        add_m: ADD(-S): ADD-S for a symmetric object (any kind), else ADD, metres.
        diameter_m: the object's diameter, metres (for the 0.1·d threshold).
        add_sym_m: ADD over symmetries: the minimum ADD over the correct poses (ADD-S for an
            unspecified symmetry), metres; NaN when not computed.
    """

    rot_deg: float
    trans_cm: float
    proj_px: float
    add_m: float
    diameter_m: float
    add_sym_m: float = math.nan


def pose_errors(
    model_verts_obj: np.ndarray,
    diameter_m: float,
    symmetry: Symmetry | bool,
    K: np.ndarray,
    T_est: np.ndarray,
    T_gt: np.ndarray,
) -> PoseErrors:
    """All per-instance errors of ``T_est`` against ``T_gt`` (both ``T_cam_obj`` (4, 4), metres),
    with the object's ``symmetry`` as in the module docstring (a bool: the legacy flag).

    ``model_verts_obj`` (V, 3) metres, ideally decimated; ``K`` (3, 3) the camera matrix.
    """
    v = _verts(model_verts_obj)
    T_est = _pose(T_est, "T_est")
    T_gt = _pose(T_gt, "T_gt")
    sym = as_symmetry(symmetry)
    G = candidate_gt_poses(sym, T_est, T_gt)  # (M, 4, 4), T_gt first
    rot = np.atleast_1d(rotation_error_deg(T_est[:3, :3], G[:, :3, :3]))
    best = int(np.argmin(rot))  # the first of equal ones: T_gt itself when it is among them
    return PoseErrors(
        rot_deg=float(rot[best]),
        trans_cm=float(translation_error_cm(T_est[:3, 3], G[best, :3, 3])),
        proj_px=min(projection_error_px(v, K, T_est, T) for T in G),
        add_m=adds(v, T_est, T_gt) if sym.symmetric else add(v, T_est, T_gt),
        diameter_m=float(diameter_m),
        add_sym_m=_add_over(v, sym, T_est, T_gt, G),
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
        add_sym_01d: fraction with ADD over symmetries < 0.1 · diameter.
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
    add_sym_01d: float = math.nan

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
    add_sym = np.array([e.add_sym_m for e in errors], dtype=np.float64)
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
        add_sym_01d=float(np.mean(add_sym < 0.1 * diam)),
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
