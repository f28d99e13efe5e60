"""Procedural backgrounds and photometric augmentation for synthetic training windows.

Backgrounds are (size, size, 3) uint8 RGB images; augmentation works on float32 RGB in [0, 1].
Every function draws from a caller-supplied ``numpy.random.Generator`` only (no global RNG), so a
seed reproduces the images exactly. Nothing here uses real photographs: the content is random
gradients, multi-scale value noise, cv2 shapes, black-and-white checkerboards and square markers
(the LM-O scenes stand on a marker board), and flat colour fields.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["BACKGROUND_KINDS", "add_sensor_noise", "augment_photometric", "random_background"]

BACKGROUND_KINDS: tuple[str, ...] = ("gradient", "noise", "shapes", "checker", "markers", "flat")
_KIND_PROBS = (0.15, 0.3, 0.2, 0.1, 0.1, 0.15)


def random_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) uint8 RGB: one of :data:`BACKGROUND_KINDS`, sometimes with shapes on top."""
    kind = BACKGROUND_KINDS[rng.choice(len(BACKGROUND_KINDS), p=_KIND_PROBS)]
    image = _MAKERS[kind](size, rng)
    if kind != "shapes" and rng.random() < 0.35:
        image = _draw_shapes(image, rng, int(rng.integers(1, 6)))
    return image


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (3,) float64 in [0, 255], biased away from pure saturation."""
    return rng.uniform(0.0, 255.0, size=3)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """Linear (or radial) blend of two random colours in a random direction."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    if rng.random() < 0.7:
        angle = rng.uniform(0.0, 2 * math.pi)
        t = math.cos(angle) * (u - 0.5) + math.sin(angle) * (v - 0.5)
    else:
        cu, cv = rng.uniform(0.0, 1.0, size=2)
        t = np.hypot(u - cu, v - cv)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = _colour(rng), _colour(rng)
    return _to_u8(c0 + t[..., None] * (c1 - c0))


def _value_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of 2-4 octaves of upsampled random noise, as a colour map or per channel."""
    cells = np.sort(rng.choice([2, 3, 4, 6, 8, 12, 16, 24, 32], int(rng.integers(2, 5)), False))
    per_channel = rng.random() < 0.4
    channels = 3 if per_channel else 1
    total = np.zeros((size, size, channels), np.float32)
    for c in cells:
        grid = rng.random((int(c), int(c), channels)).astype(np.float32)
        up = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).reshape(total.shape)
        total += up / math.sqrt(float(c))
    total -= total.min(axis=(0, 1), keepdims=True)
    total /= np.maximum(total.max(axis=(0, 1), keepdims=True), 1e-6)
    if per_channel:
        return _to_u8(total * rng.uniform(80.0, 255.0, size=3) + rng.uniform(0.0, 80.0, size=3))
    c0, c1 = _colour(rng), _colour(rng)
    return _to_u8(c0 + total * (c1 - c0))


def _shapes(size: int, rng: np.random.Generator) -> np.ndarray:
    """A flat or gradient base covered with 4-16 random rectangles, circles and lines."""
    base = _flat(size, rng) if rng.random() < 0.5 else _gradient(size, rng)
    return _draw_shapes(base, rng, int(rng.integers(4, 17)))


def _draw_shapes(image: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Draw ``count`` random shapes (filled or outlined, anti-aliased) on a uint8 image copy."""
    image = np.ascontiguousarray(image.copy())
    size = image.shape[0]
    for _ in range(count):
        colour = tuple(float(c) for c in _colour(rng))
        thickness = -1 if rng.random() < 0.5 else int(rng.integers(1, max(2, size // 16)))
        p, q = rng.integers(-size // 4, size + size // 4, size=(2, 2))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.rectangle(image, tuple(map(int, p)), tuple(map(int, q)), colour, thickness)
        elif kind == 1:
            radius = int(rng.integers(2, max(3, size // 2)))
            cv2.circle(image, tuple(map(int, p)), radius, colour, thickness, cv2.LINE_AA)
        else:
            width = max(1, abs(thickness))
            cv2.line(image, tuple(map(int, p)), tuple(map(int, q)), colour, width, cv2.LINE_AA)
    return image


def _rotated_coords(size: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """(2, size, size) pixel coordinates rotated by a random angle and divided by ``cell``."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    a = rng.uniform(0.0, math.pi)
    ca, sa = math.cos(a), math.sin(a)
    off = rng.uniform(0.0, cell, size=2)
    return np.stack([(ca * u + sa * v + off[0]) / cell, (-sa * u + ca * v + off[1]) / cell])


def _checker(size: int, rng: np.random.Generator) -> np.ndarray:
    """A rotated black-and-white checkerboard with random cell size and grey levels."""
    cu, cv = np.floor(_rotated_coords(size, rng, rng.uniform(3.0, size / 3))).astype(np.int64)
    dark, light = rng.uniform(0.0, 70.0), rng.uniform(160.0, 255.0)
    grey = np.where((cu + cv) % 2 == 0, dark, light)
    return _to_u8(np.repeat(grey[..., None], 3, axis=2))


def _markers(size: int, rng: np.random.Generator) -> np.ndarray:
    """A light field with 1-4 square fiducial-like markers (black border, random 4x4 bits)."""
    light = rng.uniform(170.0, 255.0)
    grey = np.full((size, size), light, np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cell = rng.uniform(2.0, size / 6)
        cu, cv = np.floor(_rotated_coords(size, rng, cell)).astype(np.int64)
        shift = rng.integers(-4, 4, size=2)
        cu, cv = cu - shift[0], cv - shift[1]
        inside = (cu >= 0) & (cu < 6) & (cv >= 0) & (cv < 6)
        bits = rng.random((6, 6)) < 0.5
        bits[[0, -1], :] = False  # the black border
        bits[:, [0, -1]] = False
        value = np.where(bits[cv.clip(0, 5), cu.clip(0, 5)], light, rng.uniform(0.0, 50.0))
        grey = np.where(inside, value, grey)
    return _to_u8(np.repeat(grey[..., None], 3, axis=2))


def _flat(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random colour with faint low-frequency variation."""
    grid = rng.normal(0.0, rng.uniform(0.0, 12.0), size=(3, 3, 3)).astype(np.float32)
    wobble = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return _to_u8(_colour(rng) + wobble)


_MAKERS = {
    "gradient": _gradient,
    "noise": _value_noise,
    "shapes": _shapes,
    "checker": _checker,
    "markers": _markers,
    "flat": _flat,
}


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def augment_photometric(
    image: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """Colour jitter, saturation, gamma, blur and motion blur of an (H, W, 3) float32 image in
    [0, 1] (returned as a new array, still in [0, 1]).

    ``scale`` is the supersampling factor of ``image`` relative to the output window: blur sizes
    are specified in output pixels (Gaussian σ ∈ [0, 1.2] with probability 0.5; motion blur over
    1.5-4 output pixels with probability 0.1).
    """
    gain = rng.uniform(0.75, 1.25, size=3).astype(np.float32)
    offset = rng.uniform(-0.08, 0.08, size=3).astype(np.float32)
    out = image * gain + offset
    grey = out.mean(axis=2, keepdims=True)
    out = grey + rng.uniform(0.4, 1.5) * (out - grey)
    out = np.clip(out, 0.0, 1.0) ** np.float32(rng.uniform(0.7, 1.5))
    if rng.random() < 0.5:
        sigma = rng.uniform(0.0, 1.2) * scale
        if sigma > 0.05:
            out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    if rng.random() < 0.1:
        out = _motion_blur(out, rng.uniform(1.5, 4.0) * scale, rng.uniform(0.0, math.pi))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Blur along a line of ``length`` pixels at ``angle`` (rad)."""
    k = math.ceil(length) | 1
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    d = np.array([math.cos(angle), math.sin(angle)]) * (length - 1) / 2
    cv2.line(kernel, (round(c - d[0]), round(c - d[1])), (round(c + d[0]), round(c + d[1])), 1.0)
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def add_sensor_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with σ ∈ [0, 6] (on 0-255) on an (H, W, 3) float32 [0, 1] image -> uint8."""
    sigma = rng.uniform(0.0, 6.0)
    noisy = image * 255.0 + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return _to_u8(noisy)
