"""sensor_msgs/Image <-> numpy, with cv_bridge when it is importable and without it otherwise.

ROS 2 wheels ship no cv_bridge, so the project carries its own converter for the five 8-bit
encodings the node accepts. Both paths return the same (H, W, 3) uint8 RGB array; ``step`` padding
is honoured and unsupported encodings raise :class:`ImageDecodeError` with the encoding named.
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
