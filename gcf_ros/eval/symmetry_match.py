"""The ground-truth poses an estimate of a symmetric object is compared with (docs/design.md §4).

An object with symmetry transforms S (object frame: the object looks the same after X -> S X) has
as many correct poses as transforms: every ``T_gt @ S``. :func:`candidate_gt_poses` lists them:

- ``none`` and ``unspecified``: ``T_gt`` alone (an unspecified symmetry has no transforms to
  enumerate: the metrics use ADD-S for it instead);
- ``discrete``: ``T_gt @ D`` for D in the identity and the transforms;
- ``continuous`` (rotations C(θ) about the axis through the offset, with optional discrete D):
  ``T_gt @ C(θ) @ D`` for θ = 2πk/36, k = 0 ... 35 (``Symmetry.poses``), and for each D the angle
  θ*_D that brings the rotation closest to the estimate's, in closed form: with
  M = R_D R_estᵀ R_gt and a the axis, tr(R_a(θ) M) = A cos θ + B sin θ + aᵀMa where A = tr M − aᵀMa
  and B = tr([a]× M), so θ*_D = atan2(B, A). An estimate that differs from the ground truth by a
  symmetry is matched exactly; for any other the sampled angles bound the error from above.

Pure numpy: ``T`` are (4, 4) float64 ``T_cam_obj``, metres.
"""

from __future__ import annotations

import math

import numpy as np

from gcf_ros.core.symmetry import Symmetry

__all__ = ["N_CONTINUOUS", "as_symmetry", "candidate_gt_poses"]

N_CONTINUOUS = 36  # sampled angles of a continuous symmetry (every 10°), besides θ*_D


def as_symmetry(symmetry: Symmetry | bool | None) -> Symmetry:
    """A Symmetry, or the legacy flag as one (True: ``unspecified``; False / None: ``none``)."""
    if isinstance(symmetry, Symmetry):
        return symmetry
    return Symmetry.from_flag(bool(symmetry))


def candidate_gt_poses(symmetry: Symmetry, T_est: np.ndarray, T_gt: np.ndarray) -> np.ndarray:
    """(M, 4, 4) the correct poses ``T_gt @ S`` of the module docstring, ``T_gt`` first."""
    S = symmetry.poses(N_CONTINUOUS)
    if symmetry.axis is not None:
        discrete = np.concatenate([np.eye(4)[None], symmetry.transforms])
        axis, offset = symmetry.axis, symmetry.offset
        angles = [_best_angle(axis, D, T_est, T_gt) for D in discrete]
        best = [_rotation_about(axis, offset, a) @ D for a, D in zip(angles, discrete, strict=True)]
        S = np.concatenate([S, np.stack(best)])
    return T_gt[None] @ S


def _best_angle(axis: np.ndarray, D: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray) -> float:
    """θ maximising tr(R_estᵀ R_gt R_a(θ) R_D): the closest rotation of the continuous family."""
    M = D[:3, :3] @ T_est[:3, :3].T @ T_gt[:3, :3]
    a = axis
    aMa = float(a @ M @ a)
    A = float(np.trace(M)) - aMa
    B = float(np.trace(_hat(a) @ M))
    return math.atan2(B, A)


def _hat(a: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])


def _rotation_about(axis: np.ndarray, offset: np.ndarray, angle: float) -> np.ndarray:
    """(4, 4) rotation by ``angle`` about the unit ``axis`` through the point ``offset``."""
    k = _hat(axis)
    R = np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = offset - R @ offset
    return T
