"""Synthesis without open3d: numpy primitives, the torch rasterizer, models from a snapshot.

The primitives equal open3d's bit for bit (so the default path, and every shipped set, is
unchanged); the torch rasterizer draws the same samples as the ray caster up to silhouette-edge
pixels; a snapshot serves the same models as the registry YAML; and a process where open3d does
not import (nor in its spawned workers) writes a set with ``--renderer torch --models-snapshot``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from gcf_ros.core.models import ModelRegistry
from gcf_ros.train import primitives as prim
from gcf_ros.train.synth import (
    SHARD_DTYPES,
    ModelSource,
    SynthConfig,
    SynthRenderer,
    generate_shard,
    write_shards,
)
from gcf_ros.train.synth_cli import main as synth_main

REPO = Path(__file__).resolve().parents[2]
MESHES = REPO / "data" / "models" / "lmo"
CONFIG = dataclasses.replace(SynthConfig.from_yaml(REPO / "config" / "train.yaml"), window_size=32)
SMALL_MODELS = ("obj_000001", "obj_000009")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """A registry YAML of two small LM-O models."""
    path = tmp_path_factory.mktemp("registry") / "models.yaml"
    path.write_text(
        "models:\n"
        + "".join(f"  {m}: {{mesh: {MESHES / m}.ply, scale: 0.001}}\n" for m in SMALL_MODELS)
    )
    return path


@pytest.fixture(scope="module")
def snapshot(registry: Path) -> Path:
    """The registry's snapshot, written here with open3d."""
    return ModelRegistry.from_yaml(registry).save_snapshot(registry.parent / "models.npz")


# ------------------------------------------------------------------------------- primitives


def _open3d_mesh(kind: str, *args, resolution: int | None = None):
    create = getattr(o3d.geometry.TriangleMesh, f"create_{kind}")
    mesh = create(*args) if resolution is None else create(*args, resolution=resolution)
    mesh.compute_vertex_normals()
    return mesh


@pytest.mark.parametrize("resolution", [2, 3, 16, 32, 33])
def test_primitives_equal_open3d_bit_for_bit(resolution: int):
    """Same vertices and triangles (order and winding) and vertex normals as open3d's create_*
    (default split) and compute_vertex_normals, at random sizes."""
    rng = np.random.default_rng(resolution)
    for _ in range(5):
        a, b, c = rng.uniform(0.01, 0.2, size=3)
        cases = {
            "box": (_open3d_mesh("box", a, b, c), prim.box_mesh(a, b, c)),
            "sphere": (_open3d_mesh("sphere", a, resolution=resolution),
                       prim.sphere_mesh(a, resolution)),
            "cylinder": (_open3d_mesh("cylinder", a, b, resolution=resolution),
                         prim.cylinder_mesh(a, b, resolution)),
            "cone": (_open3d_mesh("cone", a, b, resolution=resolution),
                     prim.cone_mesh(a, b, resolution)),
        }  # fmt: skip
        for kind, (mesh, (verts, faces)) in cases.items():
            assert verts.dtype == np.float64 and faces.dtype == np.int64, kind
            assert np.array_equal(np.asarray(mesh.vertices), verts), kind
            assert np.array_equal(np.asarray(mesh.triangles), faces), kind
            assert np.array_equal(
                np.asarray(mesh.vertex_normals), prim.vertex_normals(verts, faces)
            )
    with pytest.raises(ValueError, match="resolution"):
        prim.sphere_mesh(0.1, 1)
    with pytest.raises(ValueError, match="split"):
        prim.cylinder_mesh(0.1, 0.2, 8, split=0)


# ---------------------------------------------------------------------------- model sources


def test_snapshot_serves_the_samples_of_the_registry(registry: Path, snapshot: Path):
    """The snapshot holds the registry's models bit for bit: the same set, array for array."""
    expected = generate_shard(CONFIG, registry, seed=4, n=3)
    got = generate_shard(CONFIG, ModelSource.from_snapshot(snapshot), seed=4, n=3)
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key


def test_default_manifest_is_unchanged_and_resume_keeps_the_renderer(
    registry: Path, snapshot: Path, tmp_path: Path
):
    """The defaults write the manifest keys they always wrote; a set is resumed only with its
    own renderer backend; bad command-line combinations exit with status 2."""
    config = dataclasses.replace(CONFIG, window_size=16)
    out = tmp_path / "set"
    write_shards(config, registry, out, 1, shard_size=1, workers=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "renderer" not in manifest and "models_snapshot" not in manifest
    assert manifest["registry"] == str(registry.resolve())
    torch_cpu = SynthRenderer("torch")
    with pytest.raises(ValueError, match="renderer"):
        write_shards(config, registry, out, 1, 1, workers=1, progress=False, renderer=torch_cpu)
    from_snapshot = ModelSource.from_snapshot(snapshot)  # the same models: the set resumes
    again = write_shards(config, from_snapshot, out, 1, 1, workers=1, progress=False)
    assert (again.generated, again.skipped) == (0, 1)
    base = ["--config", str(REPO / "config" / "train.yaml"), "--out", str(tmp_path / "x")]
    assert synth_main([*base, "--num", "1", "--snapshot-name", "lmo"]) == 2
    assert synth_main([*base, "--num", "1", "--device", "cuda"]) == 2
    with pytest.raises(ValueError, match="renderer"):
        SynthRenderer("pytorch3d")


def test_cuda_device_is_checked_before_any_worker_starts():
    renderer = SynthRenderer("torch", "cuda")
    import torch

    if torch.cuda.is_available():
        renderer.check_available()
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            renderer.check_available()
    with pytest.raises(ValueError, match="CPU only"):
        SynthRenderer("raycast", "cuda")
    for device in ("cuda:x", "mps"):
        with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
            SynthRenderer("torch", device)


# ------------------------------------------------------------------------------- renderers


def test_torch_renderer_draws_the_samples_of_the_ray_caster(registry: Path):
    """Same seed, same draws (poses, levels); masks, images, renderings and fields agree up to
    silhouette-edge pixels (measured: identical masks and images at S = 32 and 64, renderings
    within 5e-4, fields within 0.016 px)."""
    ray = generate_shard(CONFIG, registry, seed=1, n=4)
    ras = generate_shard(CONFIG, registry, seed=1, n=4, renderer=SynthRenderer("torch"))
    for key in ("model_idx", "T_true", "T_init", "K_window", "level"):
        assert np.array_equal(ray[key], ras[key]), key
    for key in ("mask", "visible"):
        inter = (ray[key] & ras[key]).sum(axis=(1, 2))
        union = np.maximum((ray[key] | ras[key]).sum(axis=(1, 2)), 1)
        assert (inter / union > 0.98).all(), (key, inter / union)
    image_diff = np.abs(ray["image"].astype(int) - ras["image"].astype(int)).max(-1)
    assert (image_diff > 8).mean() < 0.01
    both = (ray["mask"] & ras["mask"])[:, None]
    for key, tol in (("render", 0.01), ("field", 0.1)):
        diff = np.abs(ray[key].astype(np.float32) - ras[key].astype(np.float32))
        assert np.broadcast_to(both, diff.shape)[diff > tol].sum() == 0, key


# ---------------------------------------------------------------------------- no open3d


BLOCKER = 'raise ImportError("open3d is blocked in this test (a machine without open3d)")\n'
CHILD = """
import sys
try:
    import open3d
except ImportError:
    pass
else:
    raise SystemExit("open3d imported")
from gcf_ros.train.synth_cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_set_without_open3d_from_a_snapshot_and_the_torch_renderer(
    snapshot: Path, tmp_path: Path
):
    """gcf-synth --renderer torch --models-snapshot in a process (and two spawned workers) where
    open3d does not import: a complete set of finite samples with non-empty masks, and a
    manifest that names the snapshot and the renderer."""
    blocked = tmp_path / "blocked"
    (blocked / "open3d").mkdir(parents=True)
    (blocked / "open3d" / "__init__.py").write_text(BLOCKER)
    config = tmp_path / "train.yaml"
    config.write_text(f"models: {tmp_path / 'absent.yaml'}\nsynth: {{window_size: 32}}\n")
    out = tmp_path / "set"
    paths = [str(blocked), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    args = ["--config", str(config), "--out", str(out), "--num", "4", "--shard-size", "2",
            "--workers", "2", "--quiet", "--renderer", "torch",
            "--models-snapshot", str(snapshot)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=REPO, env=env, timeout=300,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["model_ids"] == list(SMALL_MODELS)
    assert manifest["renderer"] == {"backend": "torch", "device": "cpu"}
    assert manifest["registry"] == str(snapshot.resolve())
    assert manifest["models_snapshot"]["name"] == "default"
    assert len(manifest["models_snapshot"]["sha256"]) == 64
    for shard in manifest["shards"]:
        with np.load(out / shard["name"]) as data:
            for key, dtype in SHARD_DTYPES.items():
                assert data[key].dtype == dtype and len(data[key]) == 2, key
                if np.issubdtype(dtype, np.floating):
                    assert np.isfinite(data[key].astype(np.float64)).all(), key
            assert data["image"].shape == (2, 32, 32, 3)
            assert (data["mask"].sum(axis=(1, 2)) >= 16).all()
            assert data["visible"].any(axis=(1, 2)).all()
