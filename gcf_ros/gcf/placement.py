"""Where each stage of the refinement loop runs: the renderer and its device, the device of the
field term and the solve, the network's device and inference backend (issue 21: the GPU path).

    refiner = build_refiner(registry, Placement.gpu())      # render + solve + network on CUDA
    refiner = build_refiner(registry, Placement())          # the default: all on the CPU
    placement = Placement.from_options("cuda:1", renderer="pytorch3d")   # the user's options

What runs where (gcf/refiner.py, "Devices"): the crop and the per-instance bookkeeping are always
on the CPU, as are the NumPy-based terms (silhouette lines, depth). The rendering lives where the
renderer puts it (open3d ray casting: the CPU only; the torch rasterizer or PyTorch3D:
``render_device``, all windows of a frame in one batch); ``solve_device`` (None: the
rendering's) is where the field term's rows and the 6 x 6 solves are computed (the rendering is
moved there by a ``DeviceRenderer``). The network runs on ``network_device`` with
``network_backend`` (:mod:`gcf_ros.gcf.inference`).

The node (parameters ``device``, ``renderer``, ``network_backend``), ``gcf-eval`` and
``gcf-bench`` (``--device``, ``--renderer``, ``--network-backend``) turn their options into a
placement with :meth:`Placement.from_options` alone, so the three accept and refuse the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.device import DeviceRenderer
from gcf_ros.core.render.types import Renderer
from gcf_ros.gcf.checkpoints import find_checkpoint
from gcf_ros.gcf.cuda_graph import DEFAULT_BUCKETS
from gcf_ros.gcf.inference import BACKENDS, DEFAULT_BACKEND
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Refiner, RefinerConfig

RENDERERS = ("raycast", "pytorch3d", "torch")
# The user-facing options (Placement.from_options): "auto" picks the device's default renderer /
# network backend.
AUTO = "auto"
RENDERER_OPTIONS = (AUTO, *RENDERERS)
BACKEND_OPTIONS = (AUTO, *BACKENDS)
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")  # cpu, cuda, cuda:N


@dataclass(frozen=True)
class Placement:
    """Devices and backends of one refiner (module docstring).

    Attributes:
        renderer: ``raycast`` (open3d, CPU), ``torch`` (``TorchRasterizer``: hard rasterization
            in plain torch, CPU or CUDA, no extension) or ``pytorch3d`` (PyTorch3D's hard
            rasterizer, CPU or CUDA; needs a PyTorch3D build for the installed torch).
        render_device: where the renderer runs (``raycast``: ``cpu`` only).
        solve_device: where the field term and the solve run; None: ``render_device``.
        network_device: where the network runs.
        network_backend: one of ``gcf_ros.gcf.inference.BACKENDS`` (``fused`` by default,
            ``cuda_graph`` / ``compile`` on a GPU).
        bin_size: PyTorch3D's rasterizer: 0 naive (exact; the only mode on a CPU), None its
            coarse-to-fine heuristic (CUDA), > 0 a fixed bin size.
        buckets: the batch sizes the accelerated network is captured / compiled for.
    """

    renderer: str = "raycast"
    render_device: str = "cpu"
    solve_device: str | None = None
    network_device: str = "cpu"
    network_backend: str = DEFAULT_BACKEND
    bin_size: int | None = 0
    buckets: tuple[int, ...] = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {self.renderer!r}")
        if self.renderer == "raycast" and torch.device(self.render_device).type != "cpu":
            raise ValueError("the raycast renderer (open3d) runs on the CPU only")
        if self.network_backend not in BACKENDS:
            raise ValueError(f"network_backend must be one of {BACKENDS}")
        on_cuda = torch.device(self.network_device).type == "cuda"
        if self.network_backend == "cuda_graph" and not on_cuda:
            raise ValueError("network_backend 'cuda_graph' needs network_device cuda")
        if self.network_backend == "onnxruntime" and on_cuda:
            raise ValueError("network_backend 'onnxruntime' runs on the CPU")

    @classmethod
    def gpu(
        cls,
        device: str = "cuda",
        network_backend: str = "cuda_graph",
        renderer: str = "torch",
        **kw,
    ) -> Placement:
        """Everything that can run on ``device`` does: the renderer (``torch`` by default: it
        needs nothing but torch; ``pytorch3d`` on CUDA with its binning unless ``bin_size`` says
        otherwise), the solve, the network."""
        if renderer == "pytorch3d":
            kw.setdefault("bin_size", None if torch.device(device).type == "cuda" else 0)
        return cls(renderer, device, device, device, network_backend, **kw)

    @classmethod
    def from_options(
        cls,
        device: str = "cpu",
        renderer: str = AUTO,
        network_backend: str = AUTO,
        check_device: bool = True,
    ) -> Placement:
        """The placement of the user-facing options (module docstring); ValueError in their terms
        for what cannot run.

        ``device`` ``cpu``: everything on the CPU, by default as before placements existed (open3d
        ray casting, the ``fused`` network): ``Placement()``. ``cuda`` / ``cuda:N``: the GPU path,
        :meth:`gpu` (by default the torch rasterizer, the solve and the CUDA-graph network on
        that device). ``renderer`` / ``network_backend``: ``auto`` (the device's default) or one
        of ``RENDERERS`` / ``BACKENDS``; ``raycast`` with a CUDA device renders and solves on the
        CPU (open3d has no GPU path) and runs only the network on the device. ``check_device``:
        also refuse a CUDA device that this machine lacks (False: the options alone, for a
        caller that falls back to the CPU itself, as the node does).
        """
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(f"device must be cpu, cuda or cuda:N (N = 0, 1, ...); got {device!r}")
        for name, value, options in (
            ("renderer", renderer, RENDERER_OPTIONS),
            ("network_backend", network_backend, BACKEND_OPTIONS),
        ):
            if value not in options:
                raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")
        if check_device:
            check_device_present(device)
        on_cuda = device != "cpu"
        backend = network_backend
        if backend == AUTO:
            backend = "cuda_graph" if on_cuda else DEFAULT_BACKEND
        if backend == "cuda_graph" and not on_cuda:
            raise ValueError("network_backend cuda_graph needs device cuda or cuda:N; got cpu")
        if backend == "onnxruntime" and on_cuda:
            raise ValueError(
                f"network_backend onnxruntime runs on the CPU only; got device {device}"
            )
        if not on_cuda:
            return cls("raycast" if renderer == AUTO else renderer, network_backend=backend)
        if renderer == "raycast":
            return cls("raycast", network_device=device, network_backend=backend)
        return cls.gpu(device, backend, "torch" if renderer == AUTO else renderer)

    @property
    def solve_on(self) -> torch.device:
        return torch.device(self.solve_device or self.render_device)

    def to_dict(self) -> dict:
        return {
            "renderer": self.renderer, "render_device": self.render_device,
            "solve_device": str(self.solve_on), "network_device": self.network_device,
            "network_backend": self.network_backend, "bin_size": self.bin_size,
        }  # fmt: skip


def check_device_present(device: str) -> None:
    """ValueError unless torch can use ``device`` (``cpu``, ``cuda`` or ``cuda:N``) here."""
    if device == "cpu":
        return
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested, but torch sees no CUDA device here "
            "(torch.cuda.is_available() is false)"
        )
    count, index = torch.cuda.device_count(), int(device.partition(":")[2] or 0)
    if index >= count:
        raise ValueError(f"device {device!r} requested, but torch sees {count} CUDA device(s) here")


def placement_renderer(placement: Placement) -> Renderer:
    """The renderer of ``placement``, its output on the solve device."""
    if placement.renderer == "raycast":
        from gcf_ros.core.render.raycast import RaycastRenderer

        renderer: Renderer = RaycastRenderer()
    elif placement.renderer == "torch":
        from gcf_ros.core.render.torch_raster import TorchRasterizer

        renderer = TorchRasterizer(device=placement.render_device)
    else:
        from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

        renderer = PyTorch3DRenderer(device=placement.render_device, bin_size=placement.bin_size)
    if torch.device(placement.render_device) == placement.solve_on:
        return renderer
    return DeviceRenderer(renderer, placement.solve_on)


def place_predictor(predictor: NetworkPredictor, placement: Placement) -> NetworkPredictor:
    """``predictor`` running its network with ``placement.network_backend`` (in place; its device
    must be ``placement.network_device``)."""
    if predictor.device != torch.device(placement.network_device):
        raise ValueError(f"predictor on {predictor.device}, placement wants "
                         f"{placement.network_device}")  # fmt: skip
    predictor.set_backend(placement.network_backend, placement.buckets)
    return predictor


def build_refiner(
    registry: ModelRegistry,
    placement: Placement | None = None,
    checkpoint: str | Path | None = None,
    overrides: Mapping | None = None,
    predictor: NetworkPredictor | None = None,
) -> Refiner:
    """A refiner with the network of ``checkpoint`` (or ``predictor``, used as given: a shared
    predictor already placed), the settings its weights file records plus ``overrides``, and the
    renderer, devices and network backend of ``placement`` (None: all on the CPU)."""
    placement = placement or Placement()
    if predictor is None:
        # "eager" builds nothing; place_predictor then builds the placement's backend once
        predictor = NetworkPredictor.from_weights(
            find_checkpoint(checkpoint), placement.network_device, "eager"
        )
        place_predictor(predictor, placement)
    config = RefinerConfig.resolve(predictor.weights, **(overrides or {}))
    return Refiner(registry, predictor, config, renderer=placement_renderer(placement))
