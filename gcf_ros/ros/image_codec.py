"""sensor_msgs/Image <-> numpy, with cv_bridge when it is importable and without it otherwise.

ROS 2 wheels ship no cv_bridge, so the project carries its own converter for the five 8-bit
encodings the node accepts. Both paths return the same (H, W, 3) uint8 RGB array; ``step`` padding
is honoured and unsupported encodings raise :class:`ImageDecodeError` with the encoding named.

Depth images (:data:`DEPTH_ENCODINGS`, the project's own converter only) become (H, W) float32
metres: ``16UC1`` counts times a unit scale (metres per count: 0.001 for most drivers), ``32FC1``
metres as they are; ``is_bigendian`` and ``step`` padding are honoured. Missing depth is 0: zero,
NaN, infinite and negative values all become 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: encoding -> (channels, index of R, G, B in the pixel)
ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}


class ImageDecodeError(ValueError):
    """The image message cannot be turned into an RGB array (encoding, size or layout)."""


def _cv_bridge():
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


_BRIDGE: Any = _cv_bridge()


def image_to_rgb(msg: Any, use_cv_bridge: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a sensor_msgs/Image in one of :data:`ENCODINGS`."""
    if msg.encoding not in ENCODINGS:
        supported = ", ".join(ENCODINGS)
        raise ImageDecodeError(f"unsupported encoding {msg.encoding!r} (supported: {supported})")
    if use_cv_bridge and _BRIDGE is not None:
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return decode(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def decode(encoding: str, height: int, width: int, step: int, data: Any) -> np.ndarray:
    """The project's own converter: raw 8-bit buffer -> (H, W, 3) uint8 RGB copy."""
    channels, rgb = ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image ({width} x {height})")
    if step < width * channels:
        raise ImageDecodeError(f"step {step} < width {width} x {channels} channels")
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if buf.size < step * (height - 1) + width * channels:
        raise ImageDecodeError(f"{buf.size} bytes of data for {width} x {height} {encoding}")
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    return np.ascontiguousarray(rows[..., list(rgb)])


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """Fields of an ``rgb8`` sensor_msgs/Image holding ``rgb`` (H, W, 3) uint8 (no header)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb).tobytes()
    return {"height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": 3 * w,
            "data": data}  # fmt: skip


def fill_image(msg: Any, rgb: np.ndarray, use_cv_bridge: bool = True) -> Any:
    """Write ``rgb`` into an Image message (header untouched); cv_bridge when available."""
    if use_cv_bridge and _BRIDGE is not None:
        header = msg.header
        msg = _BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(rgb), encoding="rgb8")
        msg.header = header
        return msg
    for key, value in rgb_to_image_fields(rgb).items():
        setattr(msg, key, value)
    return msg


#: depth encoding -> the pixel's type, little-endian (``is_bigendian`` turns it big-endian)
DEPTH_ENCODINGS: dict[str, str] = {"16UC1": "<u2", "32FC1": "<f4"}


def depth_to_metres(msg: Any, unit_scale: float = 0.001) -> np.ndarray:
    """(H, W) float32 metres of a sensor_msgs/Image in one of :data:`DEPTH_ENCODINGS` (16UC1:
    ``unit_scale`` metres per count); missing (0, NaN, inf, negative) -> 0."""
    if msg.encoding not in DEPTH_ENCODINGS:
        supported = ", ".join(DEPTH_ENCODINGS)
        raise ImageDecodeError(
            f"unsupported depth encoding {msg.encoding!r} (supported: {supported})"
        )
    big = bool(msg.is_bigendian)
    return decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.data, big, unit_scale)


def decode_depth(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    bigendian: bool = False,
    unit_scale: float = 0.001,
) -> np.ndarray:
    """Raw depth buffer -> (H, W) float32 metres, missing -> 0 (:func:`depth_to_metres`)."""
    dtype = np.dtype(DEPTH_ENCODINGS[encoding])
    dtype = dtype.newbyteorder(">") if bigendian else dtype
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty depth image ({width} x {height})")
    row = width * dtype.itemsize
    if step < row:
        raise ImageDecodeError(f"step {step} < width {width} x {dtype.itemsize} bytes")
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if buf.size < step * (height - 1) + row:
        raise ImageDecodeError(f"{buf.size} bytes of data for {width} x {height} {encoding}")
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, row), strides=(step, 1), writeable=False
    )
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    depth = values.astype(np.float32) * np.float32(unit_scale if dtype.kind == "u" else 1.0)
    depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return depth


def depth_to_image_fields(
    depth_m: np.ndarray, encoding: str = "16UC1", unit_scale: float = 0.001, bigendian: bool = False
) -> dict:
    """Fields of a depth sensor_msgs/Image holding ``depth_m`` (H, W) metres (no header); 16UC1
    rounds to ``unit_scale`` counts (clipped to the type's range), missing (0, NaN) stays 0."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"expected (H, W) depth, got {depth.shape}")
    dtype = np.dtype(DEPTH_ENCODINGS[encoding])
    dtype = dtype.newbyteorder(">") if bigendian else dtype
    valid = np.isfinite(depth) & (depth > 0)
    if dtype.kind == "u":
        counts = np.clip(np.rint(np.where(valid, depth, 0.0) / unit_scale), 0, 65535)
        values = counts.astype(dtype)
    else:
        values = np.where(valid, depth, 0.0).astype(dtype)
    h, w = depth.shape
    return {"height": h, "width": w, "encoding": encoding, "is_bigendian": int(bigendian),
            "step": w * dtype.itemsize, "data": values.tobytes()}  # fmt: skip
