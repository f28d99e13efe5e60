"""The evaluation loop of ``gcf-eval``: docs/design.md §4's protocol on a BOP-layout dataset.

Instances with visible fraction >= ``min_visib`` are taken in dataset order (scene, image,
annotation index); their initial poses are the ground truth perturbed by
:func:`gcf_ros.eval.perturb.perturb_instances` with the seed, over that whole ordered list, *before*
``max_instances`` truncates it, so the first N instances start from the same poses whatever N is.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcf_ros.core.bop import BopDataset, BopFrame, BopInstance
from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.depth_input import DepthInput
from gcf_ros.eval.methods import EvalFrame, Method
from gcf_ros.eval.metrics import PoseErrors, pose_errors, summarize
from gcf_ros.eval.perturb import perturb_instances

VISIBILITY_BINS = ((0.3, 0.6), (0.6, 1.0))


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate (see ``gcf-eval --help``)."""

    dataset: Path
    noise: str = "medium"
    seed: int = 0
    max_instances: int | None = None
    min_visib: float = 0.3


@dataclass(frozen=True)
class InstanceRecord:
    """Errors of one evaluated instance before and after refinement."""

    scene_id: int
    im_id: int
    inst_idx: int
    obj_id: int
    visib_fract: float
    initial: PoseErrors
    refined: PoseErrors
    iterations: int
    time_ms: float  # the frame's refinement time divided by its number of instances
    scores: dict | None = None  # the method's per-instance read-outs (confidence, status), if any


def select_instances(
    dataset: BopDataset, registry: ModelRegistry, config: EvalConfig
) -> list[tuple[BopFrame, BopInstance, float, np.ndarray]]:
    """(frame, instance, visible fraction, initial pose) of every evaluated instance, in order."""
    chosen = []
    for frame in dataset.frames():
        visib = _visibilities(frame, registry)
        chosen += [(frame, inst, v) for inst, v in zip(frame.instances, visib, strict=True)]
    chosen = [c for c in chosen if c[2] >= config.min_visib]
    T_init = perturb_instances([inst.T_cam_obj for _, inst, _ in chosen], config.noise, config.seed)
    selected = [(*c, T0) for c, T0 in zip(chosen, T_init, strict=True)]
    return selected[: config.max_instances] if config.max_instances else selected


def _visibilities(frame: BopFrame, registry: ModelRegistry) -> list[float]:
    if all(inst.visib_fract is not None for inst in frame.instances):
        return [float(inst.visib_fract) for inst in frame.instances]
    from gcf_ros.core.visibility import render_scene_masks  # no scene_gt_info.json: render

    models = [registry.get(inst.model_id) for inst in frame.instances]
    T = np.stack([inst.T_cam_obj for inst in frame.instances])
    masks = render_scene_masks(models, T, frame.K, frame.width, frame.height)
    return [float(v) for v in masks.visib_fract]


def _by_frame(selected) -> Iterator[tuple[BopFrame, list]]:
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for item in selected:
        groups[(item[0].scene_id, item[0].im_id)].append(item)
    for items in groups.values():
        yield items[0][0], items


def evaluate(
    selected: list,
    registry: ModelRegistry,
    method: Method,
    progress=None,
    depth: DepthInput | None = None,
) -> list[InstanceRecord]:
    """Refine the instances chosen by ``select_instances`` with ``method``; ``progress(n)`` is
    called per frame. With ``depth``, each frame carries its depth image (``EvalFrame.depth_m``),
    which methods that cannot use depth ignore."""
    records: list[InstanceRecord] = []
    for frame, items in _by_frame(selected):
        eval_frame = _eval_frame(frame, items, registry, depth)
        out = method.refine(eval_frame, np.stack([T0 for *_, T0 in items]))
        for b, (_, inst, visib, T0) in enumerate(items):
            m = eval_frame.models[b]
            initial, refined = (
                pose_errors(m.verts_obj, m.diameter, m.symmetry, frame.K, T, inst.T_cam_obj)
                for T in (T0, out.T_cam_obj[b])
            )
            records.append(InstanceRecord(
                frame.scene_id, frame.im_id, inst.inst_idx, inst.obj_id, visib, initial, refined,
                int(out.iterations[b]), 1e3 * out.time_s / len(items),
                None if out.scores is None else out.scores[b],
            ))  # fmt: skip
        if progress is not None:
            progress(len(items))
    return records


def _eval_frame(
    frame: BopFrame, items: list, registry: ModelRegistry, depth: DepthInput | None
) -> EvalFrame:
    all_models = [registry.get(inst.model_id) for inst in frame.instances]
    refine_idx = np.array([inst.inst_idx for _, inst, _, _ in items])
    return EvalFrame(
        image_rgb=frame.load_rgb(),
        K=frame.K,
        models=[all_models[i] for i in refine_idx],
        T_gt_all=np.stack([inst.T_cam_obj for inst in frame.instances]),
        models_all=all_models,
        refine_idx=refine_idx,
        depth_m=None if depth is None else depth.depth_for(frame),
    )


def results_dict(
    records: list[InstanceRecord], header: dict, max_iterations: int | None = None
) -> dict:
    """The JSON document of one run (schema in ``gcf-eval --help``); ``max_iterations``: the
    method's iteration limit (None: unknown), for ``iteration_stats``."""
    per_object = {
        str(obj): _before_after([r for r in records if r.obj_id == obj])
        for obj in sorted({r.obj_id for r in records})
    }
    per_visibility = {
        f"[{lo}, {hi}{']' if hi >= 1 else ')'}": _before_after(
            [r for r in records if lo <= r.visib_fract < hi or (hi >= 1 and r.visib_fract == hi)]
        )
        for lo, hi in VISIBILITY_BINS
    }
    times = [r.time_ms for r in records if r.iterations > 0]
    per_it = [r.time_ms / r.iterations for r in records if r.iterations > 0]
    return {
        **header,
        "n_instances": len(records),
        **_before_after(records),
        "per_object": per_object,
        "per_visibility": per_visibility,
        "time": {
            "per_object_ms_median": float(np.median(times)) if times else 0.0,
            "per_iteration_ms_median": float(np.median(per_it)) if per_it else 0.0,
        },
        "iterations": iteration_stats(records, max_iterations),
        "instances": [_instance_dict(r) for r in records],
    }


def iteration_stats(records: list[InstanceRecord], max_iterations: int | None) -> dict:
    """How many iterations the instances ran: ``histogram`` {iterations: instances}, ``mean``,
    ``max`` (the limit, None if unknown), and the fractions of the instances that ``converged``
    (status CONVERGED, from the method's read-outs; None without them) and that ``stopped_early``
    (CONVERGED before the limit: the early stop fired; None without statuses or limit)."""
    its = np.array([r.iterations for r in records], dtype=int)
    values, counts = np.unique(its, return_counts=True)
    status = [None if r.scores is None else r.scores.get("status") for r in records]
    known = bool(records) and all(s is not None for s in status)
    converged = np.array([s == 0 for s in status])  # 0: CONVERGED (gcf_ros.gcf.refiner)
    early = None
    if known and max_iterations is not None:
        early = float(np.mean(converged & (its < max_iterations)))
    return {
        "max": max_iterations,
        "mean": float(its.mean()) if len(its) else 0.0,
        "histogram": {str(v): int(c) for v, c in zip(values, counts, strict=True)},
        "converged": float(np.mean(converged)) if known else None,
        "stopped_early": early,
    }


def _before_after(records: list[InstanceRecord]) -> dict:
    return {
        "initial": _clean(summarize([r.initial for r in records]).to_dict()),
        "refined": _clean(summarize([r.refined for r in records]).to_dict()),
    }


def _instance_dict(r: InstanceRecord) -> dict:
    keys = ("rot_deg", "trans_cm", "proj_px", "add_m", "add_sym_m", "diameter_m")
    errs = {
        stage: _clean({k: float(getattr(getattr(r, stage), k)) for k in keys})
        for stage in ("initial", "refined")
    }
    meta = ("scene_id", "im_id", "inst_idx", "obj_id", "visib_fract", "iterations", "time_ms")
    scores = {"scores": _clean(r.scores)} if r.scores is not None else {}
    return {**{k: getattr(r, k) for k in meta}, **errs, **scores}


def _clean(d: dict) -> dict:
    """JSON has no NaN/inf: write them as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
