"""The GCF refinement loop: crop, render, predict the field, solve for the pose, repeat.

    refiner = Refiner.from_checkpoint(registry)            # shipped weights, CPU
    results = refiner.refine(image_rgb, K, [Detection("obj_000005", T_cam_obj)])

Every detection of a frame is refined in one batch; an instance leaves the batch when its update
falls below the convergence thresholds. Each iteration asks the configured solver terms
(``RefinerConfig.terms``, :mod:`gcf_ros.gcf.terms`: the learned field, the region and contour
silhouettes) for residuals at the current poses and takes one damped step on all of them
(:func:`gcf_ros.gcf.solver.solve_terms`). After the last iteration each result gets a confidence
(with depth, the depth term's inlier fraction; else the mean predicted weight over the rendered
object; without the field, the silhouette terms' own) and is REJECTED, with a reason, when that is
too low or when the pose left the image or went behind the camera.

Settings come from ``RefinerConfig.resolve`` alone: the defaults, then what the network's weights
file records (:mod:`gcf_ros.gcf.weights_meta`), then the caller's overrides.

Benchmarks attach a :class:`~gcf_ros.core.phase_timer.PhaseTimer` as ``refiner.timer``: every
iteration then records ``iteration`` (the whole of it) and its phases ``crop``, ``render``,
``occluders`` (the call's other instances rendered into each window: ``mutual_occlusion``),
``network``, one per term (its name), ``solve`` (normal equations, solver, trust region) and
``update`` (step acceptance and bookkeeping). With no timer (the default) the hook does nothing.

Studies attach a callback as ``refiner.on_iteration``: it is given an :class:`IterationRecord` (the
poses, windows, rendering, network output, read-outs and step) at the end of every iteration.

A caller that must be able to stop a long refinement (the node, on shutdown) sets
``refiner.cancel`` to a ``threading.Event``: once it is set, ``refine`` raises
:class:`RefinementCancelledError` before the next iteration. Unset (None, the default), nothing is
checked.

Devices (docs/performance.md, "GPU path (issue 21)"): the renderer decides where the rendering
lives (the default open3d ray caster: the CPU; ``PyTorch3DRenderer(device="cuda")``: the GPU, all
windows of the frame in one batch; :func:`gcf_ros.gcf.placement.build_refiner` builds the
combinations). The field term and the solve run on the rendering's device; the NumPy-based terms
(silhouette lines, depth) and the per-instance bookkeeping on the CPU. A predictor gets the
rendering on the CPU unless it sets ``accepts_device_render = True``. The default ray caster (and
open3d) is imported only when no renderer is given: with one, this module runs without open3d.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.phase_timer import PhaseTimer, timed
from gcf_ros.core.pose_update import apply_update
from gcf_ros.core.render.types import Renderer, RenderOutput
from gcf_ros.gcf.checkpoints import default_checkpoint, find_checkpoint, resolve_checkpoint  # noqa: F401
from gcf_ros.gcf.inference import DEFAULT_BACKEND
from gcf_ros.gcf.occluders import occluder_depth
from gcf_ros.gcf.predictor import FieldPredictor, NetworkPredictor
from gcf_ros.gcf.solver import SolverConfig, TermWeight, solve_terms
from gcf_ros.gcf.terms import (
    TERMS,
    DepthConfig,
    DepthTerm,
    LineConfig,
    NetworkEvidence,
    RegionConfig,
    TermInputs,
)  # fmt: skip
from gcf_ros.gcf.weights_meta import WeightsMeta

CONVERGED, MAX_ITERATIONS, REJECTED = 0, 1, 2  # = gcf_ros_msgs/RefinedPose constants
STATUS_NAMES = {CONVERGED: "CONVERGED", MAX_ITERATIONS: "MAX_ITERATIONS", REJECTED: "REJECTED"}
NO_NETWORK_WINDOW_SIZE = 128  # S when no network sets it (silhouette terms only)
# The default coarse-to-fine schedule per window size S: (coarse window px, coarse iterations).
# S = 128 (gcf_lmo.pt), chosen on LM-O frames 1-50 (356 instances, medium noise;
# docs/performance.md "Coarse-to-fine windows (issue 21)") as the fastest schedule within a point
# of the full size on ADD(-S) < 0.1 d and 5 deg 5 cm: 64 px for the first 2 of 8 iterations
# (23.3 / 19.7 % vs 22.8 / 19.9 %) at 0.83 x the CPU time (experiments/coarse_to_fine.py; 96 px x 2:
# 23.6 / 19.9 % at 0.89 x, the default until the silhouette lengths scaled with the window in
# session 13; 64 px x 4 with the S = 64 network: 20.2 / 17.7 % at 0.69 x). Other S (the S = 64
# network) and other terms: off (the field alone lost 1.7 points of ADD(-S) with 96 px x 2).
COARSE_SCHEDULES: dict[int, tuple[int, int]] = {128: (64, 2)}
# ... measured with 8 iterations (10 with depth): a call configured for fewer keeps every
# iteration at the full size (2 of 3 iterations coarse is another trade-off, not measured).
COARSE_MIN_ITERATIONS = 8


_LOG = logging.getLogger(__name__)


class RefinementCancelledError(Exception):
    """``Refiner.cancel`` was set: ``refine`` stopped between iterations, with no result."""


@dataclass(frozen=True, kw_only=True)
class RefinerConfig:
    """Settings of the refinement loop, made by :meth:`resolve`: those a weights file records
    (window size, damping, rotation damping, confidence threshold) have no default here."""

    # Window side S, px. A network run at another size than its training size is worse.
    window_size: int
    padding: float = 1.3
    iterations: int = 8
    # Coarse-to-fine windows (issue 21): the first coarse_iterations iterations crop, render and
    # run the network at coarse_window_size (a multiple of 8, < window_size; None or 0: off), the
    # rest at window_size. Lengths in window px (the silhouette lines' steps, min_pixels) scale
    # with the window. An instance that converges while coarse waits for the first full-size
    # iteration. Off here; ``resolve`` makes COARSE_SCHEDULES the default for a network (64 px x 2
    # for S = 128: docs/performance.md "Coarse-to-fine windows (issue 21)").
    coarse_window_size: int | None = None
    coarse_iterations: int = 0
    solver: str = "gauss_newton"
    # The field term's LM lambda, relative to diag(H), and the extra damping of the rotation
    # block (solver.py).
    damping: float
    rotation_damping: float
    gradient_step: float = 0.3
    converge_rot_deg: float = 0.05
    converge_trans_m: float = 2e-4
    # Results with a lower confidence (mean predicted weight; without the field, the silhouette
    # terms' own) are REJECTED.
    min_confidence: float
    min_pixels: int = 25
    min_depth_m: float = 0.05  # closer to the camera plane: "behind the camera"
    max_step_rot_deg: float = 10.0  # trust region: largest rotation of one update
    max_step_trans_rel: float = 0.1  # trust region: largest translation, fraction of the depth
    # Trust region of the whole refinement (None: off): the camera-to-object distance stays within
    # [d0 / (1 + r), d0 * (1 + r)] of the initial pose's d0, the translation scaled along its ray
    # (the object's centre keeps its pixel). Against a weak field whose silhouette terms drift
    # the object away from the camera (docs/results.md, "Session 11: leave-one-object-out").
    max_distance_change: float | None = None
    # The same for instances the field term does not refine (an untrained model, see
    # untrained_field; terms without "field") in a call without depth: the silhouette terms
    # observe the distance least reliably of all six degrees of freedom (an occluded or
    # low-contrast contour reads as a smaller object). Chosen on LM-O frames 1-50
    # (docs/results.md "Session 12").
    max_distance_change_without_field: float | None = 0.1
    # The solver's terms (gcf_ros.gcf.terms.TERMS): "field" (the network), "region" (colour
    # statistics along the rendered contour, no training), "contour" (a given mask per detection).
    terms: tuple[str, ...] = ("field", "region")
    # The silhouette terms' (region, contour, mask) weighting against the field (whose damping is
    # the two settings above), and the iterations they run in: [silhouette_start, iterations);
    # the field runs in [0, field_stop) (None: all). Defaults chosen on LM-O frames 1-50 (356
    # instances, medium noise; docs/results.md "Session 7"): field + region at scale 2 with the
    # region's rotation damped by 5 beat the field alone on every metric there.
    silhouette_scale: float = 2.0
    silhouette_damping: float = 0.1
    silhouette_rotation_damping: float = 5.0
    silhouette_start: int = 0
    field_stop: int | None = None
    lines: LineConfig = field(default_factory=LineConfig)
    region: RegionConfig = field(default_factory=RegionConfig)
    # The silhouette lines of an instance treat the samples that another instance of the same call
    # covers in front of them as unobserved, and the field term drops the rendered pixels such an
    # instance hides (gcf_ros.gcf.occluders): each window gets the other instances rendered into
    # it (at half resolution, for the pairs that can overlap, every iteration). Chosen on LM-O
    # frames 1-50 (docs/results.md "Session 12").
    mutual_occlusion: bool = True
    # Whether instances of a model the network was not trained on (not among its weights file's
    # trained_models; a file that records none counts every model as trained) get the field term.
    # Off: the other terms (region, contour, depth) alone refine them, and their confidence is the
    # silhouette terms'. Leave-one-object-out on LM-O frames 1-50 (docs/results.md "Session 12"):
    # the field of a network that never saw the object takes it further off than no refinement.
    untrained_field: bool = False
    # The depth term (gcf_ros.gcf.terms.depth) runs in every iteration of a ``refine`` call given a
    # depth image, weighted by depth_scale against the field (0: depth is ignored); such a call
    # runs depth_iterations instead of ``iterations``. With depth, the field's and the silhouette
    # terms' rotation damping are multiplied by rotation_damping_with_depth. Chosen on LM-O frames
    # 1-50 with simulated depth at medium noise (docs/results.md "Session 9"): scale 100 (1 to 300
    # tried), 10 iterations (8: 79 % ADD(-S), 10: 82 %), the colour terms' damping kept (x 1;
    # x 0.1 to 0.3 no better, more gross failures).
    depth_scale: float = 100.0
    depth_damping: float = 0.0
    depth_iterations: int = 10
    rotation_damping_with_depth: float = 1.0
    # With depth, the field runs in [0, depth_field_stop) (None: as without depth, ``field_stop``):
    # 6 chosen on LM-O frames 1-50 (None: 81.5 % ADD(-S), 71.1 % 5 deg 5 cm, median 1.29 deg;
    # 6: 80.3 %, 73.9 %, 0.51 deg; 4: 79.2 %, 72.8 %, 0.57 deg); the network then runs 6 times.
    depth_field_stop: int | None = 6
    # Results the depth disagrees with (depth_inliers < min_depth_inliers) get the pose of an
    # RGB-only refinement (still REJECTED): a late or unregistered depth image drags poses away.
    # When at least depth_frame_fallback of a call's results disagree, the depth image itself is
    # suspect and every result of the call falls back (> 1: never). 0.5 chosen on LM-O frames
    # 1-50 with the depth one frame late: the only setting tried (0.34, 0.5, off) that was no
    # worse than RGB-only there on every number.
    depth_fallback: bool = True
    depth_frame_fallback: float = 0.5
    depth: DepthConfig = field(default_factory=DepthConfig)
    # With depth, results whose depth term agrees on less than this fraction of the rendered
    # pixels with depth (``scores["depth_inliers"]`` at the last iteration) are REJECTED. Chosen
    # on LM-O frames 1-50 with simulated depth (docs/results.md "Session 9"): 0.6 caught 64 of the
    # 65 results off by more than 0.1 d and rejected 22 of the 291 good ones.
    min_depth_inliers: float = 0.6

    def __post_init__(self) -> None:
        allowed = sorted(set(TERMS) - {DepthTerm.name})
        if not self.terms or any(t not in allowed for t in self.terms):
            raise ValueError(
                f"terms must be a non-empty subset of {allowed}, got {self.terms} (the depth term "
                "runs when refine() is given depth_m; depth_scale weighs it)"
            )
        TermWeight(self.silhouette_scale, self.silhouette_damping, self.silhouette_rotation_damping)
        TermWeight(self.depth_scale, self.depth_damping)
        if self.rotation_damping_with_depth < 0 or self.depth_iterations < 1:
            raise ValueError("rotation_damping_with_depth must be >= 0, depth_iterations >= 1")
        SolverConfig(self.solver, self.damping, self.gradient_step, self.rotation_damping)
        for name in ("max_distance_change", "max_distance_change_without_field"):
            r = getattr(self, name)
            if r is not None and not r > 0:
                raise ValueError(f"{name} must be > 0 or None, got {r}")
        self._check_coarse()

    def _check_coarse(self) -> None:
        S, s = self.window_size, self.coarse_window_size
        if self.coarse_iterations < 0:
            raise ValueError(f"coarse_iterations must be >= 0, got {self.coarse_iterations}")
        if s is None:  # off
            return
        if s < 16 or s % 8 or s >= S:
            raise ValueError(
                f"coarse_window_size must be a multiple of 8 in [16, window_size = {S}), got {s}"
            )
        if 0 < self.coarse_iterations >= min(self.iterations, self.depth_iterations):
            raise ValueError(
                f"coarse_iterations ({self.coarse_iterations}) must leave at least one full-size "
                f"iteration (iterations {self.iterations}, depth_iterations "
                f"{self.depth_iterations})"
            )

    @property
    def coarse_stop(self) -> int:
        """The first iteration at window_size (0: no coarse iterations)."""
        return self.coarse_iterations if self.coarse_window_size else 0

    def window_at(self, iteration: int) -> int:
        """The window side S (px) of ``iteration`` (0-based)."""
        if iteration < self.coarse_stop:
            return int(self.coarse_window_size)
        return self.window_size

    def min_pixels_at(self, iteration: int) -> int:
        """``min_pixels`` (counted in a window_size window) in the window of ``iteration``."""
        ratio = self.window_at(iteration) / self.window_size
        return int(np.ceil(self.min_pixels * ratio**2))

    @classmethod
    def resolve(cls, weights: WeightsMeta | None, **overrides) -> RefinerConfig:
        """The defaults, then what ``weights`` records for the chosen solver (None: no network,
        the silhouette terms alone), then ``overrides`` (RefinerConfig fields). With a network
        and the default terms, the coarse-to-fine schedule of ``COARSE_SCHEDULES`` for the final
        window size is a default too, for calls of at least ``COARSE_MIN_ITERATIONS``."""
        recorded, solver = weights or WeightsMeta(), overrides.get("solver", cls.solver)
        window = NO_NETWORK_WINDOW_SIZE if weights is None else weights.window_size
        resolved = {"window_size": window, "min_confidence": recorded.min_confidence,
                    "damping": recorded.damping.get(solver, 0.0),  # unknown: SolverConfig refuses
                    "rotation_damping": recorded.rotation_damping.get(solver, 0.0)}  # fmt: skip
        final = {**resolved, **overrides}
        coarse = COARSE_SCHEDULES.get(final["window_size"])
        if weights is None or tuple(final.get("terms", cls.terms)) != cls.terms:
            coarse = None  # chosen for the network with the default terms only
        limits = (final.get("iterations", cls.iterations),
                  final.get("depth_iterations", cls.depth_iterations))  # fmt: skip
        if coarse is not None and min(limits) >= COARSE_MIN_ITERATIONS:
            resolved["coarse_window_size"], resolved["coarse_iterations"] = coarse
        return cls(**{**resolved, **overrides})

    def term_active(self, name: str, iteration: int, with_depth: bool = False) -> bool:
        """Whether term ``name`` contributes at ``iteration`` (0-based) of a call that built it;
        ``with_depth``: the call has a depth image."""
        if name == DepthTerm.name:
            return self.depth_scale > 0
        if name not in self.terms:
            return False
        if name == "field":
            stop = self.field_stop
            if with_depth and self.depth_field_stop is not None:
                stop = self.depth_field_stop
            return stop is None or iteration < stop
        return iteration >= self.silhouette_start


@dataclass(frozen=True)
class Detection:
    """A coarse pose to refine: model id, T_cam_obj (4, 4) in the optical frame, metres."""

    model_id: str
    T_cam_obj: np.ndarray
    instance_id: str = ""
    # (H, W) visible-mask evidence of this instance in [0, 1] (a segmentation), used by the
    # "contour" term, and by the region term's colour statistics with region.statistics "mask";
    # None: no mask.
    mask: np.ndarray | None = None
    # This detection's iteration count, in place of the config's (``iterations``, or
    # ``depth_iterations`` with depth); e.g. fewer for a pose seeded from a track. In a batch, a
    # detection that reaches its count leaves it with status MAX_ITERATIONS. None: the config's.
    iterations: int | None = None

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"Detection.iterations must be >= 1 or None, got {self.iterations}")


@dataclass(frozen=True)
class RefineResult:
    """Outcome of one detection. ``status`` is CONVERGED, MAX_ITERATIONS or REJECTED."""

    model_id: str
    instance_id: str
    T_cam_obj: np.ndarray
    T_init: np.ndarray
    confidence: float
    iterations: int  # iterations run (fewer than configured: stopped early or rejected)
    status: int
    status_reason: str = ""
    residual_px: float = float("nan")  # mean |field| at the last iteration
    history: list = field(default_factory=list, repr=False)  # T_cam_obj after each iteration
    # Read-outs at the last iteration's pose (``field_weight``, ``mask_iou`` where the network has
    # a mask head): the evidence behind ``confidence``.
    scores: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IterationRecord:
    """What one iteration saw, for studies (``Refiner.on_iteration``), over the K instances it ran.

    Attributes:
        iteration: 0-based.
        index: (K,) their positions in the detections given to ``refine``.
        T_cam_obj: (K, 4, 4) float64 poses the iteration rendered at (before its step), metres.
        windows: the K crop windows (``CropWindow``); crops: (K, S, S, 3) uint8 image windows;
            K_window: (K, 3, 3) float64 their cameras.
        render: the rendering at ``T_cam_obj``.
        network: the predictor's field (K, S, S, 2) px and weight (K, S, S), None where it did
            not run.
        scores: per instance, the read-outs at ``T_cam_obj`` (as in ``RefineResult.scores``).
        step: (K, 6) the update (dt, omega) after the trust region, before step acceptance.
    """

    iteration: int
    index: np.ndarray
    T_cam_obj: np.ndarray
    windows: list
    crops: torch.Tensor
    K_window: torch.Tensor
    render: RenderOutput
    network: NetworkEvidence | None
    scores: list[dict]
    step: np.ndarray


def clamp_distance(t: np.ndarray, t0: np.ndarray, r: float) -> np.ndarray:
    """The translation ``t`` (3,) scaled along its ray so that its length lies within
    [|t0| / (1 + r), |t0| (1 + r)] (camera frame, metres); ``t`` itself when it does."""
    d, d0 = float(np.linalg.norm(t)), float(np.linalg.norm(t0))
    lo, hi = d0 / (1.0 + r), d0 * (1.0 + r)
    if d == 0.0 or lo <= d <= hi:
        return t
    return t * (min(max(d, lo), hi) / d)


def _default_renderer() -> Renderer:
    """The renderer of a Refiner given none: open3d ray casting on the CPU (ImportError naming
    open3d and the alternatives when it is missing)."""
    from gcf_ros.core.render.raycast import RaycastRenderer

    return RaycastRenderer()


class Refiner:
    """Batched GCF refinement of the detections of one image.

    Attributes:
        timer: when set, records the wall time of every iteration and of its phases (see the
            module docstring); None (the default) records nothing.
        on_iteration: when set, called with an ``IterationRecord`` after every iteration.
        coarse_predictor: the field predictor of the coarse-window iterations
            (``RefinerConfig.coarse_iterations``); None: ``predictor`` runs there too.
        cancel: when set, ``refine`` raises ``RefinementCancelledError`` at the start of the first
            iteration after the event is set.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        predictor: FieldPredictor | None,
        config: RefinerConfig | None = None,
        renderer: Renderer | None = None,
        coarse_predictor: FieldPredictor | None = None,
    ) -> None:
        self.registry = registry
        self.predictor = predictor
        self.coarse_predictor = coarse_predictor
        self.config = config or RefinerConfig.resolve(getattr(predictor, "weights", None))
        self.renderer = renderer or _default_renderer()
        self._check_terms(self.config)
        self.timer: PhaseTimer | None = None
        self.on_iteration: Callable[[IterationRecord], None] | None = None
        self.cancel: threading.Event | None = None
        self._warned_untrained: set[str] = set()

    def _check_terms(self, config: RefinerConfig) -> None:
        needy = [t for t in config.terms if TERMS[t].needs_network]
        if needy and self.predictor is None:
            raise ValueError(f"the terms {needy} need a field predictor (trained weights)")

    def _terms(self, with_depth: bool) -> dict:
        """The term objects for one ``refine`` call, built from the current config (the depth
        term when the call has a depth image and depth_scale > 0)."""
        self._check_terms(self.config)
        terms = {name: TERMS[name].from_config(self.config) for name in self.config.terms}
        if with_depth and self.config.depth_scale > 0:
            terms[DepthTerm.name] = DepthTerm.from_config(self.config)
        return terms

    def _network(self, crops, render, diameters, K_win, idx, coarse: bool) -> _NetworkRun | None:
        """The (lazy) network run of one iteration; ``coarse``: a coarse-window iteration."""
        predictor = self.predictor
        if coarse and self.coarse_predictor is not None:
            predictor = self.coarse_predictor
        if predictor is None:
            return None
        if not getattr(predictor, "accepts_device_render", False):
            render = render.to("cpu")  # a no-op for CPU renderings
        return _NetworkRun(predictor, self.timer, (crops, render, diameters, K_win, idx))

    def _term_weight(self, name: str, with_depth: bool) -> TermWeight:
        """How ``name`` weighs in the solve; ``with_depth``: the depth term runs too."""
        cfg = self.config
        if name == DepthTerm.name:
            return TermWeight(cfg.depth_scale, cfg.depth_damping)
        rot = cfg.rotation_damping_with_depth if with_depth else 1.0
        if name == "field":
            return TermWeight(1.0, cfg.damping, rot * cfg.rotation_damping)
        return TermWeight(
            cfg.silhouette_scale, cfg.silhouette_damping, rot * cfg.silhouette_rotation_damping
        )

    @classmethod
    def from_checkpoint(
        cls,
        registry: ModelRegistry,
        checkpoint: Path | None = None,
        device: str = "cpu",
        overrides: Mapping | None = None,
        coarse_checkpoint: Path | str | None = None,
        backend: str = DEFAULT_BACKEND,
    ) -> Refiner:
        """The network of ``checkpoint`` (a path or a shipped name: :mod:`gcf_ros.gcf.checkpoints`),
        with the settings its file records and ``overrides`` (RefinerConfig fields) on top, run by
        the network ``backend`` (:mod:`gcf_ros.gcf.inference`); ``coarse_checkpoint``: a second
        network for the coarse-window iterations (``RefinerConfig.coarse_iterations``; None: the
        main one runs there too)."""
        predictor = NetworkPredictor.from_weights(find_checkpoint(checkpoint), device, backend)
        config = RefinerConfig.resolve(predictor.weights, **(overrides or {}))
        coarse = None
        if coarse_checkpoint is not None:
            coarse = NetworkPredictor.from_weights(
                find_checkpoint(coarse_checkpoint), device, backend
            )
        return cls(registry, predictor, config, coarse_predictor=coarse)

    def refine(
        self,
        image_rgb: np.ndarray,
        K: np.ndarray,
        detections: Sequence[Detection],
        depth_m: np.ndarray | None = None,
    ) -> list[RefineResult]:
        """Refine every detection; image (H, W, 3) uint8 RGB, K (3, 3). ``depth_m``: an (H, W)
        depth image registered to ``image_rgb`` (same size and K), metres, 0 or NaN where missing;
        with it the depth term joins the solve (``RefinerConfig.depth_scale``). A detection
        with ``iterations`` set runs that many iterations at most, in place of the config's."""
        if not detections:
            return []
        depth_m = checked_depth(depth_m, image_rgb.shape[:2])
        T_init = np.stack([np.asarray(d.T_cam_obj, dtype=np.float64) for d in detections])
        state = _State.start(T_init, len(detections))
        state.field_trusted = np.array([self.field_trusted(d.model_id) for d in detections])
        models = [self.registry.render_model(d.model_id) for d in detections]
        masks = [d.mask for d in detections]
        terms = self._terms(with_depth=depth_m is not None)
        state.distance_limit = self._distance_limits(state.field_trusted, "depth" in terms)
        default = self.config.depth_iterations if "depth" in terms else self.config.iterations
        caps = np.array([default if d.iterations is None else d.iterations for d in detections])
        iterations = int(caps.max())
        cfg = self.config
        if cfg.coarse_stop and ((caps < default).any() or not state.field_trusted.all()):
            # The coarse schedule was chosen for full refinements with the field: a call with a
            # warm start of its own, smaller count (a tracked instance's one iteration), or with
            # an instance the field term does not refine (an untrained model: the silhouette
            # terms alone, which lose accuracy at 64 px; docs/results.md "Session 13"), runs at
            # full size.
            cfg = dataclasses.replace(cfg, coarse_iterations=0)
        for it in range(iterations):
            if it == cfg.coarse_stop:
                state.leave_coarse()
            active = np.flatnonzero(state.active & ~state.waiting & (caps > it))
            if active.size == 0:
                if state.waiting.any():  # all converged while coarse: on to the full size
                    continue
                break
            if self.cancel is not None and self.cancel.is_set():
                raise RefinementCancelledError(f"cancelled after {it} of {iterations}")
            with timed(self.timer, "iteration"):
                self._iterate(image_rgb, depth_m, K, models, masks, terms, state, active, it, cfg)
        results = [self._result(d, state, b, image_rgb.shape, K) for b, d in enumerate(detections)]
        if "depth" in terms and self.config.depth_fallback:
            self._fall_back_to_rgb(image_rgb, K, detections, results)
        return results

    def _fall_back_to_rgb(self, image_rgb, K, detections, results: list[RefineResult]) -> None:
        """Replace the pose of each result the depth disagrees with by the RGB-only refinement's
        (in place): a depth image out of step with the colour image (late, not registered) drags
        poses to where its surfaces are. Those results stay REJECTED and say so; when enough of
        the frame's results disagree (``depth_frame_fallback``), all of them fall back."""
        flagged = [
            b for b, r in enumerate(results)
            if r.scores.get("depth_inliers", 1.0) < self.config.min_depth_inliers
        ]  # fmt: skip
        if not flagged:
            return
        reasons = {b: results[b].status_reason for b in flagged}
        if len(flagged) >= self.config.depth_frame_fallback * len(results):
            why = (f"depth disagrees with {len(flagged)} of {len(results)} objects of the frame "
                   "(not registered, or not in step with the image?)")  # fmt: skip
            reasons = {b: reasons.get(b, why) for b in range(len(results))}
        rgb = self.refine(image_rgb, K, [detections[b] for b in reasons])
        for (b, reason), r in zip(reasons.items(), rgb, strict=True):
            depth_scores = {k: v for k, v in results[b].scores.items() if k.startswith("depth_")}
            results[b] = dataclasses.replace(
                r, status=REJECTED, scores={**r.scores, **depth_scores},
                status_reason=f"{reason}; pose: the RGB-only refinement",
            )  # fmt: skip

    def refine_poses(self, image_rgb, K, model_ids, T_init) -> list[RefineResult]:
        """Convenience form of ``refine`` with parallel lists of ids and (B, 4, 4) poses."""
        dets = [Detection(m, T) for m, T in zip(model_ids, np.asarray(T_init), strict=True)]
        return self.refine(image_rgb, K, dets)

    def _iterate(
        self, image_rgb, depth_m, K, models, masks, terms, state, active, it, cfg: RefinerConfig
    ) -> None:
        """One iteration of the ``active`` instances under ``cfg`` (the call's settings)."""
        S = cfg.window_at(it)
        with timed(self.timer, "crop"):
            cropped = _crop(image_rgb, K, models, state, active, S, cfg.padding)
        if cropped is None:
            return
        idx, windows, K_win, crops = cropped
        T = torch.from_numpy(state.T[idx])
        batch_models = [models[b] for b in idx]
        with timed(self.timer, "render"):
            render = self.renderer.render(batch_models, T, K_win, S)
        occluders = None
        wanted = any(t.uses_occluders and cfg.term_active(n, it) for n, t in terms.items())
        if cfg.mutual_occlusion and wanted and len(models) > 1:
            with timed(self.timer, "occluders"):
                present = state.status != REJECTED
                occluders = occluder_depth(
                    self.renderer, models, state.T, present, idx, windows, K, K_win, S
                )
        diameters = torch.tensor([m.diameter for m in batch_models])
        inputs = TermInputs(
            image_rgb, windows, crops, render, K_win, T,
            diameters, idx, [masks[b] for b in idx], it,
            self._network(crops, render, diameters, K_win, idx, it < cfg.coarse_stop), depth_m,
            occluders,
        )  # fmt: skip
        systems, field_ran, shared, depth = [], False, False, None
        with_depth = DepthTerm.name in terms
        for name, term in terms.items():
            if not cfg.term_active(name, it, with_depth):
                continue
            with timed(self.timer, term.phase):
                res = term.residuals(inputs)
                if name == "field" and not state.field_trusted[idx].all():
                    trusted = torch.from_numpy(state.field_trusted[idx]).to(res.confidence)
                    res = dataclasses.replace(res, confidence=res.confidence * trusted)
            systems.append((res, self._term_weight(name, with_depth)))
            field_ran = field_ran or name == "field"
            depth = res if name == DepthTerm.name else depth
            # Terms with no confidence anywhere in the batch (no colour contrast, no depth) do not
            # count as sharing the step.
            shared = shared or (name != "field" and bool(res.confidence.any()))
        with timed(self.timer, "solve"):
            if systems:
                xi = _clamp_step(solve_terms(systems, cfg.solver, cfg.gradient_step), T, cfg)
            else:  # no term runs in this iteration: the poses stay
                xi = torch.zeros(len(idx), 6, dtype=torch.float64)
        with timed(self.timer, "update"):
            field = _field_readout(render, inputs.network.result) if field_ran else None
            trusted = state.field_trusted[idx]
            conf = _confidence(field, systems, depth, trusted)
            # The field judges its own steps (LM-like acceptance); a step that other terms share
            # may rightly raise the field's residual (a biased field), so then none is undone.
            judge = field[1].numpy() if field is not None and not shared else None
            if judge is not None:
                judge = np.where(trusted, judge, np.nan)  # NaN: no judge, every step is taken
            pixels = render.mask.flatten(1).sum(1).cpu().numpy()
            scores = _scores(render, inputs.network, systems, field)
            state.record_scores(idx, scores)
            state.update(idx, xi.numpy(), pixels, conf, judge, it, cfg)
        if self.on_iteration is not None:
            network = inputs.network.result if inputs.network is not None else None
            self.on_iteration(IterationRecord(it, idx, T.numpy(), windows, crops, K_win, render,
                                              network, scores, xi.numpy()))  # fmt: skip

    def _distance_limits(self, field_trusted: np.ndarray, with_depth: bool) -> np.ndarray:
        """(B,) each instance's bound on its relative distance change (NaN: none):
        ``max_distance_change`` where the field refines it or a depth image measures the
        distance, else ``max_distance_change_without_field``."""
        cfg = self.config
        measured = (field_trusted & ("field" in cfg.terms)) | with_depth  # (B,) bool
        limits = np.where(measured, cfg.max_distance_change or np.nan,
                          cfg.max_distance_change_without_field or np.nan)  # fmt: skip
        return limits.astype(np.float64)

    def _trained_on(self, model_id: str) -> bool:
        """Whether the network was trained on ``model_id`` (its weights file lists it, or lists
        no models at all)."""
        trained = getattr(getattr(self.predictor, "weights", None), "trained_models", ())
        return not trained or model_id in trained

    def field_trusted(self, model_id: str) -> bool:
        """Whether ``model_id``'s instances get the field term: the network was trained on it,
        or ``untrained_field`` is on."""
        return self.config.untrained_field or self._trained_on(model_id)

    def untrained_note(self, model_id: str) -> str:
        """Why the field term is off or unreliable for ``model_id`` ("" when the network's weights
        file lists it among its training models, records none, or the field term is off)."""
        if "field" not in self.config.terms or self._trained_on(model_id):
            return ""
        trained = self.predictor.weights.trained_models
        used = self.config.untrained_field
        if model_id not in self._warned_untrained:
            self._warned_untrained.add(model_id)
            what = (
                "its field term is unreliable for it"
                if used
                else "it is refined without the field term (untrained_field: false)"
            )
            _LOG.warning("model %r is not among the models the network was trained on (%s): %s; "
                         "fine-tune for it (README: Adding your own object)", model_id,
                         ", ".join(trained), what)  # fmt: skip
        if used:
            return f"network not trained on {model_id}: field unreliable"
        return f"network not trained on {model_id}: field term off"

    def _result(self, det: Detection, state: _State, b: int, shape, K) -> RefineResult:
        status, reason = state.status[b], state.reason[b]
        if status != REJECTED:
            rejection = self._rejection(state, b, shape, K)
            status, reason = (REJECTED, rejection) if rejection else (status, reason)
        note = self.untrained_note(det.model_id)
        reason = f"{reason}; {note}" if reason and note else reason or note
        return RefineResult(
            det.model_id, det.instance_id, state.T[b].copy(), state.T0[b].copy(),
            float(state.confidence[b]), int(state.iterations[b]), int(status), reason,
            float(state.residual[b]), state.history[b], dict(state.scores[b]),
        )  # fmt: skip

    def _rejection(self, state: _State, b: int, shape, K) -> str:
        cfg = self.config
        t = state.T[b, :3, 3]
        if t[2] < cfg.min_depth_m:
            return f"object {t[2]:.3f} m from the camera plane"
        u, v = (K @ t)[:2] / t[2]
        h, w = shape[:2]
        if not (0 <= u < w and 0 <= v < h):
            return "object centre left the image"
        if state.pixels[b] < cfg.min_pixels:
            return f"only {state.pixels[b]} rendered pixels"
        if state.confidence[b] < cfg.min_confidence:
            return f"confidence {state.confidence[b]:.3f} < {cfg.min_confidence:.3f}"
        inliers = state.scores[b].get("depth_inliers")
        if inliers is not None and inliers < cfg.min_depth_inliers:
            return (
                f"depth agrees on {100 * inliers:.0f} % of the object "
                f"(< {100 * cfg.min_depth_inliers:.0f} %)"
            )
        return ""


def _crop(image_rgb, K, models, state: _State, active: np.ndarray, S: int, padding: float):
    """The S x S windows of the ``active`` instances: (index (K,), windows, K_window (K, 3, 3),
    crops (K, S, S, 3) uint8), or None when none is left; an instance behind the camera is
    rejected."""
    windows, ok = [], []
    for b in active:
        try:
            corners = models[b].bbox_corners_obj
            windows.append(crop_window_for_box(K, state.T[b], corners, S, padding))
            ok.append(b)
        except ValueError:
            state.reject(b, "pose went behind the camera")
    if not ok:
        return None
    K_win = torch.from_numpy(np.stack([w.K_window(K) for w in windows]))
    crops = torch.from_numpy(np.stack([w.resample(image_rgb) for w in windows]))
    return np.array(ok), windows, K_win, crops


class _NetworkRun:
    """Runs the predictor on one iteration's windows once, when a term first asks
    (``TermInputs.network``); ``result`` is None until then."""

    def __init__(self, predictor, timer, args) -> None:
        self.predictor, self.timer, self.args = predictor, timer, args
        self.result: NetworkEvidence | None = None

    def __call__(self) -> NetworkEvidence:
        if self.result is None:
            with timed(self.timer, "network"):
                predict = getattr(self.predictor, "predict_with_mask", None)
                if predict is not None:
                    out = predict(*self.args)
                else:
                    out = (*self.predictor.predict(*self.args), None)
                self.result = NetworkEvidence(*out)
        return self.result


def _confidence(field, systems, depth, trusted: np.ndarray) -> np.ndarray | None:
    """(K,) the confidence read-out of one iteration, or None: with depth, its inlier fraction
    (where it did not abstain); else the field's mean weight (``field``: ``_field_readout``) for
    the instances it runs for (``trusted``); else the silhouette terms' mean confidence."""
    silhouette = [r.confidence for r, _ in systems if r.directions is not None]
    silhouette = torch.stack(silhouette).mean(0).numpy() if silhouette else None
    conf = field[0].numpy() if field is not None else silhouette
    if field is not None and not trusted.all():  # the rest: as without the field
        other = np.full(len(trusted), np.nan) if silhouette is None else silhouette
        conf = np.where(trusted, conf, other)
    if depth is not None:
        inliers = depth.readouts["depth_inliers"].numpy()
        fallback = np.full_like(inliers, np.nan) if conf is None else conf
        conf = np.where(np.isfinite(inliers), inliers, fallback)
    return conf


def _field_readout(render, evidence: NetworkEvidence) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) mean predicted weight and mean |field| (px) over each rendering: the field's
    confidence and its step-acceptance judge; CPU tensors, whatever the rendering's device."""
    mask = render.mask
    field, weight = evidence.field.to(mask.device), evidence.weight.to(mask.device)
    count = mask.flatten(1).sum(1).clamp_min(1)
    mean_weight = (weight * mask).flatten(1).sum(1) / count
    residual = (field.norm(dim=-1) * mask).flatten(1).sum(1) / count
    return mean_weight.cpu(), residual.cpu()


def _scores(render, network: _NetworkRun | None, systems, readout=None) -> list[dict]:
    """Per-window read-outs at the current poses: from the network, when it ran,
    ``field_weight`` (mean predicted weight over the rendering), ``field_residual_px`` (mean
    |field| there) and ``mask_iou`` (IoU of the visible-mask head's mask, > 0.5, with the rendered
    silhouette); from the silhouette terms, ``silhouette_residual_px`` (weighted mean |residual| of
    the lines: how far the image's contour is from the rendered one) and
    ``silhouette_confidence`` (the term's own, e.g. colour separation); and the terms' own
    ``Residuals.readouts`` (the depth term's ``depth_inliers``, ``depth_offset_mm``,
    ``depth_coverage``). ``readout``: ``_field_readout`` of this iteration when the caller has it
    (None: computed here)."""
    B = render.batch_size
    out: list[dict] = [{} for _ in range(B)]
    for res, _ in systems:
        for key, values in res.readouts.items():
            for d, v in zip(out, values.tolist(), strict=True):
                if np.isfinite(v):  # NaN: the term had nothing to say about this instance
                    d[key] = float(v)
        if res.directions is None:
            continue
        resid = (res.w * res.r[..., 0].abs()).sum(1) / res.w.sum(1).clamp_min(1e-12)
        for d, r, c in zip(out, resid.tolist(), res.confidence.tolist(), strict=True):
            d["silhouette_residual_px"], d["silhouette_confidence"] = float(r), float(c)
    if network is None or network.result is None:
        return out
    ev, mask = network.result, render.mask
    weights, resid = readout if readout is not None else _field_readout(render, ev)
    for d, w, r in zip(out, weights.tolist(), resid.tolist(), strict=True):
        d["field_weight"], d["field_residual_px"] = float(w), float(r)
    if ev.visible is not None:
        seen = (ev.visible > 0.5).to(mask.device)
        inter = (seen & mask).flatten(1).sum(1)
        union = (seen | mask).flatten(1).sum(1).clamp_min(1)
        for d, iou in zip(out, (inter / union).tolist(), strict=True):
            d["mask_iou"] = float(iou)
    return out


def checked_depth(depth_m: np.ndarray | None, image_hw: tuple[int, int]) -> np.ndarray | None:
    """A depth image (H, W) in metres as float32 with NaN, inf and negative values set to 0
    (missing); ValueError when its size is not the colour image's."""
    if depth_m is None:
        return None
    depth = np.asarray(depth_m)
    if depth.shape != tuple(image_hw):
        raise ValueError(f"depth_m must be registered to the image: {depth.shape} vs {image_hw}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"depth_m must be float metres, got {depth.dtype} (scale integer depth)")
    depth = depth.astype(np.float32, copy=True)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def _clamp_step(xi: torch.Tensor, T: torch.Tensor, cfg: RefinerConfig) -> torch.Tensor:
    """Scale each update (B, 6) into the trust region: |omega| and |dt| / z bounded; on the
    device of the poses T (B, 4, 4) (the CPU: the bookkeeping's)."""
    xi = xi.to(T.device)
    rot = xi[:, 3:].norm(dim=-1) / np.radians(cfg.max_step_rot_deg)
    trans = xi[:, :3].norm(dim=-1) / (cfg.max_step_trans_rel * T[:, 2, 3].abs().clamp_min(0.05))
    return xi / torch.maximum(torch.maximum(rot, trans), torch.ones_like(rot))[:, None]


@dataclass
class _State:
    """Mutable per-instance state of one ``refine`` call (arrays over the B detections)."""

    T: np.ndarray
    T0: np.ndarray
    active: np.ndarray
    status: np.ndarray
    reason: list
    iterations: np.ndarray
    confidence: np.ndarray
    residual: np.ndarray
    pixels: np.ndarray
    history: list
    best_T: np.ndarray  # the pose with the lowest predicted residual so far
    best_residual: np.ndarray
    step_scale: np.ndarray  # halved after each step the network judges worse
    scores: list  # per instance, the last read-outs (``_scores``)
    waiting: np.ndarray  # converged at the coarse window: skipped until the full-size iterations
    field_trusted: np.ndarray  # the field term runs for it (Refiner.field_trusted)
    distance_limit: np.ndarray  # bound on the relative distance change, NaN: none (refine sets)

    @classmethod
    def start(cls, T_init: np.ndarray, n: int) -> _State:
        return cls(
            T_init.copy(), T_init.copy(), np.ones(n, bool), np.full(n, MAX_ITERATIONS),
            ["iteration limit"] * n, np.zeros(n, int), np.zeros(n), np.full(n, np.nan),
            np.zeros(n, int), [[] for _ in range(n)], T_init.copy(), np.full(n, np.inf),
            np.ones(n), [{} for _ in range(n)], np.zeros(n, bool), np.ones(n, bool),
            np.full(n, np.nan),
        )  # fmt: skip

    def leave_coarse(self) -> None:
        """The first full-size iteration: the waiting instances run again, and the step judge
        starts afresh (the field's residual is in window px, and the network sees a new size)."""
        self.waiting[:] = False
        self.best_residual[:] = np.inf
        self.step_scale[:] = 1.0

    def record_scores(self, idx, scores: list[dict]) -> None:
        for b, s in zip(idx, scores, strict=True):
            if s:
                self.scores[b] = s

    def reject(self, b: int, reason: str) -> None:
        self.active[b] = False
        self.status[b] = REJECTED
        self.reason[b] = reason

    def update(self, idx, xi, pixels, conf, judge, it, cfg: RefinerConfig) -> None:
        """Record the read-outs at the current poses and take the steps ``xi`` (K, 6).

        pixels (K,): rendered pixel counts; conf (K,) or None: the confidence read-out; judge (K,)
        or None: the field's residual (mean |field|). With a judge, a step after which it is
        larger than at the best pose so far is undone and the step scale halved
        (Levenberg-Marquardt-like acceptance, with the network as the judge); the scale is never
        raised again, so after three rejections in all the instance stops (CONVERGED). Without a
        judge (the field is off) every step is taken. At a coarse window (``it`` <
        ``cfg.coarse_stop``) an instance that would stop waits for the full-size iterations instead.
        """
        min_pixels, coarse = cfg.min_pixels_at(it), it < cfg.coarse_stop
        for k, b in enumerate(idx):
            self.pixels[b] = pixels[k]
            if conf is not None and np.isfinite(conf[k]):
                self.confidence[b] = conf[k]
            resid = np.nan if judge is None else judge[k]
            self.residual[b] = resid
            self.iterations[b] += 1
            if pixels[k] < min_pixels:
                self.reject(b, f"only {pixels[k]} rendered pixels")
            elif judge is not None and resid > 1.05 * self.best_residual[b]:
                self._undo(b, coarse)
            else:
                self._step(b, xi[k], resid, cfg, coarse)

    def _converged(self, b: int, coarse: bool) -> None:
        if coarse:
            self.waiting[b] = True
        else:
            self.active[b] = False
            self.status[b], self.reason[b] = CONVERGED, ""

    def _undo(self, b: int, coarse: bool) -> None:
        self.T[b] = self.best_T[b]
        self.step_scale[b] *= 0.5
        self.history[b].append(self.T[b].copy())
        if self.step_scale[b] < 0.2:
            self._converged(b, coarse)  # a stationary point as far as the network can tell

    def _step(self, b: int, xi: np.ndarray, resid: float, cfg: RefinerConfig, coarse: bool) -> None:
        self.best_T[b], self.best_residual[b] = self.T[b].copy(), resid
        xi = xi * self.step_scale[b]
        T = torch.from_numpy(self.T[b])
        self.T[b] = apply_update(T, torch.from_numpy(xi)).numpy()
        if np.isfinite(self.distance_limit[b]):
            limit = self.distance_limit[b]
            self.T[b, :3, 3] = clamp_distance(self.T[b, :3, 3], self.T0[b, :3, 3], limit)
        self.history[b].append(self.T[b].copy())
        if np.degrees(np.linalg.norm(xi[3:])) < cfg.converge_rot_deg and (
            np.linalg.norm(xi[:3]) < cfg.converge_trans_m
        ):
            self._converged(b, coarse)
