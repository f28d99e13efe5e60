"""Synthetic training data: format, determinism, exact fields, shards and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from gcf_ros.core.camera import CropWindow
from gcf_ros.core.model_spec import up_axis_vector
from gcf_ros.core.models import ModelRegistry
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.render.types import Shading
from gcf_ros.eval.metrics import rotation_error_deg
from gcf_ros.train import synth_scene as sc
from gcf_ros.train.synth import (
    SHARD_DTYPES,
    SynthConfig,
    generate_shard,
    load_synth_yaml,
    shard_seed,
    write_shards,
)
from gcf_ros.train.synth_sample import _camera_image

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "config" / "models.yaml"
CONFIG = SynthConfig()
S = CONFIG.window_size
N = 6
_SMALL_MODELS = ("obj_000001", "obj_000009")


@pytest.fixture(scope="module")
def shard() -> dict[str, np.ndarray]:
    return generate_shard(CONFIG, REGISTRY, seed=7, n=N)


def test_shapes_and_dtypes(shard):
    shapes = {
        "image": ((N, S, S, 3), np.uint8),
        "render": ((N, 10, S, S), np.float16),
        "field": ((N, 2, S, S), np.float16),
        "mask": ((N, S, S), np.bool_),
        "model_idx": ((N,), np.int16),
        "T_true": ((N, 4, 4), np.float32),
        "T_init": ((N, 4, 4), np.float32),
        "K_window": ((N, 3, 3), np.float32),
        "level": ((N,), np.int8),
        "visible": ((N, S, S), np.bool_),
    }
    assert set(shard) == {*shapes, "model_ids"} == {*SHARD_DTYPES, "model_ids"}
    for key, (shape, dtype) in shapes.items():
        assert shard[key].shape == shape, key
        assert shard[key].dtype == dtype, key
    assert list(shard["model_ids"]) == sorted(ModelRegistry.from_yaml(REGISTRY).ids)
    assert (shard["model_idx"] >= 0).all() and (shard["model_idx"] < len(shard["model_ids"])).all()
    assert ((shard["level"] >= 0) & (shard["level"] < len(CONFIG.level_names))).all()
    assert np.array_equal(shard["render"][:, 9] > 0.5, shard["mask"])
    assert (shard["mask"].sum(axis=(1, 2)) >= 16).all()


def test_deterministic_per_seed(shard):
    again = generate_shard(CONFIG, REGISTRY, seed=7, n=N)
    for key in shard:
        assert np.array_equal(shard[key], again[key]), key
    other = generate_shard(CONFIG, REGISTRY, seed=8, n=N)
    assert not np.array_equal(shard["image"], other["image"])
    assert not np.array_equal(shard["T_true"], other["T_true"])


def test_field_is_exact_warp_of_rendered_points(shard):
    diameters = {m: ModelRegistry.from_yaml(REGISTRY).get(m).diameter for m in shard["model_ids"]}
    v, u = np.mgrid[0:S, 0:S].astype(np.float64)
    for i in range(N):
        mask = shard["mask"][i]
        diameter = diameters[shard["model_ids"][shard["model_idx"][i]]]
        X_obj = shard["render"][i, :3].astype(np.float64).transpose(1, 2, 0)[mask] * diameter
        T = shard["T_true"][i].astype(np.float64)
        x = (X_obj @ T[:3, :3].T + T[:3, 3]) @ shard["K_window"][i].astype(np.float64).T
        uv = x[:, :2] / x[:, 2:]
        field = shard["field"][i].astype(np.float64).transpose(1, 2, 0)[mask]
        target = np.stack([u[mask], v[mask]], axis=1) + field
        # float16 storage: xyz/diameter to ~2.4e-4, the field to 2^-11 of its length
        tolerance = 0.05 + 1e-3 * np.abs(field)
        assert (np.abs(uv - target) <= tolerance).all(), np.abs(uv - target).max()
        assert (shard["field"][i][:, ~mask] == 0).all()
        assert np.abs(field).max() > 0


def test_initial_pose_within_the_largest_level(shard):
    for T_true, T_init in zip(shard["T_true"], shard["T_init"], strict=True):
        angle = rotation_error_deg(T_init[:3, :3], T_true[:3, :3])
        assert angle <= 40.0 + 0.01
        assert T_init[2, 3] > 0 and T_true[2, 3] > 0


def test_tiny_level_starts_near_aligned():
    config = SynthConfig(window_size=32, noise_mix={"tiny": 1.0, "xlarge": 0.0})
    data = generate_shard(config, REGISTRY, seed=3, n=3)
    assert config.level_names == ("tiny", "xlarge") and (data["level"] == 0).all()
    for T_true, T_init in zip(data["T_true"], data["T_init"], strict=True):
        angle = rotation_error_deg(T_init[:3, :3], T_true[:3, :3])
        assert angle <= 1.0 + 0.01
        assert abs(T_init[2, 3] / T_true[2, 3] - 1) < 0.03  # 6 sigma of 0.5 %
        assert np.abs(T_init[:2, 3] - T_true[:2, 3]).max() < 0.012  # 6 sigma of 2 mm


def test_images_are_not_constant(shard):
    for image in shard["image"]:
        assert image.std() > 2.0
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_write_shards_manifest_and_resume(tmp_path):
    out = tmp_path / "set"
    result = write_shards(CONFIG, REGISTRY, out, 6, shard_size=3, seed=0, workers=1, progress=False)
    assert (result.generated, result.skipped) == (6, 0)
    names = ["shard_00000.npz", "shard_00001.npz"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_samples"] == 6 and manifest["seed"] == 0
    assert [s["name"] for s in manifest["shards"]] == names
    assert manifest["config"]["noise_mix"] == CONFIG.noise_mix
    assert manifest["generator_version"]
    expected = generate_shard(CONFIG, REGISTRY, shard_seed(0, 1), 3)
    with np.load(out / names[1]) as data:
        for key in expected:
            assert np.array_equal(data[key], expected[key]), key
    mtimes = [(out / n).stat().st_mtime_ns for n in names]
    again = write_shards(CONFIG, REGISTRY, out, 6, shard_size=3, workers=1, progress=False)
    assert (again.generated, again.skipped) == (0, 6)
    assert [(out / n).stat().st_mtime_ns for n in names] == mtimes
    shorter = write_shards(CONFIG, REGISTRY, out, 5, shard_size=3, workers=1, progress=False)
    assert (shorter.generated, shorter.skipped) == (2, 3)  # the last shard has the wrong size
    with pytest.raises(ValueError, match="seed"):
        write_shards(CONFIG, REGISTRY, out, 6, shard_size=3, seed=1, workers=1, progress=False)


@pytest.mark.slow
def test_write_shards_spawn_pool_matches_in_process(tmp_path):
    registry = tmp_path / "models.yaml"  # two small models: the workers start faster
    meshes = REPO / "data" / "models" / "lmo"
    registry.write_text(
        "models:\n"
        + "".join(f"  {m}: {{mesh: {meshes / m}.ply, scale: 0.001}}\n" for m in _SMALL_MODELS)
    )
    out = tmp_path / "set"
    result = write_shards(CONFIG, registry, out, 4, shard_size=2, seed=3, workers=2, progress=False)
    assert result.generated == 4
    for i in range(2):
        expected = generate_shard(CONFIG, registry, shard_seed(3, i), 2)
        with np.load(out / f"shard_{i:05d}.npz") as data:
            for key in expected:
                assert np.array_equal(data[key], expected[key]), key


def test_config_yaml(tmp_path):
    config, models = load_synth_yaml(REPO / "config" / "train.yaml")
    assert config == SynthConfig()
    assert models == REGISTRY.resolve()
    path = tmp_path / "train.yaml"
    path.write_text(
        f"models: {REGISTRY}\ntrain: {{epochs: 3}}\nsynth:\n  window_size: 96\n"
        "  noise_mix: {small: 1.0}\n"
    )
    config, models = load_synth_yaml(path)
    assert (config.window_size, config.level_names, models) == (96, ("small",), REGISTRY)
    assert SynthConfig.from_yaml(path) == config
    with pytest.raises(ValueError, match="unknown key"):
        SynthConfig.from_dict({"window": 64})
    with pytest.raises(ValueError, match="unknown level"):
        SynthConfig(noise_mix={"huge": 1.0})


def test_upper_hemisphere_views():
    rng = np.random.default_rng(0)
    for _ in range(200):
        R = sc.upper_hemisphere_rotation(rng)
        to_camera = -R[2]  # the optical axis in the object frame, reversed
        assert -10.0 - 1e-6 <= math.degrees(math.asin(to_camera[2])) <= 90.0
        if abs(to_camera[2]) < 0.99:  # the model's +z is "up" in the image, up to the roll
            up_img = R @ np.array([0.0, 0.0, 1.0])
            roll = math.degrees(math.atan2(up_img[0], -up_img[1]))
            assert abs(roll) <= 30.0 + 1e-6


@pytest.mark.parametrize("up", ["+y", "-z", "-x"])
def test_upper_hemisphere_views_follow_the_up_axis(up: str):
    """A y-up model (or any other) is seen from above its own up axis and stands upright."""
    up_obj = up_axis_vector(up)
    rng = np.random.default_rng(0)
    for _ in range(200):
        R = sc.upper_hemisphere_rotation(rng, up_obj)
        to_camera = -R[2]
        assert -10.0 - 1e-6 <= math.degrees(math.asin(to_camera @ up_obj)) <= 90.0
        if abs(to_camera @ up_obj) < 0.99:
            up_img = R @ up_obj
            assert abs(math.degrees(math.atan2(up_img[0], -up_img[1]))) <= 30.0 + 1e-6


def test_layer_sub_window_equals_full_render():
    model = ModelRegistry.from_yaml(REGISTRY).get("obj_000001")
    renderer = RaycastRenderer(1)
    T = np.eye(4)
    T[:3, :3] = sc.random_rotation(np.random.default_rng(1))
    T[:3, 3] = (0.03, -0.02, 0.4)
    K = np.array([[300.0, 0, 60.0], [0, 300.0, 70.0], [0, 0, 1]])
    shading = Shading(0.4, 0.6, (0.0, 0.0, -1.0))
    layer = sc.render_layer(renderer, model, T, K, 128, shading)
    full = renderer.render([model], T[None], K[None], 128, shading)
    assert layer is not None
    assert np.array_equal(layer.mask, full.mask[0].numpy())
    assert np.allclose(layer.depth, full.depth[0].numpy(), atol=1e-6)
    assert np.allclose(layer.rgb, full.rgb[0].numpy(), atol=1e-5)


def _beyond_grid(image: np.ndarray, n: int) -> float:
    """Mean |residual| (grey levels) of an (S, S, 3) image after least-squares projection onto the
    images that CropWindow.resample makes from n x n ones: 0 when it holds no finer detail."""
    s = image.shape[0]
    up = np.zeros((s, n))  # the resampling is separable: its 1-D operator, column by column
    for j in range(n):
        impulse = np.zeros((n, n), np.float32)
        impulse[:, j] = 1.0
        up[:, j] = CropWindow(0.0, 0.0, float(n), s).resample(impulse)[0]
    pinv = np.linalg.pinv(up)
    img = image.astype(np.float64)
    fit = np.stack([up @ (pinv @ img[..., c] @ pinv.T) @ up.T for c in range(3)], axis=-1)
    return float(np.abs(img - fit).mean())


def test_camera_resolution_windows_hold_only_the_detail_of_the_camera_pixels():
    # Canvas detail at the finest scale; a window 16 camera pixels wide comes out, at S = 32, as
    # an upsampled 16-pixel image (as a real crop does), one 64 pixels wide does not.
    cfg = SynthConfig(window_size=32, camera_resolution=True)
    canvas = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    few = _camera_image(canvas, 16.0, cfg, np.random.default_rng(1))
    many = _camera_image(canvas, 64.0, cfg, np.random.default_rng(2))
    assert few.shape == many.shape == (32, 32, 3) and few.dtype == np.uint8
    print(f"detail beyond 16 px: {_beyond_grid(few, 16):.2f} vs {_beyond_grid(many, 16):.2f}")
    assert _beyond_grid(few, 16) < 0.6  # uint8 rounding only
    assert _beyond_grid(many, 16) > 3.0
    with pytest.raises(ValueError, match="camera_blur_px"):
        SynthConfig(camera_blur_px=(1.0, 0.5))
    assert not SynthConfig().camera_resolution  # the S = 64 data sets stay reproducible


def test_visible_mask_is_the_unoccluded_part_of_the_object_at_the_true_pose(shard):
    """``visible`` (the mask head's target) lies inside the object's rendering at T* (up to the
    one-pixel edge of the area resampling) and covers at least 30 % of it inside the image: the
    occluders hide at most 70 % (synth_sample._MAX_HIDDEN)."""
    import torch

    registry = ModelRegistry.from_yaml(REGISTRY)
    ids = [str(i) for i in shard["model_ids"]]
    renderer = RaycastRenderer()
    for b in range(N):
        model = registry.get(ids[shard["model_idx"][b]])
        T = torch.from_numpy(shard["T_true"][b].astype(np.float64))[None]
        K = torch.from_numpy(shard["K_window"][b].astype(np.float64))[None]
        full = renderer.render([model], T, K, S).mask[0].numpy()
        visible = shard["visible"][b]
        grown = cv2.dilate(full.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert not (visible & ~grown).any(), b
        inside = shard["image"][b].max(-1) > 0
        if (full & inside).sum() > 50:
            assert visible.sum() >= 0.3 * 0.8 * (full & inside).sum(), b  # 0.8: edge pixels
