#!/usr/bin/env python3
"""Time the two renderer backends, raycast (open3d) and PyTorch3D, on the LM-O models.

Every model is rendered at its ground-truth pose in the first test image that shows it, in a
window of S x S pixels around its projected box (``crop_window_for_box``), full-resolution mesh,
one window per call. Each (model, S, backend) gets one untimed warm-up call (it also builds the
per-model caches), then the median of ``--repeats`` timed calls is reported. Also times the
PyTorch3D soft silhouette (forward, and forward + backward to the pose) on a 2k-face decimated
mesh at S = 64. Timings only, no asserts: they depend on the machine and its load.

    python experiments/render_backends.py [--sizes 64 128 256] [--repeats 3] [--models ...]
        [--config config/models.yaml] [--lmo ../shared/data/lmo] [--device cpu]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.geometry import make_se3
from gcf_ros.core.models import ModelRegistry, ObjectModel
from gcf_ros.core.render import make_renderer
from gcf_ros.core.render.pytorch3d_backend import soft_sigma
from gcf_ros.resources import default_models_yaml

SOFT_FACES = 2000
SOFT_SIZE = 64


def first_views(lmo: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """model id -> (K (3, 3), T_cam_obj (4, 4), metres) of its first appearance in lmo/test."""
    views: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for frame, inst in BopDataset(lmo).instances():
        views.setdefault(inst.model_id, (frame.K, inst.T_cam_obj))
    return views


def median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of fn() in ms over ``repeats`` calls, after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _window(model: ObjectModel, view, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_cam_obj (1, 4, 4), K_window (1, 3, 3)) float64 for an S x S window on the model."""
    K, T = view
    window = crop_window_for_box(K, T, model.bbox_corners_obj, size=size)
    return torch.as_tensor(T)[None], torch.as_tensor(window.K_window(K))[None]


def _make_renderers(device: str) -> dict[str, object | None]:
    renderers: dict[str, object | None] = {}
    for name, kwargs in (("raycast", {}), ("pytorch3d", {"device": device})):
        try:
            renderers[name] = make_renderer(name, **kwargs)
        except ImportError as err:  # a backend that is not installed (or not written yet)
            print(f"# {name} renderer unavailable: {err}", file=sys.stderr)
            renderers[name] = None
    return renderers


def bench_backends(models, views, sizes, repeats, device) -> list[dict]:
    """One row per (model, S): faces and the median ms of each available backend."""
    renderers = _make_renderers(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    rows = []
    for model_id, model, view in models:
        for size in sizes:
            T, K = _window(model, view, size)
            row = {"model": model_id, "faces": model.num_faces, "S": size}
            for name, renderer in renderers.items():
                if renderer is None:
                    row[name] = float("nan")
                    continue
                render = functools.partial(renderer.render, [model], T, K, size)
                row[name] = median_ms(render, repeats, sync)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict) -> str:
    ratio = row["raycast"] / row["pytorch3d"]
    return (
        f"{row['model']:<14}{row['faces']:>8}{row['S']:>6}"
        f"{row['raycast']:>13.2f}{row['pytorch3d']:>15.2f}{ratio:>10.2e}"
    )


def print_summary(rows: list[dict], sizes: list[int]) -> None:
    """Per S: the median over models of each backend's time and of the ratio."""
    print("-" * 66)
    for size in sizes:
        sel = [r for r in rows if r["S"] == size]
        ray = statistics.median(r["raycast"] for r in sel)
        p3d = statistics.median(r["pytorch3d"] for r in sel)
        ratio = statistics.median(r["raycast"] / r["pytorch3d"] for r in sel)
        faces = int(statistics.median(r["faces"] for r in sel))
        print(f"{'median':<14}{faces:>8}{size:>6}{ray:>13.2f}{p3d:>15.2f}{ratio:>10.2e}")


def bench_soft(model_id: str, model: ObjectModel, view, repeats: int, device: str) -> None:
    """PyTorch3D soft silhouette on a decimated mesh: forward, and forward + backward."""
    renderer = make_renderer("pytorch3d", device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    small = model.simplified(SOFT_FACES)
    T, K = _window(small, view, SOFT_SIZE)
    T = T.float().to(device)

    def forward(sigma: float, backward: bool) -> None:
        delta = torch.zeros(3, device=device, requires_grad=backward)
        pose = make_se3(T[:, :3, :3], T[:, :3, 3] + delta)
        alpha = renderer.render_soft_silhouette([small], pose, K, SOFT_SIZE, sigma)
        if backward:
            alpha.sum().backward()

    print(f"\nPyTorch3D soft silhouette, {model_id} decimated to {small.num_faces} faces, S = 64:")
    for sigma in (1e-4, soft_sigma(SOFT_SIZE)):
        fwd = median_ms(lambda s=sigma: forward(s, False), repeats, sync)
        both = median_ms(lambda s=sigma: forward(s, True), repeats, sync)
        print(f"  sigma = {sigma:.2e}: forward {fwd:8.2f} ms, forward + backward {both:8.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None, help="model ids (default: all)")
    parser.add_argument("--config", type=Path, default=default_models_yaml())
    parser.add_argument("--lmo", type=Path, default=Path("../shared/data/lmo"))
    parser.add_argument("--device", default="cpu", help="PyTorch3D device (raycast is CPU)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    registry = ModelRegistry.from_yaml(args.config)
    views = first_views(args.lmo)
    models = []
    for model_id in args.models or registry.ids:
        if model_id not in views:
            print(f"# {model_id}: not in any ground-truth frame, skipped", file=sys.stderr)
            continue
        models.append((model_id, registry.get(model_id), views[model_id]))
    if not models:
        parser.error("no model with a ground-truth pose")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'model':<14}{'faces':>8}{'S':>6}{'raycast ms':>13}{'pytorch3d ms':>15}{'ratio':>10}")
    rows = bench_backends(models, views, args.sizes, args.repeats, args.device)
    print_summary(rows, args.sizes)
    bench_soft(*models[0], args.repeats, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
