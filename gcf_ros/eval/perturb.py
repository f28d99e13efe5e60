"""The initial-pose protocol of docs/design.md §4: ground truth perturbed by seeded noise.

Every method is started from the same initial poses, so the random draws are part of the protocol:
one ``numpy.random.default_rng(seed)`` (default seed 0) consumed instance by instance, in the order
given, with exactly the draws documented in :func:`perturb_pose`. Changing the order, the number
or the kind of draws changes every number downstream; don't.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["NOISE_LEVELS", "NoiseLevel", "perturb_instances", "perturb_pose", "rodrigues"]


@dataclass(frozen=True)
class NoiseLevel:
    """One noise level of the protocol.

    Attributes:
        name: ``"small"``, ``"medium"`` or ``"large"``.
        max_angle_deg: A, degrees: rotation angles are uniform in [0, A].
        sigma_xy_m: σ_xy, metres: standard deviation of each lateral (x, y) offset.
        sigma_z_rel: σ_z, dimensionless: standard deviation of the relative depth error,
            t0_z = t*_z · (1 + N(0, σ_z²)).
    """

    name: str
    max_angle_deg: float
    sigma_xy_m: float
    sigma_z_rel: float


NOISE_LEVELS: dict[str, NoiseLevel] = {
    "small": NoiseLevel("small", 5.0, 0.01, 0.03),
    "medium": NoiseLevel("medium", 15.0, 0.02, 0.07),
    "large": NoiseLevel("large", 30.0, 0.04, 0.15),
}


def rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) (direction: axis, norm: angle in rad) -> (3, 3) float64 rotation matrix.

    R = I + sin θ K + (1 - cos θ) K² with K the cross-product matrix of the unit axis; exactly the
    identity for a zero vector.
    """
    w = np.asarray(rotvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(w))
    if theta == 0.0:
        return np.eye(3)
    x, y, z = w / theta
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(theta) * K + (1.0 - math.cos(theta)) * (K @ K)


def perturb_pose(T_cam_obj: np.ndarray, level: NoiseLevel, rng: np.random.Generator) -> np.ndarray:
    """Perturb one ground-truth pose (4, 4) float64 (metres) -> initial pose (4, 4) float64.

    Draws, **in this exact order** (four calls on ``rng``, six numbers per instance):

    (a) ``axis = rng.normal(size=3)``, normalised: a direction uniform on the sphere;
    (b) ``angle = rng.uniform(0, A)`` with A = ``level.max_angle_deg`` in radians;
        R0 = Exp(angle · axis) @ R*  (the rotation of :mod:`gcf_ros.core.pose_update`: about the
        camera-frame axis through the object origin, so the object stays where it is);
    (c) ``dxy = rng.normal(0, level.sigma_xy_m, size=2)``: t0_x = t*_x + dxy[0],
        t0_y = t*_y + dxy[1];
    (d) ``dz = rng.normal(0, level.sigma_z_rel)``: t0_z = t*_z · (1 + dz).

    This order is the protocol (docs/design.md §4): it makes numbers comparable across runs.
    """
    T = np.asarray(T_cam_obj, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T_cam_obj must have shape (4, 4), got {T.shape}")
    axis = rng.normal(size=3)
    norm = float(np.linalg.norm(axis))
    axis = axis / norm if norm > 0.0 else np.array([0.0, 0.0, 1.0])  # probability zero
    angle = rng.uniform(0.0, math.radians(level.max_angle_deg))
    dxy = rng.normal(0.0, level.sigma_xy_m, size=2)
    dz = rng.normal(0.0, level.sigma_z_rel)
    out = np.eye(4)
    out[:3, :3] = rodrigues(angle * axis) @ T[:3, :3]
    out[0, 3] = T[0, 3] + dxy[0]
    out[1, 3] = T[1, 3] + dxy[1]
    out[2, 3] = T[2, 3] * (1.0 + dz)
    return out


def perturb_instances(
    T_list: Iterable[np.ndarray], level: NoiseLevel | str, seed: int = 0
) -> list[np.ndarray]:
    """Initial poses for a list of ground-truth poses: one ``default_rng(seed)``, one pass.

    Args:
        T_list: ground-truth ``T_cam_obj`` (4, 4), metres, in the evaluation order (the order is
            part of the protocol: instance i gets the i-th block of draws of :func:`perturb_pose`).
        level: a :class:`NoiseLevel` or the name of one in :data:`NOISE_LEVELS`.
        seed: the generator seed (protocol default 0).

    Returns:
        a list of (4, 4) float64 initial poses, same order.
    """
    if isinstance(level, str):
        if level not in NOISE_LEVELS:
            raise ValueError(f"unknown noise level {level!r}; expected one of {list(NOISE_LEVELS)}")
        level = NOISE_LEVELS[level]
    rng = np.random.default_rng(seed)
    return [perturb_pose(T, level, rng) for T in T_list]
