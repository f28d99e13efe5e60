"""Observed depth as a solver term: point-to-plane residuals between the rendered surface and an
aligned depth image (an RGB-D camera's depth registered to the colour image).

At the current pose every rendered pixel p shows the object point X_p (camera frame) with the
rendered normal n_p; the depth image says the surface seen along the same ray is at
Y_p = X_p · z_obs(p) / z_p. The residual is the point-to-plane distance n_p · (Y_p - X_p), and the
predicted measurement n_p · X_p(xi) moves with the pose update (projective association, as in
KinectFusion's ICP: the pairs are re-made at every iteration from the new rendering).

Robustness, per instance and iteration:

- the *dominant offset* m = the mode of d_p = z_obs(p) - z_p over the rendered pixels with depth
  (5 mm bins): the depth at which most of the object agrees with the image, however far the coarse
  pose is along the ray;
- a pixel whose observed depth lies in front of that by more than 2 c is an occluder (a hand,
  another object) and gets weight 0; the others get a Cauchy weight 1 / (1 + ((d_p - m) / c)^2),
  so pixels that see the background behind the object pull little. The scale c shrinks over the
  iterations (``DepthConfig.scales_m``), never below the sensor's noise (``min_scale_m``);
- missing depth (0, NaN) gives no row; with fewer than ``min_valid`` pixels the term abstains
  (no rows, confidence 0, NaN read-outs).

Read-outs (``Residuals.readouts``, per instance): ``depth_inliers``, the fraction of the rendered
pixels with depth that agree with the dominant offset within 2 c (the term's confidence, and the
refiner's rejection test); ``depth_offset_mm``, that offset; ``depth_coverage``, the fraction of the
sampled rendered pixels that have depth.

Units: metres in, and rows in *window-pixel equivalents*: a residual of e metres at depth z counts
as e · f_w / z window pixels (f_w the window's focal length), the size a lateral error of e would
have in the window. So one weight ``scale`` balances this term against the pixel terms (field,
silhouette) whatever the object's size or distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gcf_ros.core.geometry import se3_apply
from gcf_ros.core.pose_update import apply_update, point_jacobian
from gcf_ros.gcf.terms.base import Residuals, TermInputs


@dataclass(frozen=True)
class DepthConfig:
    """The depth term's settings (lengths in metres).

    Attributes:
        max_points: rendered pixels used per instance (an even subsample of the rendering).
        scales_m: the robust scale c per iteration, coarse to fine; the last repeats.
        min_scale_m: floor of c (about 3 sigma of a structured-light sensor at 1 m).
        search_rel: dominant offsets are looked for within +- this fraction of the object's depth.
        bin_m: histogram bin of the dominant offset.
        min_valid: fewer rendered pixels with depth than this: no rows for that instance.
    """

    max_points: int = 1024
    scales_m: tuple[float, ...] = (0.02, 0.01, 0.005)  # LM-O frames 1-50 (docs/results.md)
    min_scale_m: float = 0.004
    search_rel: float = 0.4
    bin_m: float = 0.005
    min_valid: int = 20

    def __post_init__(self) -> None:
        if self.max_points < 1 or self.min_valid < 1 or not self.scales_m:
            raise ValueError("max_points and min_valid must be >= 1, scales_m non-empty")
        if min(self.scales_m) <= 0 or self.min_scale_m <= 0 or self.bin_m <= 0:
            raise ValueError("scales_m, min_scale_m and bin_m must be > 0")
        if not 0 < self.search_rel < 1:
            raise ValueError("search_rel must be in (0, 1)")

    def scale(self, iteration: int) -> float:
        return max(float(self.scales_m[min(iteration, len(self.scales_m) - 1)]), self.min_scale_m)


class DepthTerm:
    """Point-to-plane residuals against ``TermInputs.depth_m`` (the refiner adds this term when
    ``refine`` is given a depth image)."""

    name = "depth"
    phase = "depth"
    needs_network = False
    uses_occluders = False

    def __init__(self, config: DepthConfig | None = None) -> None:
        self.config = config or DepthConfig()

    @classmethod
    def from_config(cls, config) -> DepthTerm:
        return cls(config.depth)

    def residuals(self, inputs: TermInputs) -> Residuals:
        if inputs.depth_m is None:
            raise ValueError("the depth term needs a depth image (refine(..., depth_m=...))")
        cfg, render = self.config, inputs.render
        B, S = render.batch_size, render.size
        # NumPy look-ups and per-instance histograms: the term runs on the CPU whatever the
        # rendering's device (module docstring of gcf_ros.gcf.terms.base, "Devices").
        mask = render.mask.cpu().numpy()
        rows = [_sample_rows(mask[b], cfg.max_points) for b in range(B)]
        n = max(1, *(len(r) for r in rows))
        idx = np.zeros((B, n), np.int64)
        z_obs = np.zeros((B, n), np.float64)
        for b, (r, window) in enumerate(zip(rows, inputs.windows, strict=True)):
            idx[b, : len(r)] = r
            z_obs[b, : len(r)] = _lookup(inputs.depth_m, window.to_image(_window_uv(r, S)))
        take = torch.from_numpy(idx)
        ar = torch.arange(B)[:, None]
        X_obj = render.xyz_obj.cpu().reshape(B, S * S, 3)[ar, take].double()
        normals = render.normals_cam.cpu().reshape(B, S * S, 3)[ar, take].double()
        T = inputs.T_cam_obj.cpu().double()
        X_cam = se3_apply(T, X_obj)
        z = X_cam[..., 2].clamp_min(1e-6)
        zo = torch.from_numpy(z_obs)
        valid = zo > 0
        for b, r in enumerate(rows):
            valid[b, len(r) :] = False
        d = torch.where(valid, zo - z, torch.zeros_like(z))
        offset = _dominant_offset(d, valid, cfg.search_rel * T[:, 2, 3].abs(), cfg.bin_m)
        c = cfg.scale(inputs.iteration)
        e = d - offset[:, None]
        w = torch.where(valid & (e > -2 * c), 1.0 / (1.0 + (e / c) ** 2), torch.zeros_like(e))
        n_valid = valid.sum(1)
        enough = n_valid >= cfg.min_valid
        w = w * enough[:, None]
        inliers = (valid & (e.abs() < 2 * c)).sum(1) / n_valid.clamp_min(1)
        Y = X_cam * (zo / z)[..., None]
        px_per_m = inputs.K_window[:, 0, 0].cpu().double()[:, None] / z
        res = plane_residuals(T, X_obj, normals, px_per_m, Y, w)
        confidence = torch.where(enough, inliers, torch.zeros_like(inliers))
        sampled = torch.tensor([max(len(r), 1) for r in rows], dtype=torch.float64)
        nan = torch.full_like(inliers, float("nan"))
        readouts = {  # NaN where the term abstained
            "depth_inliers": torch.where(enough, inliers, nan),
            "depth_offset_mm": torch.where(enough, 1e3 * offset, nan),
            "depth_coverage": n_valid / sampled,
        }
        return Residuals(res.r, res.J, res.w, X_obj, None, confidence, readouts)


def plane_residuals(
    T_cam_obj: torch.Tensor,
    X_obj: torch.Tensor,
    normals_cam: torch.Tensor,
    px_per_m: torch.Tensor,
    Y_cam: torch.Tensor,
    w: torch.Tensor,
) -> Residuals:
    """Point-to-plane rows: r = s n . (Y - X) and J = d(s n . X)/dxi at xi = 0, for object points
    X_obj (B, N, 3) at poses T_cam_obj (B, 4, 4), camera-frame normals (B, N, 3) and observed points
    Y_cam (B, N, 3), in units of s = px_per_m (B, N) (window pixels per metre); weights w (B, N)."""
    X = se3_apply(T_cam_obj, X_obj)
    s = px_per_m[..., None]
    r = (s * normals_cam * (Y_cam - X)).sum(-1, keepdim=True)  # (B, N, 1)
    J = (s * normals_cam)[..., None, :] @ point_jacobian(X, T_cam_obj[:, :3, 3])  # (B, N, 1, 6)
    conf = torch.ones(X.shape[0], dtype=X.dtype, device=X.device)
    return Residuals(r, J, w, X_obj, None, conf)


def plane_prediction(
    T_cam_obj: torch.Tensor,
    xi: torch.Tensor,
    X_obj: torch.Tensor,
    normals_cam: torch.Tensor,
    px_per_m: torch.Tensor,
) -> torch.Tensor:
    """What :func:`plane_residuals` predicts (B, N, 1) after the update xi (B, 6): s n . X(xi), with
    n and s held at their xi = 0 values. Its derivative at 0 is ``plane_residuals(...).J``."""
    X = se3_apply(apply_update(T_cam_obj, xi), X_obj)
    return (px_per_m[..., None] * normals_cam * X).sum(-1, keepdim=True)


def _sample_rows(mask: np.ndarray, max_points: int) -> np.ndarray:
    """Flat indices of at most ``max_points`` rendered pixels of an (S, S) mask, evenly spread."""
    fg = np.flatnonzero(mask.reshape(-1))
    if fg.size <= max_points:
        return fg
    return fg[np.linspace(0, fg.size - 1, max_points).round().astype(np.int64)]


def _window_uv(flat: np.ndarray, S: int) -> np.ndarray:
    """Window pixel centres (n, 2) (u = column, v = row) of flat indices into an S x S window."""
    return np.stack([flat % S, flat // S], -1).astype(np.float64)


def _lookup(depth_m: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-pixel depth (n,) at image points uv (n, 2); 0 outside the image (no blending
    across depth edges)."""
    h, w = depth_m.shape
    col, row = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros(len(uv), np.float64)
    out[inside] = depth_m[row[inside], col[inside]]
    return out


def _dominant_offset(
    d: torch.Tensor, valid: torch.Tensor, search_m: torch.Tensor, bin_m: float
) -> torch.Tensor:
    """(B,) the most common value of d (B, N) over the valid rows within +- search_m (B,): the
    fullest window of three bins, refined to the median of the rows in it; 0 with no valid row."""
    out = torch.zeros(d.shape[0], dtype=d.dtype)
    for b in range(d.shape[0]):
        x = d[b][valid[b] & (d[b].abs() <= search_m[b])].numpy()
        if x.size == 0:
            continue
        edges = np.arange(-float(search_m[b]), float(search_m[b]) + bin_m, bin_m)
        counts = np.histogram(x, edges)[0]
        wide = np.convolve(counts, np.ones(3), mode="same")
        centre = 0.5 * (edges[:-1] + edges[1:])[int(np.argmax(wide))]
        near = x[np.abs(x - centre) <= 1.5 * bin_m]
        out[b] = float(np.median(near)) if near.size else centre
    return out
