"""Rotations and rigid transforms in torch, batched over any leading dimensions.

Conventions: column vectors; ``T_a_b`` is a (..., 4, 4) homogeneous matrix mapping points of frame b
into frame a, ``X_a = R_a_b X_b + t_a_b``. Axis-angle vectors ``omega`` (..., 3) have the rotation
axis as direction and the angle (rad) as norm. Quaternions are in ROS order ``(x, y, z, w)``. How a
pose is updated by a 6-vector is stated once, in :mod:`gcf_ros.core.pose_update`. Every function
accepts float32 or float64 on any device and returns the input dtype; the small-angle branches use
Taylor series so that values and gradients stay finite at 0 and near pi.
"""

from __future__ import annotations

import math

import torch

_SMALL_ANGLE = 0.1  # below this, closed forms with cancellation switch to their Taylor series


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"{name} must have shape (..., {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices, ``skew(a) @ b == a x b``."""
    _check_last(v, (3,), "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) (direction: axis, norm: angle in rad) -> rotations (..., 3, 3).

    Rodrigues: I + A K + B K^2, K = skew(omega), A = sin t / t, B = (1 - cos t) / t^2, t = |omega|.
    Small angles use the Taylor series, and the closed forms only ever see safe values (t^2 := 1 on
    the small branch), so gradients through ``torch.where`` stay finite at 0.
    """
    _check_last(omega, (3,), "omega")
    t2 = (omega * omega).sum(-1)
    small = t2 < _SMALL_ANGLE**2
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2_safe)
    s, c = torch.sin(t), torch.cos(t)
    a = torch.where(small, 1 - t2 / 6 * (1 - t2 / 20 * (1 - t2 / 42)), s / t)
    b = torch.where(small, 0.5 - t2 / 24 * (1 - t2 / 30 * (1 - t2 / 56)), (1 - c) / t2_safe)
    K = skew(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(K)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) with angle in [0, pi].

    Goes through the unit quaternion (Shepperd's method), theta = 2 atan2(|q_xyz|, q_w), which is
    accurate at 0 and near pi alike; at exactly pi either of the two equivalent axes is returned.
    """
    _check_last(R, (3, 3), "R")
    q = matrix_to_quaternion(R)
    xyz, w = q[..., :3], q[..., 3]
    n2 = (xyz * xyz).sum(-1)
    small = n2 < 1e-6
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # theta / n = 2 atan(n / w) / n; series 2/w (1 - n^2 / (3 w^2)) for small n (then w ~ 1).
    factor = torch.where(small, 2 / w * (1 - n2 / (3 * w * w)), 2 * torch.atan2(n, w) / n)
    return xyz * factor[..., None]


def make_se3(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rotation (..., 3, 3) and translation (..., 3) -> homogeneous transform (..., 4, 4)."""
    _check_last(R, (3, 3), "R")
    _check_last(t, (3,), "t")
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1
    return T


def se3_apply(T_a_b: torch.Tensor, X_b: torch.Tensor) -> torch.Tensor:
    """Points X_b (..., N, 3) -> X_a (..., N, 3) with T_a_b (..., 4, 4)."""
    _check_last(T_a_b, (4, 4), "T_a_b")
    _check_last(X_b, (3,), "X_b")
    R, t = T_a_b[..., :3, :3], T_a_b[..., :3, 3]
    return X_b @ R.transpose(-1, -2) + t[..., None, :]


def quaternion_to_matrix(q_xyzw: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4) in ROS order (x, y, z, w), normalised here -> rotations (..., 3, 3)."""
    _check_last(q_xyzw, (4,), "q_xyzw")
    q = q_xyzw / q_xyzw.norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotations (..., 3, 3) -> unit quaternions (..., 4) in ROS order (x, y, z, w), w >= 0.

    Shepperd's method: the largest of the four candidate denominators is used, so the result is
    accurate for every rotation.
    """
    _check_last(R, (3, 3), "R")
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack(  # 4 * (w^2, x^2, y^2, z^2)
        [1 + tr, 1 + 2 * m[..., 0, 0] - tr, 1 + 2 * m[..., 1, 1] - tr, 1 + 2 * m[..., 2, 2] - tr],
        -1,
    )
    k = cands.argmax(-1, keepdim=True)
    r = torch.sqrt(cands.gather(-1, k).clamp_min(0))[..., 0]  # 2 * |largest component|
    s = torch.where(r > 0, 0.5 / r, torch.zeros_like(r))
    d21, d02, d10 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    s21, s02, s10 = (
        m[..., 2, 1] + m[..., 1, 2],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 1, 0] + m[..., 0, 1],
    )
    by_k = torch.stack(
        [
            torch.stack([d21 * s, d02 * s, d10 * s, r / 2], -1),  # w largest
            torch.stack([r / 2, s10 * s, s02 * s, d21 * s], -1),  # x largest
            torch.stack([s10 * s, r / 2, s21 * s, d02 * s], -1),  # y largest
            torch.stack([s02 * s, s21 * s, r / 2, d10 * s], -1),  # z largest
        ],
        -2,
    )
    q = torch.take_along_dim(by_k, k[..., None].expand(*k.shape, 4), dim=-2)[..., 0, :]
    q = torch.where(q[..., 3:] < 0, -q, q)
    return q / q.norm(dim=-1, keepdim=True)


def rotation_angle(R_a: torch.Tensor, R_b: torch.Tensor) -> torch.Tensor:
    """Geodesic distance (rad, in [0, pi]) between rotations (..., 3, 3): the angle of R_a^T R_b.

    Computed from the quaternion of the relative rotation, accurate near 0 and near pi (the trace
    formula loses half the digits at both ends).
    """
    _check_last(R_a, (3, 3), "R_a")
    _check_last(R_b, (3, 3), "R_b")
    q = matrix_to_quaternion(R_a.transpose(-1, -2) @ R_b)
    return 2 * torch.atan2(q[..., :3].norm(dim=-1), q[..., 3].abs())


def random_unit_vectors(n: int, generator: torch.Generator | None = None, **kw) -> torch.Tensor:
    """(n, 3) directions uniform on the sphere."""
    v = torch.randn(n, 3, generator=generator, **kw)
    return v / v.norm(dim=-1, keepdim=True)


def random_rotations_about_random_axes(
    n: int,
    max_angle_rad: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(n, 3, 3) rotations about uniformly random axes by angles uniform in [0, max_angle_rad]."""
    if not 0 <= max_angle_rad <= math.pi:
        raise ValueError(f"max_angle_rad must be in [0, pi], got {max_angle_rad}")
    axes = random_unit_vectors(n, generator, dtype=dtype, device=device)
    angles = torch.rand(n, generator=generator, dtype=dtype, device=device) * max_angle_rad
    return so3_exp(axes * angles[:, None])
