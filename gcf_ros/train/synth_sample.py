"""One synthetic training sample: the image at T*, the rendering and true field at T0.

:class:`SampleSynthesizer` holds what a worker process reuses between samples (the registry's
models, one renderer that caches its per-model data: ray-casting BVHs or rasterizer meshes, the
primitive bank); see :mod:`gcf_ros.train.synth` for the configuration and the sample format, and
:mod:`gcf_ros.train.synth_backend` for the choice of renderer and model source.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gcf_ros.core.camera import CropWindow, crop_window_for_box
from gcf_ros.core.models import ObjectModel
from gcf_ros.core.render.types import Shading
from gcf_ros.eval.perturb import NoiseLevel, perturb_pose
from gcf_ros.gcf.field import true_field
from gcf_ros.gcf.inputs import render_input
from gcf_ros.train import backgrounds as bg
from gcf_ros.train import synth_scene as sc
from gcf_ros.train.synth_backend import ModelSource, SynthRenderer
from gcf_ros.train.synth_config import SynthConfig

_MAX_TRIES = 100
_MIN_PIXELS = 16  # the T0 rendering must cover at least this many window pixels
_MAX_HIDDEN = 0.7  # occluders may hide at most this fraction of the object (visibility >= 0.3)


class SampleSynthesizer:
    """Draws samples for the models of one registry (load once per worker process).

    Args:
        models: a registry YAML path, or a :class:`ModelSource` (e.g. a registry snapshot).
        renderer: what renders the layers and the T0 rendering (default: open3d's ray caster).
    """

    def __init__(
        self, models: str | Path | ModelSource, renderer: SynthRenderer | None = None
    ) -> None:
        registry = ModelSource.of(models).registry()
        self.ids: tuple[str, ...] = registry.ids
        self.models: list[ObjectModel] = [registry.get(i) for i in registry.ids]
        self.renderer = (renderer or SynthRenderer()).make()
        self.primitives: list[ObjectModel] = sc.primitive_bank()
        self._scaled_primitives: dict[float, list[ObjectModel]] = {1.0: self.primitives}

    def check_config(self, cfg: SynthConfig) -> None:
        """Raise ValueError when an explicit ``cfg.distance_range`` is too near for a model (parts
        of it would be behind the camera: the fields would be meaningless or non-finite), or
        ``cfg.model_weights`` names a model the registry lacks."""
        K = np.diag([cfg.fx_range[0], cfg.fx_range[0], 1.0])
        for model in self.models:
            sc.distance_range(cfg, model, K)
        cfg.model_probabilities(self.ids)  # raises for unknown ids

    def sample(
        self, cfg: SynthConfig, levels: Sequence[NoiseLevel], rng: np.random.Generator
    ) -> dict[str, Any]:
        """One sample (see ``generate_shard``). Draws are retried when T0 puts the box behind the
        camera or its window does not contain the projected box centre at T*."""
        for _ in range(_MAX_TRIES):
            sample = self._try_sample(cfg, levels, rng)
            if sample is not None:
                return sample
        raise RuntimeError(f"no valid sample in {_MAX_TRIES} tries; check the SynthConfig ranges")

    def _try_sample(self, cfg: SynthConfig, levels, rng: np.random.Generator) -> dict | None:
        S, S2 = cfg.window_size, cfg.window_size * cfg.supersample
        idx = self._draw_model(cfg, rng)
        model = self.models[idx]
        K = sc.sample_intrinsics(rng, cfg.fx_range, cfg.image_width, cfg.image_height)
        T_true = sc.sample_true_pose(
            rng, model, K, cfg.image_width, cfg.image_height, sc.distance_range(cfg, model, K),
            cfg.upper_hemisphere_prob,
        )  # fmt: skip
        probs = np.array(list(cfg.noise_mix.values()))
        level = int(rng.choice(len(probs), p=probs / probs.sum()))
        T_init = perturb_pose(T_true, _scaled_level(cfg, levels[level], model), rng)
        try:
            win2 = crop_window_for_box(K, T_init, model.bbox_corners_obj, S2, cfg.padding)
        except ValueError:  # T0 puts the box (partly) behind the camera
            return None
        if not _centre_in_window(model, T_true, win2.K_window(K), S2):
            return None  # T0 is so far off that the window would not show the object at all
        K_S = CropWindow(win2.x0, win2.y0, win2.side, S).K_window(K)
        render0 = self.renderer.render([model], T_init[None], K_S[None], S)
        if int(render0.mask.sum()) < _MIN_PIXELS:
            return None
        image, visible = self._image(cfg, rng, idx, T_true, win2.K_window(K),
                                     _coverage(cfg, win2), win2.side)  # fmt: skip
        field = true_field(render0, torch.from_numpy(T_true)[None], torch.from_numpy(K_S)[None])
        diameters = torch.tensor([model.diameter], dtype=torch.float32)
        return {
            "image": image,
            "render": render_input(render0, diameters)[0].numpy(),
            "field": field[0].permute(2, 0, 1).numpy(),
            "mask": render0.mask[0].numpy(),
            "model_idx": idx,
            "T_true": T_true,
            "T_init": T_init,
            "K_window": K_S,
            "level": level,
            "visible": visible,
        }

    def _draw_model(self, cfg: SynthConfig, rng: np.random.Generator) -> int:
        """Index of the sample's model: uniform, or by ``cfg.model_weights``."""
        probs = cfg.model_probabilities(self.ids)
        if probs is None:
            return int(rng.integers(len(self.models)))
        return int(rng.choice(len(probs), p=probs))

    def _image(self, cfg, rng, idx, T_true, K2, coverage, side) -> np.ndarray:
        """(S, S, 3) uint8: background, clutter behind, the object at T*, occluders in front, all
        at S2; then photometric augmentation and sensor noise at S (area-downsampled) or at the
        camera's resolution (``cfg.camera_resolution``, ``side``: the window's side in camera
        pixels, see ``_camera_image``); zero outside the camera image. Also the (S, S) bool mask
        of where the object is visible (its layer minus the occluders, inside the image)."""
        S, S2 = cfg.window_size, cfg.window_size * cfg.supersample
        shading = _random_shading(rng)
        canvas = bg.random_background(S2, rng).astype(np.float32) / 255.0
        zbuf = np.full((S2, S2), np.inf, np.float32)
        target = sc.render_layer(self.renderer, self.models[idx], T_true, K2, S2, shading)
        scale = cfg.scale_for("clutter_scale", self.models[idx].diameter)
        for _ in range(int(rng.integers(0, 4))):
            self._add(rng, idx, scale, T_true, K2, S2, shading, canvas, zbuf, None, front=False)
        if target is not None:
            sc.composite(canvas, zbuf, target)
        hidden = np.zeros((S2, S2), bool)
        n_occ = 0
        if cfg.max_occluders > 0 and rng.random() < cfg.occluder_prob:
            n_occ = int(rng.integers(1, cfg.max_occluders + 1))
        for _ in range(n_occ):
            self._add(
                rng, idx, scale, T_true, K2, S2, shading, canvas, zbuf, (target, hidden), front=True
            )
        cover = cv2.resize(coverage, (S, S), interpolation=cv2.INTER_AREA)
        visible = np.zeros((S, S), bool)
        if target is not None:
            seen = (target.mask & (zbuf >= target.depth - 1e-6)).astype(np.float32)  # nearest
            visible = (cv2.resize(seen, (S, S), interpolation=cv2.INTER_AREA) * cover) >= 0.5
        if cfg.camera_resolution:
            noisy = _camera_image(canvas, side, cfg, rng).astype(np.float32)
        else:
            small = cv2.resize(canvas, (S, S), interpolation=cv2.INTER_AREA)
            small = bg.augment_photometric(small, rng, 1.0)  # at S: a quarter of the pixels of S2
            noisy = bg.add_sensor_noise(small, rng).astype(np.float32)
        return np.rint(noisy * cover[..., None]).astype(np.uint8), visible

    def _pick(
        self, rng: np.random.Generator, idx: int, scale: float
    ) -> tuple[ObjectModel, np.ndarray | None]:
        """Another registry model (own colours) or a primitive scaled by ``scale`` with a random
        flat colour."""
        others = [i for i in range(len(self.models)) if i != idx]
        if others and rng.random() < 0.5:
            return self.models[others[int(rng.integers(len(others)))]], None
        if scale not in self._scaled_primitives:  # one bank per scale (per target model)
            self._scaled_primitives[scale] = [sc.scaled_model(p, scale) for p in self.primitives]
        bank = self._scaled_primitives[scale]
        return bank[int(rng.integers(len(bank)))], rng.uniform(0.05, 1.0, size=3)

    def _add(self, rng, idx, scale, T_true, K2, S2, shading, canvas, zbuf, occluding, front):
        """Place, render and composite one occluder (``front``) or clutter object (behind);
        ``scale``: the clutter scale of the target model ``idx``."""
        target = self.models[idx]
        model, tint = self._pick(rng, idx, scale)
        if front:
            T = sc.occluder_pose(rng, target, T_true, model, K2, S2)
        else:
            T = sc.clutter_pose(rng, target, T_true, model, K2, S2, gap_scale=scale)
        layer = None if T is None else sc.render_layer(self.renderer, model, T, K2, S2, shading)
        if layer is None:
            return
        if occluding is not None and occluding[0] is not None:
            target, hidden = occluding
            now = hidden | (layer.mask & target.mask & (layer.depth < target.depth))
            if now.sum() > _MAX_HIDDEN * target.mask.sum():
                return  # would hide too much of the object: leave this occluder out
            hidden[...] = now
        sc.composite(canvas, zbuf, layer, tint)


def _scaled_level(cfg: SynthConfig, level: NoiseLevel, model: ObjectModel) -> NoiseLevel:
    """``level`` with its lateral σ_xy scaled by ``cfg.noise_xy_scale`` for ``model``."""
    scale = cfg.scale_for("noise_xy_scale", model.diameter)
    if scale == 1.0:
        return level
    return dataclasses.replace(level, sigma_xy_m=level.sigma_xy_m * scale)


def _camera_image(
    canvas: np.ndarray, side: float, cfg: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    """(S, S, 3) uint8 window of a camera image: the supersampled ``canvas`` (S2, S2, 3) brought
    to the camera's pixel grid (n = ``side`` camera pixels across, capped at 2 S), blurred by
    the camera (σ ∈ ``cfg.camera_blur_px`` camera pixels), photometrically augmented, given sensor
    noise and quantised there, then resampled to S by ``CropWindow.resample`` as the refiner crops
    a real image. Windows of fewer than S camera pixels come out upsampled and soft, as real
    ones do."""
    S = cfg.window_size
    n = int(np.clip(round(side), 8, 2 * S))
    shrink = cv2.INTER_AREA if n < canvas.shape[0] else cv2.INTER_LINEAR
    cam = cv2.resize(canvas, (n, n), interpolation=shrink)
    sigma = rng.uniform(*cfg.camera_blur_px) * n / side  # camera px -> px of the n-grid
    if sigma > 0.05:
        cam = cv2.GaussianBlur(cam, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    cam = bg.augment_photometric(cam, rng, n / S)  # its blur sizes are in window pixels
    return CropWindow(0.0, 0.0, float(n), S).resample(bg.add_sensor_noise(cam, rng))


def _centre_in_window(model: ObjectModel, T: np.ndarray, K: np.ndarray, size: int) -> bool:
    """True when the model's box centre at pose T projects into the size x size window."""
    centre = T[:3, :3] @ ((model.bbox_min.astype(np.float64) + model.bbox_max) / 2) + T[:3, 3]
    x = K @ centre
    if x[2] <= 0:
        return False
    u, v = x[:2] / x[2]
    return -0.5 <= u < size - 0.5 and -0.5 <= v < size - 0.5


def _coverage(cfg: SynthConfig, win: CropWindow) -> np.ndarray:
    """(S2, S2) float32: 1 where the window pixel lies inside the camera image (elsewhere the
    real crop is zero-filled, see ``CropWindow.resample``)."""
    j = np.arange(win.size, dtype=np.float64)
    u = (j + 0.5) / win.scale - 0.5 + win.x0
    v = (j + 0.5) / win.scale - 0.5 + win.y0
    in_u = (u >= -0.5) & (u <= cfg.image_width - 0.5)
    in_v = (v >= -0.5) & (v <= cfg.image_height - 0.5)
    return np.outer(in_v, in_u).astype(np.float32)


def _random_shading(rng: np.random.Generator) -> Shading:
    """Ambient U(0.25, 0.7), diffuse U(0.3, 0.9), light from a random direction on the camera
    side (the direction towards the light has z < 0)."""
    ambient, diffuse = rng.uniform(0.25, 0.7), rng.uniform(0.3, 0.9)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.2, 1.0)])
    x, y, z = (float(c) for c in light / math.sqrt(float(light @ light)))
    return Shading(float(ambient), float(diffuse), (x, y, z))
