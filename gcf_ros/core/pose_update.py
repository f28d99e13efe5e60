"""The one pose-update convention of gcf_ros, shared by every refiner, solver term, training loss
and baseline; other modules refer here instead of restating it.

A pose update xi = (dt, omega) (..., 6), translation first, acts on T_cam_obj as

    R <- Exp(omega) R,      t <- t + dt

i.e. a rotation about the object's origin with axes in the camera frame, and a translation in
the camera frame, both in metres / radians. Compared with the pure left perturbation exp(xi^) T
(rotation about the camera centre), it decouples rotation from translation — a 1 degree turn does
not also move an object 1 m away by 1.7 cm — which keeps first-order optimisers (Adam, gradient
steps) well conditioned. The Jacobian of a camera-frame point X_c = R X_o + t is [I | -[X_c - t]x].
"""

from __future__ import annotations

import torch

from gcf_ros.core.camera import projection_jacobian
from gcf_ros.core.geometry import make_se3, so3_exp


def apply_update(T_cam_obj: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """T (..., 4, 4) updated by xi = (dt, omega) (..., 6); differentiable in both."""
    R = so3_exp(xi[..., 3:]) @ T_cam_obj[..., :3, :3]
    t = T_cam_obj[..., :3, 3] + xi[..., :3]
    return make_se3(R, t)


def point_jacobian(X_cam: torch.Tensor, t_cam_obj: torch.Tensor) -> torch.Tensor:
    """d(X_cam)/dxi (..., N, 3, 6) at xi = 0 for camera-frame points X_cam (..., N, 3) of an object
    whose origin is at t_cam_obj (..., 3): [I | -[X_cam - t]x]."""
    D = X_cam - t_cam_obj[..., None, :]
    dx, dy, dz = D.unbind(-1)
    o, i = torch.zeros_like(dx), torch.ones_like(dx)
    return torch.stack(
        [
            torch.stack([i, o, o, o, dz, -dy], -1),
            torch.stack([o, i, o, -dz, o, dx], -1),
            torch.stack([o, o, i, dy, -dx, o], -1),
        ],
        dim=-2,
    )


def update_jacobian(K: torch.Tensor, X_cam: torch.Tensor, t_cam_obj: torch.Tensor) -> torch.Tensor:
    """d(u, v)/dxi (..., N, 2, 6) at xi = 0 for camera-frame points X_cam (..., N, 3) of an object
    whose origin is at t_cam_obj (..., 3)."""
    return projection_jacobian(K, X_cam) @ point_jacobian(X_cam, t_cam_obj)
