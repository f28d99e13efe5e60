"""The methods ``gcf-eval`` compares, behind one small interface.

A method refines all evaluated instances of one frame at once: ``refine(frame, T_init)`` gets the
frame (image, K, every ground-truth instance: the oracle mask baseline needs them; a depth image
with ``gcf-eval --depth``) and the initial poses of the instances to refine, and returns refined
poses with iteration counts and timings. ``uses_depth`` says whether a method reads the depth
image; the others ignore it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gcf_ros.core.models import ModelRegistry, ObjectModel
from gcf_ros.gcf.placement import Placement, place_predictor, placement_renderer
from gcf_ros.gcf.predictor import NetworkPredictor


@dataclass(frozen=True)
class EvalFrame:
    """One frame to refine.

    Attributes:
        image_rgb: (H, W, 3) uint8.
        K: (3, 3) float64 intrinsics.
        models: the B models of the instances to refine.
        T_gt_all: (M, 4, 4) ground-truth poses of *all* M annotated instances of the frame (only
            oracle baselines may look at them).
        models_all: the M models of those instances.
        refine_idx: (B,) indices into the M instances of the ones to refine.
        depth_m: (H, W) float32 depth registered to the image (same size and K), metres, 0 =
            missing; None without ``gcf-eval --depth``.
    """

    image_rgb: np.ndarray
    K: np.ndarray
    models: Sequence[ObjectModel]
    T_gt_all: np.ndarray
    models_all: Sequence[ObjectModel]
    refine_idx: np.ndarray
    depth_m: np.ndarray | None = None


@dataclass(frozen=True)
class MethodOutput:
    """T_cam_obj (B, 4, 4) refined poses, iterations (B,), wall time of the whole frame (s), and
    optionally per-instance read-outs (B dicts of numbers: confidence, status, ...)."""

    T_cam_obj: np.ndarray
    iterations: np.ndarray
    time_s: float
    scores: list[dict] | None = None


class Method(Protocol):
    label: str
    uses_depth: bool

    def refine(self, frame: EvalFrame, T_init: np.ndarray) -> MethodOutput: ...


class NoRefinement:
    """The floor: reports the initial poses as refined ones."""

    label = "none"
    uses_depth = False

    def refine(self, frame: EvalFrame, T_init: np.ndarray) -> MethodOutput:
        return MethodOutput(np.array(T_init, copy=True), np.zeros(len(T_init), int), 0.0)


class SoftRenderMethod:
    """The PyTorch3D soft-rasterizer baselines (``mask`` with oracle masks, or ``rgb``)."""

    uses_depth = False

    def __init__(self, config, registry: ModelRegistry, device: str = "cpu") -> None:
        from gcf_ros.baselines.soft_render import SoftRenderRefiner
        from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer
        from gcf_ros.core.render.raycast import RaycastRenderer

        self.config = config
        self.label = "mask (oracle mask)" if config.space == "mask" else "rgb"
        self._refiner = SoftRenderRefiner(config, PyTorch3DRenderer(device=device))
        self._raycast = RaycastRenderer()
        self._decimated: dict[int, ObjectModel] = {}

    def _render_model(self, model: ObjectModel) -> ObjectModel:
        key = id(model)
        if key not in self._decimated:
            self._decimated[key] = model.simplified(self.config.face_budget)
        return self._decimated[key]

    def refine(self, frame: EvalFrame, T_init: np.ndarray) -> MethodOutput:
        from gcf_ros.core.camera import crop_window_for_box

        cfg = self.config
        t0 = time.perf_counter()
        windows = [
            crop_window_for_box(frame.K, T, m.bbox_corners_obj, cfg.window_size, cfg.padding)
            for m, T in zip(frame.models, T_init, strict=True)
        ]
        targets = self._targets(frame, windows)
        K_window = np.stack([w.K_window(frame.K) for w in windows])
        models = [self._render_model(m) for m in frame.models]
        result = self._refiner.refine(models, T_init, K_window, targets)
        iterations = np.full(len(T_init), result.iterations)
        return MethodOutput(result.T_cam_obj, iterations, time.perf_counter() - t0)

    def _targets(self, frame: EvalFrame, windows) -> np.ndarray:
        if self.config.space == "rgb":
            return np.stack([w.resample(frame.image_rgb) for w in windows]).astype(np.float32) / 255
        visible = oracle_visible_masks(frame, self._raycast)
        return np.stack([win.resample(v) for win, v in zip(windows, visible, strict=True)])


class GcfMethod:
    """The refiner (``gcf_ros.gcf.refiner``) with its terms: the learned field and its trained
    weights, the training-free region term, and the contour term, which here gets the *oracle*
    visible masks (the ground truth, as the ``mask`` baseline does: a check of the machinery);
    so does the region term with ``region.statistics`` "mask" (oracle colour statistics).

    ``placement``: the renderer, solve and network devices and the network backend
    (:mod:`gcf_ros.gcf.placement`; None: all on the CPU, ray casting); ``overrides``: further
    ``RefinerConfig`` fields (e.g. ``{"silhouette_scale": 2.0}``); ``coarse_checkpoint``: a second
    network for the coarse-window iterations (None: the main one).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        checkpoint,
        iterations,
        solver,
        placement: Placement | None = None,
        terms: Sequence[str] | None = None,
        overrides: dict | None = None,
        coarse_checkpoint=None,
    ) -> None:
        from gcf_ros.gcf.checkpoints import find_checkpoint
        from gcf_ros.gcf.refiner import Refiner, RefinerConfig

        self.placement = placement or Placement()

        settings = {"solver": solver, **(overrides or {})}
        if iterations:
            settings["iterations"] = iterations
        if terms:
            settings["terms"] = tuple(terms)
        predictor = None
        if "field" in settings.get("terms", RefinerConfig.terms):
            path = find_checkpoint(checkpoint)  # a path or a shipped name, from any folder
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint {path}: not a file")
            predictor = self._network(path)
        weights = None if predictor is None else predictor.weights
        self.config = RefinerConfig.resolve(weights, **settings)
        self.label = f"gcf ({self.config.solver})"
        if self.config.terms != ("field",):
            self.label = f"gcf ({self.config.solver}; {'+'.join(self.config.terms)})"
        if self.config.coarse_stop:
            coarse = f"; {self.config.coarse_window_size} px x {self.config.coarse_iterations}"
            self.label = self.label[:-1] + coarse + ")"
        coarse = None
        if coarse_checkpoint is not None:  # a second network for the coarse-window iterations
            if predictor is None or not self.config.coarse_stop:
                raise ValueError("a coarse checkpoint needs the field term and coarse_iterations")
            coarse = self._network(find_checkpoint(coarse_checkpoint))
            self.label = self.label[:-1] + f", {Path(str(coarse_checkpoint)).name})"
        renderer = placement_renderer(self.placement)
        self._refiner = Refiner(registry, predictor, self.config, renderer, coarse_predictor=coarse)
        self._raycast = None
        self.uses_depth = self.config.depth_scale > 0  # the depth term joins when given depth

    def _network(self, path: Path) -> NetworkPredictor:
        """The network of the weights file ``path``, on the placement's device and backend."""
        predictor = NetworkPredictor.from_weights(path, self.placement.network_device, "eager")
        return place_predictor(predictor, self.placement)

    def max_iterations(self, with_depth: bool) -> int:
        """The refiner's iteration limit, for frames with (``with_depth``) or without depth."""
        return self.config.depth_iterations if with_depth else self.config.iterations

    def refine(self, frame: EvalFrame, T_init: np.ndarray) -> MethodOutput:
        from gcf_ros.gcf.refiner import Detection

        t0 = time.perf_counter()
        masks = self._oracle_masks(frame)
        detections = [
            Detection(m.model_id, T, mask=None if masks is None else masks[b])
            for b, (m, T) in enumerate(zip(frame.models, T_init, strict=True))
        ]
        results = self._refiner.refine(frame.image_rgb, frame.K, detections, depth_m=frame.depth_m)
        T = np.stack([r.T_cam_obj for r in results])
        its = np.array([max(r.iterations, 1) for r in results])
        scores = [
            {"confidence": r.confidence, "status": r.status, **r.scores} for r in results
        ]  # fmt: skip
        return MethodOutput(T, its, time.perf_counter() - t0, scores)

    def _oracle_masks(self, frame: EvalFrame) -> np.ndarray | None:
        wanted = "contour" in self.config.terms or self.config.region.statistics == "mask"
        if not wanted:
            return None
        from gcf_ros.core.render.raycast import RaycastRenderer

        self._raycast = self._raycast or RaycastRenderer()
        return oracle_visible_masks(frame, self._raycast)


def oracle_visible_masks(frame: EvalFrame, renderer) -> np.ndarray:
    """(B, H, W) float32 ground-truth visible masks of the instances to refine (every annotated
    instance rendered at its true pose, so occluders among them cut the masks): the oracle input
    of the ``mask`` baseline and of the ``contour`` term."""
    from gcf_ros.core.visibility import render_scene_masks

    h, w = frame.image_rgb.shape[:2]
    masks = render_scene_masks(frame.models_all, frame.T_gt_all, frame.K, w, h, renderer)
    return masks.visible[frame.refine_idx].astype(np.float32)
