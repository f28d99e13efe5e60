"""Render-and-compare pose refinement through PyTorch3D's soft rasterizer, optimised with Adam.

The two baselines of the paper: the loss compares a soft silhouette with a target object mask
(``space="mask"``), or a soft-shaded render of the vertex colours with the image (``space="rgb"``,
masked to the render). Gradients come from the soft rasterizer's hand-made backward pass; the pose
parametrisation is the one every refiner here uses (:mod:`gcf_ros.core.pose_update`). The crop
window is fixed at the initial pose. PyTorch3D's CPU rasterizer is slow, so the defaults use
decimated meshes (``face_budget``) and small windows.

Benchmarks attach a :class:`~gcf_ros.core.phase_timer.PhaseTimer` as ``refiner.timer``: every
iteration then records ``iteration`` and its phases ``forward`` (pose update, soft render, loss),
``backward`` (the rasterizer's hand-made gradients) and ``step`` (best-pose bookkeeping, Adam).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gcf_ros.core.phase_timer import PhaseTimer, timed
from gcf_ros.core.pose_update import apply_update

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel
    from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

SPACES = ("mask", "rgb")


@dataclass(frozen=True)
class SoftRenderConfig:
    """Settings of the soft-rasterizer baselines.

    Defaults were tuned on synthetic renders (never on LM-O frames): see ``docs/baselines.md``.
    ``for_space`` gives each space its tuned step sizes.
    """

    space: str = "mask"
    iterations: int = 40
    lr_rot: float = 0.01  # Adam step on omega, radians
    lr_trans: float = 0.004  # Adam step on dt, metres
    sigma: float = 1e-4  # soft rasterizer edge sharpness (NDC^2 units)
    gamma: float = 1e-4  # soft RGB depth blending
    faces_per_pixel: int = 16  # fewer drops covering faces: holes in the silhouette (alpha < 0.95)
    window_size: int = 48
    padding: float = 1.4
    face_budget: int = 500

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.iterations < 1 or self.window_size < 8:
            raise ValueError("iterations must be >= 1 and window_size >= 8")

    @classmethod
    def for_space(cls, space: str, **overrides) -> SoftRenderConfig:
        """The tuned defaults of a space; RGB takes smaller steps (its loss is noisier)."""
        tuned = {"mask": {}, "rgb": {"lr_rot": 0.005, "lr_trans": 0.002}}
        if space not in tuned:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        return cls(space=space, **{**tuned[space], **overrides})


@dataclass(frozen=True)
class SoftRenderResult:
    """Refined poses of a batch: T_cam_obj (B, 4, 4) float64, the loss per iteration (I, B)."""

    T_cam_obj: np.ndarray
    iterations: int
    time_s: float
    loss_history: np.ndarray = field(repr=False)


class SoftRenderRefiner:
    """Adam on xi = (dt, omega) per instance, all instances of a frame in one batch.

    Attributes:
        timer: when set, records the wall time of every iteration and of its phases (see the
            module docstring); None (the default) records nothing.
    """

    def __init__(self, config: SoftRenderConfig, renderer: PyTorch3DRenderer) -> None:
        self.config = config
        self.renderer = renderer
        self.timer: PhaseTimer | None = None

    def refine(
        self,
        models: Sequence[ObjectModel],
        T_init: np.ndarray,
        K_window: np.ndarray,
        targets: np.ndarray,
    ) -> SoftRenderResult:
        """Refine B poses T_init (B, 4, 4) seen through K_window (B, 3, 3).

        ``targets``: (B, S, S) float masks in [0, 1] for ``space="mask"``, or (B, S, S, 3) float
        image windows in [0, 1] for ``space="rgb"``.
        """
        cfg = self.config
        dev = self.renderer.device
        T0 = torch.as_tensor(np.asarray(T_init), dtype=torch.float32, device=dev)
        K = torch.as_tensor(np.asarray(K_window), dtype=torch.float32, device=dev)
        target = torch.as_tensor(np.asarray(targets), dtype=torch.float32, device=dev)
        xi = torch.zeros(len(models), 6, device=dev, requires_grad=True)
        opt = torch.optim.Adam([{"params": [xi], "lr": 1.0}])
        scale = torch.tensor([cfg.lr_trans] * 3 + [cfg.lr_rot] * 3, device=dev)
        history, best_loss = [], torch.full((len(models),), float("inf"), device=dev)
        best_xi = torch.zeros_like(xi)
        t0 = time.perf_counter()
        for _ in range(cfg.iterations):
            with timed(self.timer, "iteration"):
                with timed(self.timer, "forward"):
                    opt.zero_grad()
                    losses = self._losses(models, apply_update(T0, xi * scale), K, target)
                with timed(self.timer, "backward"):
                    losses.sum().backward()
                with timed(self.timer, "step"):
                    with torch.no_grad():  # keep the best pose seen (the loss is noisy near it)
                        better = losses < best_loss
                        best_loss = torch.where(better, losses, best_loss)
                        best_xi[better] = xi[better]
                    opt.step()
                    history.append(losses.detach().cpu().numpy())
        with torch.no_grad():
            T = apply_update(T0.double(), (best_xi * scale).double())
        return SoftRenderResult(
            T.cpu().numpy(), cfg.iterations, time.perf_counter() - t0, np.stack(history)
        )

    def _losses(self, models, T, K, target) -> torch.Tensor:
        """Per-instance loss (B,)."""
        cfg = self.config
        if cfg.space == "mask":
            alpha = self.renderer.render_soft_silhouette(
                models, T, K, cfg.window_size, sigma=cfg.sigma, faces_per_pixel=cfg.faces_per_pixel
            )
            return ((alpha - target) ** 2).mean(dim=(1, 2))
        rgb, alpha = self.renderer.render_soft_rgb(
            models, T, K, cfg.window_size, sigma=cfg.sigma, gamma=cfg.gamma,
            faces_per_pixel=cfg.faces_per_pixel,
        )  # fmt: skip
        err = ((rgb - target) ** 2).sum(-1)
        return (alpha * err).sum(dim=(1, 2)) / alpha.sum(dim=(1, 2)).clamp_min(1.0)
