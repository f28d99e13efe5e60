"""Silhouette terms on sparse correspondence lines: ``RegionTerm`` (colour statistics, no training)
and ``ContourTerm`` (a given visible mask), after the region-based trackers RBOT and SRT3D.

At the current pose the rendered silhouette's contour is sampled at up to ``max_lines`` points. From
each, a *correspondence line* runs along the contour's outward normal, 2K samples wide at a step of
``step`` window pixels (coarse to fine over the iterations). Every sample gets a foreground
probability p_f from the image (``RegionTerm``: per-frame colour histograms of the rendered
silhouette and a background band around it; ``ContourTerm``: the visible mask). The contour's true
position d along the line then has the discrete posterior

    P(d) ∝ prod_{samples s < d} p_f(s) · prod_{samples s > d} (1 - p_f(s)),

whose mean mu and variance sigma^2 give one residual per line: the contour point (the 3D surface
point rendered there) should move by mu along the normal, with weight 1 / sigma^2. A line whose
colours do not separate has a flat posterior and hence a low weight; the term's confidence (how well
the colour models separate the silhouette from the band) scales it in the solver.

Samples that another instance of the same refine call covers nearer than the line's contour point
(``TermInputs.occluder_depth``, :mod:`gcf_ros.gcf.occluders`) are unobserved: p_f = 1/2, no
evidence either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from gcf_ros.core.camera import CropWindow
from gcf_ros.gcf.terms.base import Residuals, TermInputs, point_residuals


@dataclass(frozen=True)
class LineConfig:
    """Correspondence lines. Lengths are pixels of a ``REFERENCE_WINDOW`` (128 px) window, which
    is ``padding`` x the object's projected box: they are relative to the object's image size,
    and the terms scale them to the window side they run at (``LineConfig.scaled``).

    Attributes:
        max_lines: contour points sampled per instance (evenly along the contour).
        samples: samples on each side of the contour (2 K per line).
        steps_px: sample spacing per iteration, coarse to fine; the last repeats.
        normal_sigma_px: Gaussian blur of the rendered mask before its gradient gives the normals.
        min_probability: pixel foreground probabilities are clipped to [p, 1 - p] (robustness).
        min_sigma_px: floor of a line's standard deviation (its weight is at most 1 / floor^2).
        border_px: contour points closer than this to the window's border are not used.
    """

    max_lines: int = 128
    samples: int = 8
    steps_px: tuple[float, ...] = (4.0, 4.0, 2.0, 2.0, 1.0)
    normal_sigma_px: float = 1.5
    min_probability: float = 0.05
    min_sigma_px: float = 0.5
    border_px: int = 2

    def __post_init__(self) -> None:
        if self.max_lines < 1 or self.samples < 1 or not self.steps_px:
            raise ValueError("max_lines and samples must be >= 1, steps_px non-empty")
        if min(self.steps_px) <= 0 or not 0 <= self.min_probability < 0.5:
            raise ValueError("steps_px must be > 0 and min_probability in [0, 0.5)")

    def step(self, iteration: int) -> float:
        return float(self.steps_px[min(iteration, len(self.steps_px) - 1)])

    def scaled(self, factor: float) -> LineConfig:
        """The lines' lengths (``steps_px``, ``min_sigma_px``, ``normal_sigma_px``) times
        ``factor``: the same lines, relative to the object, in a window ``factor`` x the size.
        The border stays in window px."""
        if factor == 1.0:
            return self
        steps = tuple(factor * s for s in self.steps_px)
        return replace(
            self, steps_px=steps, min_sigma_px=factor * self.min_sigma_px,
            normal_sigma_px=factor * self.normal_sigma_px,
        )  # fmt: skip


# The window side (px) the lengths of LineConfig and RegionConfig are given for: the shipped
# network's. A window of side S uses them times S / REFERENCE_WINDOW (coarse-to-fine windows, a
# network trained at another size). Unscaled, an S = 64 window's lines reach twice as far
# relative to the object: LM-O frames 1-50, the region term alone at S = 64, ADD(-S) 6.5 % with
# the lengths unscaled and 12.4 % scaled, against 14.3 % at S = 128 (docs/results.md
# "Session 13").
REFERENCE_WINDOW = 128


@dataclass(frozen=True)
class ContourLines:
    """One instance's lines: centres (n, 2) and outward unit normals (n, 2) in window pixels (the
    centre is the rendered contour, half a pixel outside the boundary pixel's centre), and the
    object points X_obj (n, 3) rendered at the boundary pixels."""

    centres: np.ndarray
    normals: np.ndarray
    X_obj: np.ndarray


def contour_lines(mask: np.ndarray, xyz_obj: np.ndarray, config: LineConfig) -> ContourLines:
    """Lines from a rendered mask (S, S) bool and its location field (S, S, 3)."""
    m = mask.astype(np.uint8)
    S = m.shape[0]
    boundary = m & ~cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    b = config.border_px
    boundary[:b], boundary[S - b :], boundary[:, :b], boundary[:, S - b :] = 0, 0, 0, 0
    rows, cols = np.nonzero(boundary)
    if len(rows) > config.max_lines:
        keep = np.linspace(0, len(rows) - 1, config.max_lines).round().astype(int)
        rows, cols = rows[keep], cols[keep]
    soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), config.normal_sigma_px)
    gu = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3)[rows, cols]
    gv = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3)[rows, cols]
    norm = np.hypot(gu, gv)
    ok = norm > 1e-6
    normals = -np.stack([gu, gv], -1)[ok] / norm[ok, None]
    centres = np.stack([cols, rows], -1)[ok].astype(np.float64) + 0.5 * normals
    return ContourLines(centres, normals.astype(np.float64), xyz_obj[rows[ok], cols[ok]])


def line_samples(lines: ContourLines, K: int, step: float) -> np.ndarray:
    """(n, 2K, 2) window positions of the samples at offsets (k + 1/2) step, k = -K .. K-1."""
    offsets = (np.arange(-K, K) + 0.5) * step
    return lines.centres[:, None] + offsets[None, :, None] * lines.normals[:, None]


def line_posterior(p_fg: np.ndarray, step: float, min_sigma: float) -> tuple[np.ndarray, ...]:
    """Mean, variance and informativeness (n,) of the contour position along each line, window
    pixels from the rendered contour (positive = outwards), from the samples' foreground
    probabilities (n, 2K). Informativeness: the posterior mass strictly inside the line."""
    n, twoK = p_fg.shape
    log_f, log_b = np.log(p_fg), np.log1p(-p_fg)
    # The contour between samples j-1 and j (j = 0 .. 2K): samples before it are foreground.
    zero = np.zeros((n, 1))
    before = np.concatenate([zero, np.cumsum(log_f, 1)], 1)
    after = np.concatenate([zero, np.cumsum(log_b[:, ::-1], 1)], 1)[:, ::-1]
    L = before + after
    L -= L.max(1, keepdims=True)
    P = np.exp(L)
    P /= P.sum(1, keepdims=True)
    d = (np.arange(twoK + 1) - twoK // 2) * step
    mu = P @ d
    var = P @ d**2 - mu**2 + step**2 / 12
    # A contour at either end means "no transition in range": all foreground or all background
    # (a fully occluded contour point looks like that). Such mass carries no position.
    informative = 1.0 - P[:, 0] - P[:, -1]
    return mu, np.maximum(var, min_sigma**2), informative


def occluded_samples(
    occluder_depth: np.ndarray, uv: np.ndarray, z_contour: np.ndarray
) -> np.ndarray:
    """(n, 2K) bool: the samples uv (n, 2K, 2) (window px) where another instance lies in front of
    the line's contour point (camera depth z_contour (n,), metres), by the window's occluder depth
    map (S, S) (+inf: none) at the nearest pixel. Samples outside the window are not occluded."""
    S = occluder_depth.shape[0]
    cols, rows = np.rint(uv[..., 0]).astype(np.int64), np.rint(uv[..., 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < S) & (rows >= 0) & (rows < S)
    d = np.full(uv.shape[:-1], np.inf, dtype=np.float64)
    d[inside] = occluder_depth[rows[inside], cols[inside]]
    return d < z_contour[:, None]


def sample_image(image: np.ndarray, window: CropWindow, uv_window: np.ndarray) -> tuple:
    """Bilinear samples of a full image (H, W[, C]) at window positions (..., 2), and a mask of
    the positions inside the image."""
    return bilinear(image, window.to_image(uv_window))


def bilinear(image: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of an image (H, W[, C]) at its own pixel positions uv (..., 2) (pixel
    centres at integers), and a mask of the positions inside it."""
    uv = np.asarray(uv, dtype=np.float32)
    h, w = image.shape[:2]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
    flat = uv.reshape(-1, 1, 2)
    out = cv2.remap(image, flat[..., 0], flat[..., 1], cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    return out.reshape(*uv.shape[:-1], *image.shape[2:]), inside


class _LineTerm:
    """Shared machinery: lines from the rendering, p_f per sample from ``_probabilities``."""

    name = "silhouette"
    needs_network = False
    uses_occluders = True  # reads TermInputs.occluder_depth

    def __init__(
        self, config: LineConfig | None = None, window_size: int | None = REFERENCE_WINDOW
    ) -> None:
        self.config = config or LineConfig()
        # The window side S (px) the config's lengths are meant for; renderings of another size
        # get them scaled. None: the lengths are used as they are at any size.
        self.window_size = window_size

    @classmethod
    def from_config(cls, config) -> _LineTerm:
        return cls(config.lines)

    def scale_at(self, size: int) -> float:
        """The factor of the configured lengths at S = ``size`` renderings."""
        return 1.0 if self.window_size is None else size / self.window_size

    def lines_for(self, size: int) -> LineConfig:
        """The line settings for S = ``size`` renderings."""
        return self.config.scaled(self.scale_at(size))

    @property
    def phase(self) -> str:
        return self.name

    def residuals(self, inputs: TermInputs) -> Residuals:
        cfg = self.lines_for(inputs.render.size)
        step = cfg.step(inputs.iteration)
        rows, confidences = [], []
        # OpenCV on the CPU whatever the rendering's device; the rows are CPU tensors.
        masks, xyz = inputs.render.mask.cpu().numpy(), inputs.render.xyz_obj.cpu().numpy()
        T = inputs.T_cam_obj.cpu().numpy()
        for b in range(inputs.batch_size):
            lines = contour_lines(masks[b], xyz[b], cfg)
            if len(lines.centres) == 0:  # nothing rendered away from the border: no evidence
                rows.append((lines, np.zeros(0), np.zeros(0)))
                confidences.append(0.0)
                continue
            uv = line_samples(lines, cfg.samples, step)
            p_fg, conf = self._probabilities(inputs, b, uv)
            p = np.clip(p_fg, cfg.min_probability, 1 - cfg.min_probability)
            if inputs.occluder_depth is not None:
                z = lines.X_obj @ T[b, :3, :3].T + T[b, :3, 3]
                hidden = occluded_samples(inputs.occluder_depth[b].numpy(), uv, z[:, 2])
                p[hidden] = 0.5  # unobserved: no evidence either way
            mu, var, informative = line_posterior(p, step, cfg.min_sigma_px)
            rows.append((lines, mu, informative / var))
            confidences.append(conf)
        return _pack(rows, inputs, torch.tensor(confidences, dtype=torch.float64))

    def _probabilities(self, inputs: TermInputs, b: int, uv: np.ndarray) -> tuple:
        """(p_f (n, 2K) in [0, 1], confidence in [0, 1]) for instance b's samples uv (n, 2K, 2)."""
        raise NotImplementedError


def _pack(rows, inputs: TermInputs, confidence: torch.Tensor) -> Residuals:
    B = len(rows)
    N = max(max((len(r[1]) for r in rows), default=0), 1)
    r = torch.zeros(B, N, 1, dtype=torch.float64)
    dirs = torch.zeros(B, N, 1, 2, dtype=torch.float64)
    dirs[..., 0] = 1.0
    w = torch.zeros(B, N, dtype=torch.float64)
    X = torch.zeros(B, N, 3, dtype=torch.float64)
    for b, (lines, mu, weight) in enumerate(rows):
        n = len(mu)
        r[b, :n, 0] = torch.from_numpy(mu)
        dirs[b, :n, 0] = torch.from_numpy(lines.normals)
        w[b, :n] = torch.from_numpy(weight)
        X[b, :n] = torch.from_numpy(lines.X_obj.astype(np.float64))
    # Padding rows (w = 0) sit at the object's origin, in front of the camera: finite Jacobians.
    return point_residuals(inputs.K_window, inputs.T_cam_obj, X, r, w, dirs, confidence)


@dataclass(frozen=True)
class RegionConfig:
    """Colour statistics of ``RegionTerm``.

    Attributes:
        bins: histogram bins per RGB channel (a power of two <= 256).
        inner_px: the foreground model uses the silhouette eroded by this (px of a
            ``REFERENCE_WINDOW`` window, as ``band_px``; scaled to the window, ``scaled``).
        band_px: the background model uses the window pixels beyond the silhouette dilated by
            ``inner_px``, up to this far from it.
        prior: pseudo-count added to every bin of both histograms.
        statistics: the silhouette the two histograms are counted on. "rendered": the rendering
            at the current pose (no input beyond the image). "mask": the detection's visible
            mask (``Detection.mask``, > 0.5) where it has one, else the rendering. A rendering
            that is off by the pose error counts background as object and object as background:
            on LM-O frames 1-50 the colour statistics of the true visible mask place the
            contour within one sample step on 76 % of the (weighted) lines, those of the
            rendering at the initial poses on 54 %; with the former the region term alone
            reaches 69 % 2D < 5 px instead of 37 % (docs/results.md, "Session 13")."""

    bins: int = 16
    inner_px: int = 2
    band_px: int = 24
    prior: float = 0.5
    statistics: str = "rendered"

    def __post_init__(self) -> None:
        if self.bins < 2 or self.bins > 256 or self.bins & (self.bins - 1):
            raise ValueError(f"bins must be a power of two in [2, 256], got {self.bins}")
        if self.statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {STATISTICS}, got {self.statistics!r}")
        if self.inner_px < 0 or self.band_px < 1:
            raise ValueError(f"need inner_px >= 0, band_px >= 1: {self.inner_px}, {self.band_px}")

    def scaled(self, factor: float) -> RegionConfig:
        """``inner_px`` and ``band_px`` times ``factor``, rounded (a margin stays >= 1 px)."""
        if factor == 1.0:
            return self
        inner = max(round(factor * self.inner_px), 1) if self.inner_px else 0
        return replace(self, inner_px=inner, band_px=max(round(factor * self.band_px), 1))


STATISTICS = ("rendered", "mask")


class RegionTerm(_LineTerm):
    """Training-free silhouette term: per-frame colour statistics of the object and its
    surroundings decide, along every line, where the contour is (works on any model and photo)."""

    name = "region"

    def __init__(
        self,
        config: LineConfig | None = None,
        region: RegionConfig | None = None,
        window_size: int | None = REFERENCE_WINDOW,
    ) -> None:
        super().__init__(config, window_size)
        self.region = region or RegionConfig()

    @classmethod
    def from_config(cls, config) -> RegionTerm:
        return cls(config.lines, config.region)

    def _probabilities(self, inputs: TermInputs, b: int, uv: np.ndarray) -> tuple:
        rc = self.region.scaled(self.scale_at(inputs.render.size))
        window = inputs.windows[b]
        crop = inputs.crops[b].cpu().numpy()
        mask = inputs.render.mask[b].cpu().numpy().astype(np.uint8)
        if rc.statistics == "mask" and inputs.masks[b] is not None:
            given = np.asarray(inputs.masks[b], dtype=np.float32)
            mask = (window.resample(given) > 0.5).astype(np.uint8)
        inside = _window_inside_image(window, inputs.image_rgb.shape)
        fg, bg = colour_regions(mask, inside, rc)
        if fg.sum() < 10 or bg.sum() < 10:
            return np.full(uv.shape[:2], 0.5), 0.0
        shift = 8 - int(np.log2(rc.bins))
        hist_f = _histogram(crop[fg], shift, rc.bins) + rc.prior
        hist_b = _histogram(crop[bg], shift, rc.bins) + rc.prior
        hist_f /= hist_f.sum()
        hist_b /= hist_b.sum()
        posterior = hist_f / (hist_f + hist_b)  # per bin, equal priors
        colours, valid = sample_image(inputs.image_rgb, window, uv)
        p = posterior[_bin_index(colours.astype(np.uint8), shift, rc.bins)]
        p[~valid] = 0.5
        separation = posterior[_bin_index(crop[fg], shift, rc.bins)].mean() - (
            posterior[_bin_index(crop[bg], shift, rc.bins)].mean()
        )
        return p, float(np.clip(separation, 0.0, 1.0))


def colour_regions(
    mask: np.ndarray, inside: np.ndarray, rc: RegionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (S, S) bool the foreground and background histograms count: the silhouette
    ``mask`` (S, S) eroded by ``rc.inner_px``, and the band from its dilation by ``inner_px`` out
    to ``band_px``, both within the image (``inside``). Lengths in window px (``RegionTerm``
    passes them scaled to the window)."""
    m = mask.astype(np.uint8)
    kernel = np.ones((2 * rc.inner_px + 1,) * 2, np.uint8)
    fg = cv2.erode(m, kernel).astype(bool) & inside
    grown = cv2.dilate(m, kernel).astype(bool)
    band = cv2.dilate(m, np.ones((2 * rc.band_px + 1,) * 2, np.uint8)).astype(bool)
    return fg, band & ~grown & inside


class ContourTerm(_LineTerm):
    """The same lines driven by a given visible mask of the instance (``Detection.mask``: a
    segmentation, or the ground truth for the oracle check); instances without one get no rows."""

    name = "contour"

    def _probabilities(self, inputs: TermInputs, b: int, uv: np.ndarray) -> tuple:
        mask = inputs.masks[b]
        if mask is None:
            return np.full(uv.shape[:2], 0.5), 0.0
        p, valid = sample_image(np.asarray(mask, dtype=np.float32), inputs.windows[b], uv)
        p[~valid] = 0.0  # outside the image: not the object
        return p, 1.0


class MaskTerm(_LineTerm):
    """The same lines driven by the network's visible-mask head (``NetworkEvidence.visible``):
    a learned segmentation of the object in the window, conditioned on the rendering, trained
    on exact synthetic masks. Windows of a network without that head get no rows."""

    name = "mask"
    needs_network = True

    def _probabilities(self, inputs: TermInputs, b: int, uv: np.ndarray) -> tuple:
        visible = None if inputs.network is None else inputs.network().visible
        if visible is None:
            return np.full(uv.shape[:2], 0.5), 0.0
        p, valid = bilinear(visible[b].cpu().numpy().astype(np.float32), uv)  # window coords
        p[~valid] = 0.5  # beyond the window: no evidence
        return p, 1.0


def _window_inside_image(window: CropWindow, shape) -> np.ndarray:
    """(S, S) bool: window pixels whose centres fall inside the image."""
    h, w = shape[:2]
    c = (np.arange(window.size) + 0.5) / window.scale - 0.5
    cols = (c + window.x0 >= 0) & (c + window.x0 <= w - 1)
    rows = (c + window.y0 >= 0) & (c + window.y0 <= h - 1)
    return rows[:, None] & cols[None, :]


def _bin_index(rgb: np.ndarray, shift: int, bins: int) -> np.ndarray:
    q = rgb.astype(np.int64) >> shift
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def _histogram(rgb: np.ndarray, shift: int, bins: int) -> np.ndarray:
    return np.bincount(_bin_index(rgb, shift, bins).ravel(), minlength=bins**3).astype(np.float64)
