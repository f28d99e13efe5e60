"""Each BOP image's intrinsics and size (the rules are in :mod:`gcf_ros.core.bop`'s docstring).

The size of an image comes from its own file: the header of a PNG or JPEG (no decoding), else the
decoded image (other formats).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, ...): C0-CF but DHT (C4), JPG (C8), DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; FileNotFoundError / ValueError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: required BOP file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from err


@dataclass(frozen=True)
class BopCamera:
    """camera.json: the dataset-wide intrinsics (3, 3) and image size (width, height), each
    None when camera.json does not give it."""

    path: Path
    K: np.ndarray | None
    size: tuple[int, int] | None

    @classmethod
    def read(cls, path: Path) -> BopCamera:
        camera = read_json(path)
        K = None
        if any(k in camera for k in ("fx", "fy", "cx", "cy")):
            try:
                fx, fy, cx, cy = (float(camera[k]) for k in ("fx", "fy", "cx", "cy"))
            except KeyError as err:
                raise ValueError(f"{path}: missing intrinsic {err}") from None
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(path, K, _stated_size(camera, path))

    def for_image(
        self, rgb: Path, cam: dict[str, Any], cam_path: Path
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """K (3, 3) and (width, height) of the image ``rgb`` with ``cam``, its entry of
        ``cam_path`` (scene_camera.json; {} when it has none)."""
        own_K = "cam_K" in cam
        if own_K:
            K = np.reshape(np.asarray(cam["cam_K"], dtype=np.float64), (3, 3))
        elif self.K is not None:
            K = self.K
        else:
            raise ValueError(f"{rgb}: no cam_K for it in {cam_path}, and {self.path} has none")
        stated = _stated_size(cam, cam_path)
        actual = image_size(rgb) if rgb.is_file() else None
        if stated and actual and stated != actual:
            raise ValueError(f"{rgb}: image is {_wh(actual)}, but {cam_path} says {_wh(stated)}")
        if not own_K and actual and self.size and actual != self.size:
            raise ValueError(
                f"{rgb}: image is {_wh(actual)}, but it uses the intrinsics of {self.path} (no "
                f"cam_K for it in {cam_path}), which are for {_wh(self.size)} images"
            )
        size = stated or actual or self.size
        if size is None:
            raise ValueError(
                f"{rgb}: image not found, and neither {cam_path} nor {self.path} gives its size"
            )
        cx, cy = K[0, 2], K[1, 2]
        if not (0.0 <= cx <= size[0] and 0.0 <= cy <= size[1]):
            source = cam_path if own_K else self.path
            raise ValueError(
                f"{rgb}: the principal point ({cx:.1f}, {cy:.1f}) of its intrinsics (from "
                f"{source}) lies outside the {_wh(size)} image: K and image size disagree"
            )
        return K, size


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image file ``path``: from the header of a PNG or JPEG, else by
    decoding it; ValueError naming the file when it is unreadable."""
    with path.open("rb") as f:
        head = f.read(24)
        if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            size = _jpeg_size(f)
            if size is not None:
                return size
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: unreadable image (corrupt or unsupported format)")
    return int(image.shape[1]), int(image.shape[0])


def _jpeg_size(f) -> tuple[int, int] | None:
    """Walk the JPEG segments to the start-of-frame marker; None when the stream is odd."""
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:  # no length
            continue
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if kind in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return int(width), int(height)
        f.seek(length - 2, 1)


def _stated_size(doc: dict[str, Any], path: Path) -> tuple[int, int] | None:
    """(width, height) given in a camera.json / scene_camera.json entry, or None."""
    if "width" not in doc and "height" not in doc:
        return None
    try:
        width, height = int(doc["width"]), int(doc["height"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: give both 'width' and 'height' as integers") from None
    if width < 1 or height < 1:
        raise ValueError(f"{path}: width and height must be >= 1, got {width} x {height}")
    return width, height


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]} x {size[1]}"
