"""Correspondence-field predictors: the trained network, and the exact field (tests, oracles)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from gcf_ros.core.render.types import RenderOutput
from gcf_ros.gcf.field import true_field
from gcf_ros.gcf.inference import DEFAULT_BACKEND, make_backend
from gcf_ros.gcf.inputs import image_input, render_input
from gcf_ros.gcf.weights_meta import WeightsMeta


class FieldPredictor(Protocol):
    """Predicts the field (B, S, S, 2) in window pixels and weights (B, S, S) in [0, 1];
    ``weights``: what its weights file records (the refiner's settings for it)."""

    weights: WeightsMeta

    def predict(
        self,
        image_windows: torch.Tensor,
        render: RenderOutput,
        diameters: torch.Tensor,
        K_window: torch.Tensor,
        instance_idx: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``instance_idx`` (B,): which of the frame's detections the rows are (oracles use it)."""
        ...


class NetworkPredictor:
    """The trained two-branch network (``gcf_ros.gcf.network.GcfNet``) and what its weights file
    records (``weights``: the window size it was trained at, the refiner settings chosen for it).

    ``net`` stays the network as trained; ``backend`` (``gcf_ros.gcf.inference.BACKENDS``) is how
    it runs: "fused" (default: the same function, ~1.5x faster on one CPU thread), "eager" (the
    module itself), "onnxruntime" (optional package; CPU), "cuda_graph" / "compile" (GPU)."""

    def __init__(
        self,
        net: torch.nn.Module,
        device: str | torch.device = "cpu",
        weights: WeightsMeta | None = None,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.weights = weights or WeightsMeta()
        self.backend = ""
        self.set_backend(backend)

    def set_backend(self, backend: str, buckets: tuple[int, ...] | None = None) -> None:
        """Run the network with ``backend`` from now on (``buckets``: the batch sizes of
        "cuda_graph" / "compile")."""
        self.run = make_backend(
            self.net, backend, max(1, torch.get_num_threads()), self.window_size, buckets
        )
        self.backend = backend

    @property
    def window_size(self) -> int:
        """The window side S (px) the network was trained at."""
        return self.weights.window_size

    @classmethod
    def from_weights(
        cls, path: Path, device: str | torch.device = "cpu", backend: str = DEFAULT_BACKEND
    ) -> NetworkPredictor:
        from gcf_ros.gcf.network import load_gcf_weights

        net, meta = load_gcf_weights(path, device)
        return cls(net, device, WeightsMeta.from_dict(meta), backend)

    def predict(self, image_windows, render, diameters, K_window, instance_idx):
        field, weight, _ = self.predict_with_mask(
            image_windows, render, diameters, K_window, instance_idx
        )
        return field, weight

    @torch.inference_mode()
    def predict_with_mask(self, image_windows, render, diameters, K_window, instance_idx):
        """``predict`` plus the visible-mask head's probabilities (B, S, S) (None without it)."""
        image = image_input(image_windows).to(self.device)
        rend = render_input(render, diameters).to(self.device)
        out = self.run(image, rend)
        field = out.field.permute(0, 2, 3, 1).float().cpu().contiguous()
        weight = out.weight[:, 0].float().cpu() if out.weight is not None else None
        if weight is None:
            weight = torch.ones(field.shape[:3])
        visible = None
        if out.visible_logits is not None:
            visible = torch.sigmoid(out.visible_logits[:, 0]).float().cpu()
        return field, weight * render.mask, visible


class TrueFieldPredictor:
    """The exact field towards known poses ``T_true`` (B, 4, 4): an oracle for tests (``weights``:
    it has no file, so the defaults)."""

    weights = WeightsMeta()

    def __init__(self, T_true: torch.Tensor) -> None:
        self.T_true = torch.as_tensor(T_true, dtype=torch.float64)

    def predict(self, image_windows, render, diameters, K_window, instance_idx):
        T_true = self.T_true[torch.as_tensor(instance_idx)]
        field = true_field(render, T_true, torch.as_tensor(K_window))
        return field, render.mask.float()
