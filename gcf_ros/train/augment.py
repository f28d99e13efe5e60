"""On-the-fly photometric augmentation of the image branch (training only), against the
synthetic-to-real gap.

The shards already carry one draw of colour jitter, blur and sensor noise (``backgrounds``); this
adds a fresh draw per step, and what the generator does not model: resolution loss (a real window
is often resampled from an object only a few dozen camera pixels wide, then interpolated up), a
per-image colour cast and gamma, and sensor noise. Geometry is untouched, so the true field stays
exact. Pure torch on whatever device the batch is on.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812


def augment_images(image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 3, S, S) images in [0, 1] -> augmented copy in [0, 1].

    Per image: with probability 0.5 resolution loss (bilinear down by U(1.2, 2.5), back up);
    channel gains U(0.85, 1.15); gamma U(0.8, 1.25); Gaussian noise with sigma U(0, 0.03).
    """
    B, _, S, _ = image.shape

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        r = torch.rand(B, *shape, generator=generator).to(image.device)
        return lo + (hi - lo) * r

    out = image
    lowres = torch.rand(B, generator=generator) < 0.5
    if lowres.any():
        idx = torch.nonzero(lowres).flatten().to(image.device)
        factor = float(u(1.2, 2.5, 1)[0])  # one factor per step: one interpolate call
        small = max(8, round(S / factor))
        down = F.interpolate(out[idx], size=(small, small), mode="bilinear", antialias=True)
        out = out.clone()
        out[idx] = F.interpolate(down, size=(S, S), mode="bilinear", align_corners=False)
    out = out * u(0.85, 1.15, 3, 1, 1)
    out = out.clamp(0.0, 1.0) ** u(0.8, 1.25, 1, 1, 1)
    noise = torch.randn(image.shape, generator=generator).to(image.device)
    out = out + noise * u(0.0, 0.03, 1, 1, 1)
    return out.clamp(0.0, 1.0)
