"""The depth images ``gcf-eval --depth`` gives the methods, with the degradations it can add.

Each evaluated frame gets its scene's ``depth/`` image (``BopFrame.load_depth``), optionally

- **late** (``lag_frames`` = N): the depth of the frame N positions earlier in the scene's
  image-id order, as from a depth stream that lags the colour stream. The first N frames of a
  scene have no frame N positions earlier; they get the nearest earlier one available, the scene's
  first frame (so the scene's first frame always gets its own depth);
- **thinned** (``drop_fraction`` = f): round(f × valid) of its valid pixels set to 0, chosen at
  random with a generator seeded with (seed, scene id, image id of the evaluated frame).

Depth images are (H, W) float32 metres, 0 = missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gcf_ros.core.bop import BopDataset, BopFrame
from gcf_ros.eval.simdepth import drop_pixels


@dataclass(frozen=True)
class DepthSettings:
    """How the evaluated frames' depth is degraded.

    Attributes:
        drop_fraction: fraction of the valid pixels removed at random, [0, 1).
        lag_frames: the depth comes from this many frames earlier in the scene, >= 0.
        seed: seeds the random removal (with the scene and image ids).
    """

    drop_fraction: float = 0.0
    lag_frames: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_fraction < 1.0:
            raise ValueError(f"--depth-drop must be in [0, 1), got {self.drop_fraction}")
        if isinstance(self.lag_frames, bool) or not isinstance(self.lag_frames, int):
            raise ValueError(f"--depth-lag must be an integer, got {self.lag_frames!r}")
        if self.lag_frames < 0:
            raise ValueError(f"--depth-lag must be >= 0, got {self.lag_frames}")


class DepthInput:
    """Depth for the frames of ``dataset``; FileNotFoundError at construction when any frame
    lacks its depth image (pointing to gcf-simdepth)."""

    def __init__(self, dataset: BopDataset, settings: DepthSettings) -> None:
        self.settings = settings
        scenes: dict[int, list[BopFrame]] = {}
        for frame in dataset.frames():  # sorted by (scene, image id)
            scenes.setdefault(frame.scene_id, []).append(frame)
            if not frame.depth_path.is_file():
                raise FileNotFoundError(
                    f"--depth: {frame.depth_path} not found: {dataset.root} has no depth images. "
                    f"Make a copy with simulated depth (gcf-simdepth --dataset {dataset.root} "
                    "--out FOLDER) and evaluate that folder"
                )
        self._source = {
            (frame.scene_id, frame.im_id): frames[max(k - settings.lag_frames, 0)]
            for frames in scenes.values()
            for k, frame in enumerate(frames)
        }

    def source_frame(self, frame: BopFrame) -> BopFrame:
        """The frame whose depth image ``frame`` gets (itself without lag)."""
        return self._source[(frame.scene_id, frame.im_id)]

    def depth_for(self, frame: BopFrame) -> np.ndarray:
        """(H, W) float32 metres, 0 = missing: ``frame``'s depth, late and thinned as set."""
        depth = self.source_frame(frame).load_depth(required=True)
        s = self.settings
        rng = np.random.default_rng([s.seed, frame.scene_id, frame.im_id])
        return drop_pixels(depth, s.drop_fraction, rng)

    def header(self) -> dict:
        """What the results JSON records about the depth input."""
        s = self.settings
        return {"depth": True, "depth_drop": s.drop_fraction, "depth_lag": s.lag_frames}


NO_DEPTH_HEADER = {"depth": False, "depth_drop": 0.0, "depth_lag": 0}
