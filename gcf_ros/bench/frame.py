"""What ``gcf-bench`` refines: the packaged LM-O frame, seeded initial poses, mesh variants.

The frame is ``data/demo/lmo_000002_000003.json`` (LM-O test scene 2, image 3: real Kinect RGB,
eight annotated objects, ground truth in millimetres). Initial poses follow docs/design.md §4
(medium level, seed 0, the annotated instances in file order); those with visible fraction >= 0.3
are benchmarked. Only timings are taken on it; nothing is tuned on it.

Mesh-size scaling uses one model at several face counts: below its own count, open3d's quadric
decimation (:meth:`ObjectModel.simplified`); above, open3d's midpoint subdivision (each level
splits every triangle in four: the same surface with 4x the faces, so the renders agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcf_ros.core.models import ModelRegistry, ObjectModel
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.eval.sequence import load_frame
from gcf_ros.resources import demo_frame_json

MIN_VISIB = 0.3
SCALING_MODEL = "obj_000008"  # the LM-O driller: 25k faces, the largest window of the frame


@dataclass(frozen=True)
class BenchFrame:
    """The benchmark frame.

    Attributes:
        image_rgb: (H, W, 3) uint8.
        K: (3, 3) float64 intrinsics.
        model_ids: model id of each of the M annotated instances, file order.
        T_gt: (M, 4, 4) float64 ground-truth ``T_cam_obj``, metres.
        T_init: (M, 4, 4) float64 initial poses: ``T_gt`` perturbed (docs/design.md §4).
        visib_fract: (M,) visible fraction of each instance.
        source: the frame's JSON file.
    """

    image_rgb: np.ndarray
    K: np.ndarray
    model_ids: tuple[str, ...]
    T_gt: np.ndarray
    T_init: np.ndarray
    visib_fract: np.ndarray
    source: Path

    @property
    def evaluated(self) -> list[int]:
        """Indices of the instances with visible fraction >= 0.3, file order."""
        return [i for i, v in enumerate(self.visib_fract) if v >= MIN_VISIB]

    def batch(self, n: int, noise: str = "medium", seed: int = 0) -> tuple[list[str], np.ndarray]:
        """``n`` instances for one batched refinement: the evaluated instances repeated in order
        until there are ``n``, with initial poses drawn for that list (seed, level) -> (ids,
        T_init (n, 4, 4))."""
        picks = [self.evaluated[k % len(self.evaluated)] for k in range(n)]
        T_init = perturb_instances([self.T_gt[i] for i in picks], noise, seed)
        return [self.model_ids[i] for i in picks], np.stack(T_init)


def load_bench_frame(path: Path | None = None, noise: str = "medium", seed: int = 0) -> BenchFrame:
    """Read a frame JSON (``cam_K``, ``image``, ``instances`` with ``obj_id``, ``cam_R_m2c``,
    ``cam_t_m2c_mm``, ``visib_fract``) and draw its initial poses."""
    path = Path(path) if path else demo_frame_json()
    frame = load_frame(path)
    return BenchFrame(
        image_rgb=frame.image_rgb,
        K=frame.K,
        model_ids=tuple(frame.model_ids),
        T_gt=frame.T_gt,
        T_init=np.stack(perturb_instances(list(frame.T_gt), noise, seed)),
        visib_fract=frame.visib,
        source=path,
    )


def mesh_variant(model: ObjectModel, faces: int) -> ObjectModel:
    """``model`` with about ``faces`` triangles: itself within 10 % of its own count, quadric
    decimation below, midpoint subdivision (to the first level with >= 0.9 ``faces``) above."""
    if faces < 0.9 * model.num_faces:
        return model.simplified(int(faces))
    if faces <= 1.1 * model.num_faces:
        return model
    levels = math.ceil(math.log(0.9 * faces / model.num_faces, 4))
    mesh = model.to_open3d_legacy().subdivide_midpoint(levels)
    normals = np.asarray(mesh.vertex_normals)
    verts = np.asarray(mesh.vertices, dtype=np.float32)
    return ObjectModel(
        model_id=model.model_id,
        verts_obj=verts,
        faces=np.asarray(mesh.triangles, dtype=np.int32),
        vert_colors=np.asarray(mesh.vertex_colors),
        vert_normals_obj=normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12),
        diameter=model.diameter,  # midpoints lie on the old triangles: same surface
        bbox_min=verts.min(axis=0),
        bbox_max=verts.max(axis=0),
        symmetric=model.symmetric,
        tf_name=model.tf_name,
        source_path=model.source_path,
        symmetry=model.symmetry,
        up_axis=model.up_axis,
        color_source=model.color_source,
    )


class VariantRegistry(ModelRegistry):
    """A registry whose render models are replaced for some ids (mesh-size scaling); every other
    model is the base registry's (loaded once, there)."""

    def __init__(self, base: ModelRegistry, render_models: dict[str, ObjectModel]) -> None:
        super().__init__({model_id: base.spec(model_id) for model_id in base.ids})
        self._base = base
        self._variants = dict(render_models)

    def get(self, model_id: str) -> ObjectModel:
        return self._base.get(model_id)

    def render_model(self, model_id: str) -> ObjectModel:
        if model_id in self._variants:
            return self._variants[model_id]
        return self._base.render_model(model_id)
