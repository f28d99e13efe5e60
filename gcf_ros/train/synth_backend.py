"""What a synthesizer renders with and where its models come from.

Two choices that leave the samples' definition alone (so they are not :class:`SynthConfig` keys,
and a set made with the defaults has the manifest it always had):

- :class:`SynthRenderer`: open3d's ray caster (``raycast``, the default: every shipped data set)
  or the plain-torch rasterizer (``torch``, on ``cpu`` or ``cuda``; no open3d). They agree up to
  pixels whose centre lies on a silhouette edge (test/train/test_synth_backends.py).
- :class:`ModelSource`: the registry YAML of the training config (meshes read with open3d), or a
  registry snapshot (``gcf-models snapshot``; numpy only), e.g. on a GPU machine without open3d.

Both are small frozen dataclasses: they travel to the spawned worker processes with each job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.types import Renderer

__all__ = ["RENDERERS", "ModelSource", "SynthRenderer"]

RENDERERS = ("raycast", "torch")


@dataclass(frozen=True)
class SynthRenderer:
    """The renderer of a synthesizer.

    Attributes:
        backend: ``"raycast"`` (open3d's ``RaycastRenderer``, one thread; the default) or
            ``"torch"`` (``TorchRasterizer``: plain torch, no open3d).
        device: where the torch rasterizer runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); the
            ray caster runs on the CPU only. Outputs come back to the CPU either way.
    """

    backend: str = "raycast"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.backend not in RENDERERS:
            raise ValueError(f"renderer {self.backend!r}: choose one of {list(RENDERERS)}")
        try:
            kind = torch.device(self.device).type
        except RuntimeError:  # a malformed device string
            kind = None
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"renderer device {self.device!r}: cpu, cuda or cuda:N")
        if self.backend == "raycast" and kind != "cpu":
            raise ValueError("the raycast renderer runs on the CPU only: use --renderer torch")

    @property
    def is_default(self) -> bool:
        """True for the ray caster (the renderer of every set made before this choice existed)."""
        return self.backend == "raycast"

    def check_available(self) -> None:
        """RuntimeError when the device is CUDA and torch sees no CUDA device (checked once in
        the parent, before any worker starts)."""
        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"renderer device {self.device!r}: torch sees no CUDA device")

    def make(self) -> Renderer:
        """A new renderer whose ``render`` returns CPU tensors (ImportError: raycast without
        open3d)."""
        if self.backend == "raycast":
            from gcf_ros.core.render.raycast import RaycastRenderer

            return RaycastRenderer(nthreads=1)
        from gcf_ros.core.render.device import DeviceRenderer
        from gcf_ros.core.render.torch_raster import TorchRasterizer

        rasterizer = TorchRasterizer(self.device)
        return rasterizer if rasterizer.device.type == "cpu" else DeviceRenderer(rasterizer, "cpu")

    def manifest_entry(self) -> dict[str, str]:
        """{"backend", "device"} for a set's manifest (written only for a non-default one)."""
        return {"backend": self.backend, "device": self.device}


@dataclass(frozen=True)
class ModelSource:
    """Where a synthesizer's models come from.

    Attributes:
        path: the registry YAML, or the snapshot file (absolute).
        snapshot: ``path`` is a registry snapshot (:meth:`ModelRegistry.load_snapshot`).
        name: which registry of a snapshot that holds several (None: its only one).
    """

    path: Path
    snapshot: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())
        if self.name is not None and not self.snapshot:
            raise ValueError("a snapshot name needs a snapshot (a registry YAML has no names)")

    @classmethod
    def of(cls, models: str | Path | ModelSource) -> ModelSource:
        """``models`` itself, or the source of a registry YAML path."""
        return models if isinstance(models, ModelSource) else cls(Path(models))

    @classmethod
    def from_snapshot(cls, path: str | Path, name: str | None = None) -> ModelSource:
        """The source of a registry snapshot file (``name``: its registry, None: the only one)."""
        return cls(Path(path), snapshot=True, name=name)

    def registry(self) -> ModelRegistry:
        """The registry (from a snapshot: loaded models, no open3d; from a YAML: specs, the
        meshes loaded on first use, which needs open3d)."""
        if self.snapshot:
            return ModelRegistry.load_snapshot(self.path, self.name)
        return ModelRegistry.from_yaml(self.path)

    def manifest_entries(self) -> dict[str, Any]:
        """The manifest's record of the source: ``registry`` (the file read), and for a snapshot
        ``models_snapshot``: {"name": the registry read, "sha256": of the file})."""
        if not self.snapshot:
            return {"registry": str(self.path)}
        from gcf_ros.core.model_snapshot import snapshot_names

        name = self.name if self.name is not None else snapshot_names(self.path)[0]
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {"registry": str(self.path), "models_snapshot": {"name": name, "sha256": digest}}
