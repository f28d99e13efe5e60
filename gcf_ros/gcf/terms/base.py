"""What every solver term sees, what it returns, and how the solver combines terms.

A *term* is one source of evidence about the pose of each instance. At the current poses it
returns linearised residuals: N rows per instance, each a k-vector (k = 2 for the correspondence
field, k = 1 for a silhouette line along its normal) with its Jacobian with respect to the pose
update xi = (dt, omega) of :mod:`gcf_ros.core.pose_update`, and a weight. Residuals follow the
field's sign: ``r = measured - predicted``, so the Gauss-Newton step solves
``sum_t s_t (H_t + D_t) xi = sum_t s_t g_t`` with ``H_t = sum w J^T J`` and ``g_t = sum w J^T r``
(``gcf_ros.gcf.solver.solve_terms``).

Each term's normal equations are divided by its total weight per instance (a weighted *mean* of the
per-row information), so the relative influence of two terms is their ``scale``, not their row
counts, and the same scales serve a 40-line silhouette and a 2 000-pixel field.

Devices: a term computes on the device of the data its rows come from. The field term follows the
rendering (``RenderOutput`` on the CPU or a GPU: the network's output is moved there); the terms
built on NumPy / OpenCV (silhouette lines, depth) read the rendering on the CPU and return CPU
rows. ``solve_terms`` gathers each term's 6 x 6 normal equations on one device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from gcf_ros.core.camera import project
from gcf_ros.core.geometry import se3_apply
from gcf_ros.core.pose_update import apply_update, update_jacobian

if TYPE_CHECKING:
    from gcf_ros.core.camera import CropWindow
    from gcf_ros.core.render.types import RenderOutput


@dataclass(frozen=True)
class NetworkEvidence:
    """The network's outputs for the B windows of one iteration (computed once, shared by the
    terms that read them): field (B, S, S, 2) window pixels, weight (B, S, S) in [0, 1] (0 off the
    rendering), visible (B, S, S) probability that the object is visible at each window pixel, or
    None for a network without a mask head."""

    field: torch.Tensor
    weight: torch.Tensor
    visible: torch.Tensor | None = None


@dataclass(frozen=True)
class TermInputs:
    """One iteration's view of the B active instances, shared by every term.

    Attributes:
        image_rgb: (H, W, 3) uint8, the whole camera image.
        windows: B crop windows (image <-> window pixel maps).
        crops: (B, S, S, 3) uint8, the image resampled into each window.
        render: the renderings at the current poses (S x S windows).
        K_window: (B, 3, 3) float64 window cameras.
        T_cam_obj: (B, 4, 4) float64 current poses, metres.
        diameters: (B,) float32 model diameters, metres.
        instance_idx: (B,) which of the refine call's detections the rows are.
        masks: per row, the detection's (H, W) visible-mask evidence in [0, 1], or None.
        iteration: 0-based iteration index.
        network: runs the network on these windows (once per iteration, whichever term asks
            first); None without a network.
        depth_m: (H, W) float32 depth registered to ``image_rgb``, metres, 0 where missing; None
            without a depth camera.
        occluder_depth: (B, S, S) float32 camera depth (metres) of the nearest *other* instance
            of the call rendered into each window, +inf where none (:mod:`gcf_ros.gcf.occluders`);
            None when no other instance meets a window (or the refiner does not compute it).
    """

    image_rgb: np.ndarray
    windows: Sequence[CropWindow]
    crops: torch.Tensor
    render: RenderOutput
    K_window: torch.Tensor
    T_cam_obj: torch.Tensor
    diameters: torch.Tensor
    instance_idx: np.ndarray
    masks: Sequence[np.ndarray | None]
    iteration: int
    network: Callable[[], NetworkEvidence] | None = None
    depth_m: np.ndarray | None = None
    occluder_depth: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return len(self.windows)


@dataclass(frozen=True)
class Residuals:
    """Linearised residuals of one term at xi = 0, N rows per instance (padding rows: w = 0).

    All tensors live on one device, the term's (module docstring, "Devices").

    Attributes:
        r: (B, N, k) measured minus predicted, window pixels (along ``directions`` when k = 1).
        J: (B, N, k, 6) d(predicted)/d(xi), window pixels per metre / radian.
        w: (B, N) non-negative weights, 1 / px^2.
        X_obj: (B, N, 3) the object points the rows follow (for checks and studies).
        directions: (B, N, k, 2) unit image directions of the rows, or None for k = 2 rows along
            the window axes.
        confidence: (B,) the term's own reliability in [0, 1] (1 when it has no notion of one).
        readouts: named (B,) read-outs the term reports about the current poses (the refiner
            copies them into ``RefineResult.scores``), e.g. ``depth_inliers``.
    """

    r: torch.Tensor
    J: torch.Tensor
    w: torch.Tensor
    X_obj: torch.Tensor
    directions: torch.Tensor | None
    confidence: torch.Tensor
    readouts: dict[str, torch.Tensor] = field(default_factory=dict)

    def normal_equations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """H (B, 6, 6), g (B, 6), and the total weight (B,), all float64 on the rows' device."""
        Jw = self.J * self.w[..., None, None]
        H = torch.einsum("bnki,bnkj->bij", Jw, self.J)
        g = torch.einsum("bnki,bnk->bi", Jw, self.r)
        return H, g, self.w.sum(1)


class Term(Protocol):
    """A source of pose evidence. ``name`` is its registry key and its timing phase;
    ``needs_network``: it reads ``TermInputs.network``; ``uses_occluders``: it reads
    ``TermInputs.occluder_depth`` (the refiner renders it only for such terms). ``from_config``
    builds it from a ``RefinerConfig`` (each term reads its own fields)."""

    name: str
    needs_network: bool
    uses_occluders: bool

    @classmethod
    def from_config(cls, config) -> Term: ...

    def residuals(self, inputs: TermInputs) -> Residuals: ...


def point_residuals(
    K_window: torch.Tensor,
    T_cam_obj: torch.Tensor,
    X_obj: torch.Tensor,
    r: torch.Tensor,
    w: torch.Tensor,
    directions: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
) -> Residuals:
    """Residuals of object points X_obj (B, N, 3) whose projections should move by r (B, N, k)
    window pixels, along ``directions`` (B, N, k, 2) when given (else along the window axes)."""
    dt = torch.float64
    K, T, X = K_window.to(dt), T_cam_obj.to(dt), X_obj.to(dt)
    J = update_jacobian(K, se3_apply(T, X), T[:, :3, 3])  # (B, N, 2, 6)
    if directions is not None:
        J = directions.to(dt) @ J  # (B, N, k, 2) @ (B, N, 2, 6)
    conf = torch.ones(X.shape[0], dtype=dt) if confidence is None else confidence.to(dt)
    return Residuals(r.to(dt), J, w.to(dt), X, directions, conf)


def predicted_measurement(
    K_window: torch.Tensor,
    T_cam_obj: torch.Tensor,
    xi: torch.Tensor,
    X_obj: torch.Tensor,
    directions: torch.Tensor | None,
) -> torch.Tensor:
    """What a term predicts (B, N, k) after the update xi (B, 6): the projections of X_obj, along
    ``directions`` when given. ``Residuals.J`` is its derivative at xi = 0 (tests check this by
    finite differences)."""
    T = apply_update(T_cam_obj.double(), xi.double())
    uv = project(K_window.double(), se3_apply(T, X_obj.double()))
    if directions is None:
        return uv
    return (directions.double() @ uv[..., None])[..., 0]


def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, M, ...) gathered along M at idx (B, n) (both on one device)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], idx]
