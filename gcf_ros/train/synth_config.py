"""Configuration of the synthetic training data: the ``synth:`` section of config/train.yaml.

See :mod:`gcf_ros.train.synth` for what the settings control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gcf_ros.eval.perturb import NOISE_LEVELS, NoiseLevel

__all__ = ["DEFAULT_NOISE_MIX", "SYNTH_LEVELS", "TINY", "XLARGE", "SynthConfig", "load_synth_yaml"]

XLARGE = NoiseLevel("xlarge", 40.0, 0.05, 0.2)
# Near-aligned starts: the refiner ends every run there, and a network that has seen none keeps
# pushing an aligned pose away (experiments/fixed_point_study.py; docs/results.md, session 6).
TINY = NoiseLevel("tiny", 1.0, 0.002, 0.005)
SYNTH_LEVELS: dict[str, NoiseLevel] = {"tiny": TINY, **NOISE_LEVELS, "xlarge": XLARGE}
DEFAULT_NOISE_MIX: dict[str, float] = {"small": 0.25, "medium": 0.35, "large": 0.3, "xlarge": 0.1}


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic samples are drawn (the ``synth:`` section of config/train.yaml).

    Attributes:
        window_size: S, the network's window side in pixels.
        padding: window side / longer side of the projected box at T0.
        image_width, image_height: the virtual camera's image size, pixels.
        fx_range: fx ~ U(fx_range) pixels; fy = fx · U(0.98, 1.02); principal point = centre ± 10.
        distance_range: distance camera → box centre, metres, uniform.
        upper_hemisphere_prob: probability of a view from above the model's xy plane (else a
            uniformly random rotation).
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
    """

    window_size: int = 64
    padding: float = 1.3
    image_width: int = 640
    image_height: int = 480
    fx_range: tuple[float, float] = (520.0, 620.0)
    distance_range: tuple[float, float] = (0.35, 1.5)
    upper_hemisphere_prob: float = 0.8
    noise_mix: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_NOISE_MIX), hash=False
    )
    max_occluders: int = 3
    occluder_prob: float = 0.5
    supersample: int = 2
    camera_resolution: bool = False
    camera_blur_px: tuple[float, float] = (0.3, 0.9)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fx_range", tuple(float(v) for v in self.fx_range))
        object.__setattr__(self, "distance_range", tuple(float(v) for v in self.distance_range))
        object.__setattr__(self, "camera_blur_px", tuple(float(v) for v in self.camera_blur_px))
        object.__setattr__(self, "noise_mix", {str(k): float(v) for k, v in self.noise_mix.items()})
        unknown = sorted(set(self.noise_mix) - set(SYNTH_LEVELS))
        if unknown:
            raise ValueError(f"noise_mix: unknown level(s) {unknown}; known: {list(SYNTH_LEVELS)}")
        probs = list(self.noise_mix.values())
        if not probs or min(probs) < 0 or not sum(probs) > 0:
            raise ValueError(f"noise_mix needs non-negative probabilities, got {self.noise_mix}")
        checks = {
            "window_size >= 8": self.window_size >= 8,
            "padding >= 1": self.padding >= 1.0,
            "image size > 0": self.image_width > 0 and self.image_height > 0,
            "0 < fx_range[0] <= fx_range[1]": 0 < self.fx_range[0] <= self.fx_range[1],
            "0 < distance_range[0] <= [1]": 0 < self.distance_range[0] <= self.distance_range[1],
            "upper_hemisphere_prob in [0, 1]": 0 <= self.upper_hemisphere_prob <= 1,
            "max_occluders >= 0": self.max_occluders >= 0,
            "occluder_prob in [0, 1]": 0 <= self.occluder_prob <= 1,
            "supersample >= 1": self.supersample >= 1,
            "0 <= camera_blur_px[0] <= [1]": 0 <= self.camera_blur_px[0] <= self.camera_blur_px[1],
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid SynthConfig ({', '.join(failed)}): {self}")

    @property
    def level_names(self) -> tuple[str, ...]:
        """Noise level names in the order that ``level`` indices refer to."""
        return tuple(self.noise_mix)

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
