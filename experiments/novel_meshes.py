"""Refinement of CAD models no network saw: synthetic renders of pybullet_data's random meshes.

    pip install pybullet==3.2.7            # a dev extra: pybullet_data ships the meshes
    python experiments/novel_meshes.py --meshes 20 --cases 10 \
        "field" "field,mask|field_stop=3"

Each mesh (``random_urdfs/NNN/NNN.obj``, scaled to a 15 cm box diagonal, one random flat colour) is
rendered with Lambertian shading at ``--cases`` random poses (0.45-0.9 m away, anywhere in the
image) over a procedural background (``gcf_ros.train.backgrounds``), with camera blur and noise.
The initial poses are the truth perturbed at the protocol's medium level. Every configuration
(``terms|key=value,...`` as in ``gcf-eval --terms/--set``) refines the same cases. Prints, per
configuration, the medians over meshes of the per-mesh median 2D error and ADD(-S) < 0.1 d rate,
and the share of meshes whose median 2D error and ADD(-S) rate improved over the initial poses.

``--registry YAML --models ID,...`` renders those models of a registry instead, at their own size
and colours (README, "Adding your own object": the new object before and after fine-tuning):

    python experiments/novel_meshes.py --registry data/models/example/models.yaml --models hammer \
        --cases 48 region field,region [--checkpoint runs/add_object/gcf_add_object.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.models import ModelRegistry, ModelSpec
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.render.types import Shading
from gcf_ros.eval.cli import parse_overrides
from gcf_ros.eval.metrics import pose_errors
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig, default_checkpoint
from gcf_ros.train.backgrounds import random_background

K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1]])
H, W = 480, 640


def mesh_registry(count: int, out: Path) -> ModelRegistry:
    import open3d as o3d
    import pybullet_data

    root = Path(pybullet_data.getDataPath()) / "random_urdfs"
    rng = np.random.default_rng(0)
    specs = {}
    for i in range(count):
        mesh = o3d.io.read_triangle_mesh(str(root / f"{i:03d}" / f"{i:03d}.obj"))
        verts = np.asarray(mesh.vertices)
        diameter = float(np.linalg.norm(verts.max(0) - verts.min(0)))  # box diagonal, mesh units
        mesh.compute_vertex_normals()
        path = out / f"random_{i:03d}.ply"
        o3d.io.write_triangle_mesh(str(path), mesh)
        color = tuple(float(c) for c in rng.uniform(0.15, 0.95, 3))
        specs[f"random_{i:03d}"] = ModelSpec(f"random_{i:03d}", path, 0.15 / diameter, color=color)
    return ModelRegistry(specs)


def scene(model, rng: np.random.Generator, renderer: RaycastRenderer):
    """(image (H, W, 3) uint8, T_true (4, 4)) of one synthetic view."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    z = rng.uniform(0.45, 0.9)
    uv = rng.uniform([120, 100], [W - 120, H - 100])
    T[:3, 3] = np.linalg.solve(K, [uv[0], uv[1], 1.0]) * z
    side = max(H, W)
    window = CropWindow(0.0, 0.0, float(side), side)
    Kw = torch.from_numpy(window.K_window(K))[None]
    light = rng.uniform(-1, 1, 3)
    light[2] = -abs(light[2]) - 0.3
    shading = Shading(float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.4, 0.8)),
                      tuple(float(c) for c in light / np.linalg.norm(light)))  # fmt: skip
    out = renderer.render([model], torch.from_numpy(T)[None], Kw, side, shading)
    mask = out.mask[0, :H, :W].numpy()
    rgb = (out.rgb[0, :H, :W].numpy() * 255).astype(np.float32)
    background = random_background(side, rng)[:H, :W].astype(np.float32)
    image = np.where(mask[..., None], rgb, background)
    image = cv2.GaussianBlur(image, (0, 0), 0.7) + rng.normal(0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), T


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", help="terms|key=value,... (as gcf-eval --terms/--set)")
    p.add_argument("--meshes", type=int, default=20)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--work", type=Path, default=Path("out/novel_meshes"))
    p.add_argument("--registry", type=Path, default=None, help="models of this registry instead")
    p.add_argument("--models", default=None, help="with --registry: comma-separated model ids")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.registry is None:
        registry = mesh_registry(args.meshes, args.work)
    else:
        full = ModelRegistry.from_yaml(args.registry)
        ids = args.models.split(",") if args.models else list(full.ids)
        registry = ModelRegistry({i: full.spec(i) for i in ids})
    predictor = NetworkPredictor.from_weights(Path(args.checkpoint or default_checkpoint()))
    renderer = RaycastRenderer()
    cases = {}
    for n, model_id in enumerate(registry):
        model = registry.get(model_id)
        rng = np.random.default_rng(1000 + n)
        views = [scene(model, rng, renderer) for _ in range(args.cases)]
        T0 = perturb_instances([T for _, T in views], "medium", seed=n)
        cases[model_id] = [(img, T, T_init) for (img, T), T_init in zip(views, T0, strict=True)]
    rows = {"initial": {}}
    for spec in args.configs:
        terms, _, kv = spec.partition("|")
        overrides = parse_overrides([x for x in kv.split(",") if x]) if kv else {}
        overrides["terms"] = tuple(terms.split(","))
        config = RefinerConfig.resolve(predictor.weights, **overrides)
        refiner = Refiner(registry, predictor, config)
        rows[spec] = {}
        for model_id, items in cases.items():
            model = registry.get(model_id)
            errs, errs0 = [], []
            for img, T, T_init in items:
                (res,) = refiner.refine(img, K, [Detection(model_id, T_init)])
                for T_est, bucket in ((res.T_cam_obj, errs), (T_init, errs0)):
                    e = pose_errors(model.verts_obj, model.diameter, model.symmetric, K,
                                    T_est, T)  # fmt: skip
                    bucket.append((e.proj_px, e.add_m < 0.1 * model.diameter))
            rows[spec][model_id] = np.array(errs, dtype=float)
            rows["initial"][model_id] = np.array(errs0, dtype=float)
        print(_line(spec, rows[spec], rows["initial"]), flush=True)
    print(_line("initial", rows["initial"], rows["initial"]))
    return 0


def _line(name: str, per_mesh: dict, initial: dict) -> str:
    med2d = np.array([np.median(v[:, 0]) for v in per_mesh.values()])
    add = np.array([v[:, 1].mean() for v in per_mesh.values()])
    med2d0 = np.array([np.median(v[:, 0]) for v in initial.values()])
    add0 = np.array([v[:, 1].mean() for v in initial.values()])
    better2d = float((med2d < med2d0).mean())
    better_add = float((add > add0).mean())
    not_worse_add = float((add >= add0).mean())
    return (
        f"{name:<40} 2D px median over meshes {np.median(med2d):6.2f} (initial "
        f"{np.median(med2d0):.2f}); ADD(-S) {100 * add.mean():5.1f} % (initial "
        f"{100 * add0.mean():.1f} %); meshes with better 2D {100 * better2d:.0f} %, better "
        f"ADD(-S) {100 * better_add:.0f} %, ADD(-S) not worse {100 * not_worse_add:.0f} %"
    )


if __name__ == "__main__":
    sys.exit(main())
