"""Configuration of the synthetic training data: the ``synth:`` section of config/train.yaml.

See :mod:`gcf_ros.train.synth` for what the settings control.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gcf_ros.eval.perturb import NOISE_LEVELS, NoiseLevel

__all__ = [
    "AUTO",
    "DEFAULT_NOISE_MIX",
    "LMO_DIAMETER_M",
    "SYNTH_LEVELS",
    "TINY",
    "XLARGE",
    "SynthConfig",
    "load_synth_yaml",
]

XLARGE = NoiseLevel("xlarge", 40.0, 0.05, 0.2)
# Near-aligned starts: the refiner ends every run there, and a network that has seen none keeps
# pushing an aligned pose away (experiments/fixed_point_study.py; docs/results.md, session 6).
TINY = NoiseLevel("tiny", 1.0, 0.002, 0.005)
SYNTH_LEVELS: dict[str, NoiseLevel] = {"tiny": TINY, **NOISE_LEVELS, "xlarge": XLARGE}
DEFAULT_NOISE_MIX: dict[str, float] = {"small": 0.25, "medium": 0.35, "large": 0.3, "xlarge": 0.1}
AUTO = "auto"
# The mean diameter of the eight LM-O models (0.10-0.26 m): the object size that the absolute
# lengths of the synthesis (primitives 2-18 cm, clutter up to 0.5 m behind, lateral T0 noise
# 1-5 cm) were chosen for. "auto" scales them by the model's diameter / LMO_DIAMETER_M.
LMO_DIAMETER_M = 0.164


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic samples are drawn (the ``synth:`` section of config/train.yaml).

    Attributes:
        window_size: S, the network's window side in pixels.
        padding: window side / longer side of the projected box at T0.
        image_width, image_height: the virtual camera's image size, pixels.
        fx_range: fx ~ U(fx_range) pixels; fy = fx · U(0.98, 1.02); principal point = centre ± 10.
        distance_range: distance camera → box centre, metres, uniform in (lo, hi); or ``"auto"``
            (the default): from the model's size and the sample's camera, the distances at which
            the model's diameter spans ``apparent_size_range`` of the image's shorter side. Either
            way no point of the model's box may come nearer than 5 cm to the camera: an explicit
            range too near for a model raises ValueError, "auto" moves the near end out.
        apparent_size_range: (lo, hi) fraction of min(image_width, image_height) spanned by the
            model's diameter, with ``distance_range: auto``. The default is what the shipped
            absolute range (0.35, 1.5) m gives the mean LM-O model (LMO_DIAMETER_M) at fx = 570.
        clutter_scale: factor on the sizes of the procedural clutter and occluder primitives
            (2-18 cm at 1) and on the clutter's depth gap behind the object (0-0.5 m at 1); or
            ``"auto"`` (the default): the model's diameter / LMO_DIAMETER_M. Other registry models
            used as clutter keep their own size.
        noise_xy_scale: factor on the lateral T0 noise σ_xy of the levels (metres, 1-5 cm at 1;
            the depth noise is relative already); or ``"auto"`` (the default): the model's
            diameter / LMO_DIAMETER_M.
        upper_hemisphere_prob: probability of a view from above the model (the half-space of its
            ``up_axis``, +z by default), else a uniformly random rotation.
        noise_mix: level name (``tiny``, ``small``, ``medium``, ``large``, ``xlarge``) →
            probability of perturbing T* to T0 with that level; the order of the keys numbers the
            levels.
        max_occluders: at most this many occluders in front of the object.
        occluder_prob: probability that a sample has occluders at all.
        supersample: the image is rendered at supersample · S and area-downsampled.
        camera_resolution: form the image at the camera's own resolution (the window's side in
            camera pixels, at most 2 S): camera blur (σ ∈ ``camera_blur_px`` camera pixels) and
            sensor noise there, then resampled to S exactly as the refiner crops a real image
            (``CropWindow.resample``). Off: blur and noise at S (the S = 64 data sets). At S = 128
            30 % of the windows are upsampled from fewer camera pixels, where the off mode draws
            detail no camera delivers.
        camera_blur_px: (lo, hi) σ of the Gaussian camera blur (optics, demosaicing), camera px.
        model_weights: model id → relative weight of drawing that model for a sample; models not
            listed weigh 1. Empty (the default): every model of the registry equally often, drawn
            exactly as before this key existed. E.g. ``{my_object: 8}`` beside the eight LM-O
            models gives the new object half of the samples.
    """

    window_size: int = 64
    padding: float = 1.3
    image_width: int = 640
    image_height: int = 480
    fx_range: tuple[float, float] = (520.0, 620.0)
    distance_range: tuple[float, float] | str = AUTO
    apparent_size_range: tuple[float, float] = (0.13, 0.56)
    clutter_scale: float | str = AUTO
    noise_xy_scale: float | str = AUTO
    upper_hemisphere_prob: float = 0.8
    noise_mix: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_NOISE_MIX), hash=False
    )
    max_occluders: int = 3
    occluder_prob: float = 0.5
    supersample: int = 2
    camera_resolution: bool = False
    camera_blur_px: tuple[float, float] = (0.3, 0.9)
    model_weights: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fx_range", tuple(float(v) for v in self.fx_range))
        self._coerce_sizes()
        object.__setattr__(self, "camera_blur_px", tuple(float(v) for v in self.camera_blur_px))
        object.__setattr__(self, "noise_mix", {str(k): float(v) for k, v in self.noise_mix.items()})
        unknown = sorted(set(self.noise_mix) - set(SYNTH_LEVELS))
        if unknown:
            raise ValueError(f"noise_mix: unknown level(s) {unknown}; known: {list(SYNTH_LEVELS)}")
        object.__setattr__(
            self, "model_weights", {str(k): float(v) for k, v in self.model_weights.items()}
        )
        if any(not w >= 0 for w in self.model_weights.values()):
            raise ValueError(f"model_weights must be >= 0, got {self.model_weights}")
        probs = list(self.noise_mix.values())
        if not probs or min(probs) < 0 or not sum(probs) > 0:
            raise ValueError(f"noise_mix needs non-negative probabilities, got {self.noise_mix}")
        near, far = (1.0, 1.0) if self.distance_range == AUTO else self.distance_range
        size_lo, size_hi = self.apparent_size_range
        checks = {
            "window_size >= 8": self.window_size >= 8,
            "padding >= 1": self.padding >= 1.0,
            "image size > 0": self.image_width > 0 and self.image_height > 0,
            "0 < fx_range[0] <= fx_range[1]": 0 < self.fx_range[0] <= self.fx_range[1],
            "0 < distance_range[0] <= [1]": self.distance_range == AUTO or 0 < near <= far,
            "0 < apparent_size_range[0] <= [1]": 0 < size_lo <= size_hi,
            "upper_hemisphere_prob in [0, 1]": 0 <= self.upper_hemisphere_prob <= 1,
            "max_occluders >= 0": self.max_occluders >= 0,
            "occluder_prob in [0, 1]": 0 <= self.occluder_prob <= 1,
            "supersample >= 1": self.supersample >= 1,
            "0 <= camera_blur_px[0] <= [1]": 0 <= self.camera_blur_px[0] <= self.camera_blur_px[1],
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid SynthConfig ({', '.join(failed)}): {self}")

    def _coerce_sizes(self) -> None:
        """distance_range: "auto" or (lo, hi) floats; the scales: "auto" or a float > 0."""
        distances = self.distance_range
        if distances != AUTO:
            if isinstance(distances, str) or len(distances) != 2:
                raise ValueError(f"distance_range: 'auto' or [lo, hi] metres, got {distances!r}")
            object.__setattr__(self, "distance_range", tuple(float(v) for v in distances))
        sizes = tuple(float(v) for v in self.apparent_size_range)
        if len(sizes) != 2:
            raise ValueError(f"apparent_size_range: [lo, hi], got {self.apparent_size_range!r}")
        object.__setattr__(self, "apparent_size_range", sizes)
        for key in ("clutter_scale", "noise_xy_scale"):
            value = getattr(self, key)
            if value != AUTO:
                if isinstance(value, str | bool) or not float(value) > 0:
                    raise ValueError(f"{key}: 'auto' or a number > 0, got {value!r}")
                object.__setattr__(self, key, float(value))

    @property
    def level_names(self) -> tuple[str, ...]:
        """Noise level names in the order that ``level`` indices refer to."""
        return tuple(self.noise_mix)

    def model_probabilities(self, model_ids: Sequence[str]) -> np.ndarray | None:
        """(M,) probabilities of drawing each of ``model_ids`` (a registry's sorted ids); None
        without ``model_weights`` (uniform, drawn as ``rng.integers(M)``). ValueError for a
        weighted id the registry lacks, or when every weight is 0."""
        if not self.model_weights:
            return None
        unknown = sorted(set(self.model_weights) - set(model_ids))
        if unknown:
            raise ValueError(f"model_weights: unknown model id(s) {unknown}; known: {model_ids}")
        weights = np.array([self.model_weights.get(i, 1.0) for i in model_ids])
        if not weights.sum() > 0:
            raise ValueError(f"model_weights leave no model to draw: {self.model_weights}")
        return weights / weights.sum()

    def distances_for(self, diameter: float, fx: float) -> tuple[float, float]:
        """(near, far) metres of ``distance_range`` for a model of ``diameter`` metres seen by a
        camera of focal length ``fx`` pixels (before the 5 cm clearance, see synth_scene)."""
        if self.distance_range != AUTO:
            return self.distance_range
        side = min(self.image_width, self.image_height)
        lo, hi = self.apparent_size_range
        return fx * diameter / (hi * side), fx * diameter / (lo * side)

    def scale_for(self, key: str, diameter: float) -> float:
        """The factor of ``clutter_scale`` or ``noise_xy_scale`` for a model of ``diameter``."""
        value = getattr(self, key)
        return diameter / LMO_DIAMETER_M if value == AUTO else float(value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SynthConfig:
        """From a mapping of field names (e.g. the ``synth:`` YAML section); unknown keys raise."""
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"synth: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**dict(values))

    @classmethod
    def from_yaml(cls, path: str | Path) -> SynthConfig:
        """The ``synth:`` section of a training YAML (other top-level keys are ignored)."""
        return load_synth_yaml(path)[0]


def load_synth_yaml(path: str | Path) -> tuple[SynthConfig, Path]:
    """(SynthConfig of the ``synth:`` section, the model registry YAML named by the top-level
    ``models:`` key, relative to this file's folder; default ``models.yaml`` beside it)."""
    path = Path(path).expanduser()
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    section = doc.get("synth") or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: 'synth:' must be a mapping")
    return SynthConfig.from_dict(section), registry_yaml_path(path, doc)


def registry_yaml_path(path: str | Path, doc: dict) -> Path:
    """The model registry YAML named by the top-level ``models:`` key of the training YAML
    ``path`` (parsed: ``doc``), relative to that file's folder; default ``models.yaml`` beside
    it."""
    models = Path(str(doc.get("models", "models.yaml"))).expanduser()
    return models if models.is_absolute() else Path(path).expanduser().resolve().parent / models
