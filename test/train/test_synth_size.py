"""Synthesis from the object's own size and up axis, and the finite check of every sample.

A 1 m box (a bed) and a y-up model stand for objects unlike the 10-26 cm LM-O set; the shipped
LM-O configs must keep the absolute lengths their data sets were drawn with.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.train import synth_scene as sc
from gcf_ros.train.synth import NonFiniteSampleError, generate_shard, load_synth_yaml
from gcf_ros.train.synth_cli import main as synth_main
from gcf_ros.train.synth_config import LMO_DIAMETER_M, SYNTH_LEVELS, SynthConfig
from gcf_ros.train.synth_sample import SampleSynthesizer, _scaled_level

REPO = Path(__file__).resolve().parents[2]
LMO_MESHES = REPO / "data" / "models" / "lmo"
ADD_OBJECT = REPO / "config" / "train_add_object.yaml"
FLOAT_KEYS = ("render", "field", "T_true", "T_init", "K_window")


def _box_registry(folder: Path, size: tuple[float, float, float], up: str = "+z") -> Path:
    """A registry of one centred box ``size`` metres, flat brown, standing along ``up``."""
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(-np.asarray(size) / 2)
    mesh.compute_vertex_normals()
    o3d.io.write_triangle_mesh(str(folder / "box.ply"), mesh)
    path = folder / "models.yaml"
    path.write_text(
        f"models:\n  box:\n    mesh: box.ply\n    scale: 1.0\n    color: [0.6, 0.4, 0.3]\n"
        f"    up_axis: '{up}'\n"
    )
    return path


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Path:
    return _box_registry(tmp_path_factory.mktemp("bed"), (1.0, 1.0, 1.0))


def _centre_in_camera(T: np.ndarray, model) -> np.ndarray:
    centre = (model.bbox_min.astype(np.float64) + model.bbox_max) / 2
    return T[:3, :3] @ centre + T[:3, 3]


def test_bed_sized_model_gives_finite_samples_of_its_apparent_size(bed):
    config = SynthConfig()  # the defaults: distances, clutter and noise from the model's size
    model = ModelRegistry.from_yaml(bed).get("box")
    data = generate_shard(config, bed, seed=3, n=6)
    for key in FLOAT_KEYS:
        assert np.isfinite(data[key].astype(np.float64)).all(), key
    side = min(config.image_width, config.image_height)
    lo, hi = config.apparent_size_range
    fx_lo, fx_hi = config.fx_range
    S = config.window_size
    for T, K in zip(data["T_true"].astype(np.float64), data["K_window"], strict=True):
        distance = float(np.linalg.norm(_centre_in_camera(T, model)))
        # the sample's fx lies in fx_range: its diameter spans [lo, hi] of the image's side
        assert fx_lo * model.diameter / (distance * side) <= hi + 1e-6
        assert fx_hi * model.diameter / (distance * side) >= lo - 1e-6
        corners = model.bbox_corners_obj.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        assert corners[:, 2].min() > 0.05  # the whole box in front of the camera
        uv = corners @ K.astype(np.float64).T
        uv = uv[:, :2] / uv[:, 2:]
        extent = float((uv.max(0) - uv.min(0)).max())
        assert 0.3 * S < extent < 2.0 * S, extent  # the window follows the box (padding 1.3)
    # The LM-O distances put most of a 1 m box behind the camera: refused up front, not written.
    with pytest.raises(ValueError, match=r"too near for model 'box'.*distance_range: auto"):
        generate_shard(SynthConfig(distance_range=(0.35, 1.5)), bed, seed=3, n=1)


def test_auto_scales_follow_the_diameter(bed):
    config = SynthConfig()
    # "auto" at the mean LM-O size and fx is the shipped absolute range
    near, far = config.distances_for(LMO_DIAMETER_M, 570.0)
    assert near == pytest.approx(0.35, rel=0.01) and far == pytest.approx(1.5, rel=0.01)
    assert config.scale_for("clutter_scale", 10 * LMO_DIAMETER_M) == pytest.approx(10.0)
    assert SynthConfig(noise_xy_scale=1.0).scale_for("noise_xy_scale", 1.7) == 1.0
    synth = SampleSynthesizer(bed)
    level = _scaled_level(config, SYNTH_LEVELS["large"], synth.models[0])
    assert level.sigma_xy_m == pytest.approx(0.04 * synth.models[0].diameter / LMO_DIAMETER_M)
    rng = np.random.default_rng(0)
    diameters = [synth._pick(rng, 0, 6.0)[0].diameter for _ in range(20)]  # primitives only
    base = sorted(p.diameter for p in synth.primitives)
    assert min(diameters) >= 6.0 * base[0] - 1e-9 and max(diameters) <= 6.0 * base[-1] + 1e-9
    with pytest.raises(ValueError, match="clutter_scale"):
        SynthConfig(clutter_scale=0.0)
    with pytest.raises(ValueError, match="distance_range"):
        SynthConfig(distance_range="near")


def _elevations_deg(T: np.ndarray, model, axis: np.ndarray) -> float:
    """Elevation of the camera over the plane normal to ``axis`` (object frame), degrees."""
    centre = _centre_in_camera(T, model)
    to_camera = T[:3, :3].T @ (-centre / np.linalg.norm(centre))
    return math.degrees(math.asin(float(to_camera @ axis)))


def test_y_up_model_is_viewed_from_above_its_up_axis(tmp_path):
    registry = _box_registry(tmp_path, (0.06, 0.2, 0.08), up="+y")
    model = ModelRegistry.from_yaml(registry).get("box")
    assert np.allclose(model.up_axis, (0.0, 1.0, 0.0))
    K = np.array([[570.0, 0.0, 319.5], [0.0, 570.0, 239.5], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(1)
    poses = [sc.sample_true_pose(rng, model, K, 640, 480, (0.4, 1.0), 1.0) for _ in range(200)]
    over_y = [_elevations_deg(T, model, np.array([0.0, 1.0, 0.0])) for T in poses]
    over_z = [_elevations_deg(T, model, np.array([0.0, 0.0, 1.0])) for T in poses]
    assert min(over_y) >= -10.0 - 1e-6
    assert min(over_z) < -45.0  # not the +z hemisphere
    # the generator itself (upper_hemisphere_prob 1): its true poses look down the +y axis
    config = SynthConfig(window_size=16, upper_hemisphere_prob=1.0)
    data = generate_shard(config, registry, seed=5, n=4)
    for T in data["T_true"].astype(np.float64):
        assert _elevations_deg(T, model, np.array([0.0, 1.0, 0.0])) >= -10.0 - 1e-3


def test_non_finite_sample_stops_synthesis_with_index_and_cause(tmp_path, monkeypatch, capsys):
    from gcf_ros.train import synth_sample

    calls = {"n": 0}
    real = synth_sample.true_field

    def fourth_field_has_a_nan(*args, **kwargs):
        field = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # sample 3 of the set: the second sample of shard 1
            field = field.clone()
            field[0, 0, 0, 0] = torch.nan
        return field

    monkeypatch.setattr(synth_sample, "true_field", fourth_field_has_a_nan)
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  obj_000001: {{mesh: {LMO_MESHES}/obj_000001.ply, "
                        "scale: 0.001}\n")  # fmt: skip
    config = tmp_path / "train.yaml"
    config.write_text(f"models: {registry}\nsynth: {{window_size: 16}}\n")
    out = tmp_path / "set"
    args = ["--config", str(config), "--out", str(out), "--num", "6", "--shard-size", "2"]
    assert synth_main([*args, "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shard_00001.npz: sample 3" in err and "'obj_000001'" in err, err
    assert "field: 1 of 512 values non-finite" in err, err
    assert (out / "shard_00000.npz").is_file() and not (out / "shard_00001.npz").exists()
    assert '"complete": false' in (out / "manifest.json").read_text()
    calls["n"] = 3  # the next field is bad: the first sample of a shard
    with pytest.raises(NonFiniteSampleError, match="sample 0 "):
        generate_shard(SynthConfig(window_size=16), registry, seed=0, n=2)


def test_lmo_configs_keep_their_absolute_lengths():
    """Every shipped config draws the LM-O models at 0.35-1.5 m with unscaled clutter and noise
    (their data sets stay reproducible); "auto" is the default only for new configs."""
    assert SynthConfig().distance_range == "auto"
    # train_add_object.yaml is a new object's config (README, "Adding your own object"): "auto"
    configs = sorted(set((REPO / "config").glob("train*.yaml")) - {ADD_OBJECT})
    assert len(configs) >= 10
    models = None
    for path in configs:
        config, registry = load_synth_yaml(path)
        assert config.distance_range == (0.35, 1.5), path.name
        assert (config.clutter_scale, config.noise_xy_scale) == (1.0, 1.0), path.name
        if models is None:
            lmo = ModelRegistry.from_yaml(registry)
            models = [lmo.get(i) for i in lmo.ids]
        for model in models:
            for fx in config.fx_range:
                K = np.diag([fx, fx, 1.0])
                assert sc.distance_range(config, model, K) == (0.35, 1.5), (path.name, model)
            assert config.scale_for("clutter_scale", model.diameter) == 1.0


def test_a_set_begun_before_the_size_keys_resumes(tmp_path):
    """A manifest without the size keys and model_weights (an older generator) resumes with the
    LM-O config that pins them to what that generator drew; another distance range does not."""
    import dataclasses
    import json

    from gcf_ros.train.synth import write_shards

    config = dataclasses.replace(SynthConfig.from_yaml(REPO / "config" / "train.yaml"),
                                 window_size=16)  # fmt: skip
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  obj_000001: {{mesh: {LMO_MESHES}/obj_000001.ply, "
                        "scale: 0.001}\n")  # fmt: skip
    out = tmp_path / "set"
    write_shards(config, registry, out, 1, shard_size=1, workers=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("apparent_size_range", "clutter_scale", "noise_xy_scale", "model_weights"):
        del manifest["config"][key]
    (out / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    again = write_shards(config, registry, out, 1, shard_size=1, workers=1, progress=False)
    assert (again.generated, again.skipped) == (0, 1)
    other = dataclasses.replace(config, distance_range=(0.4, 1.5))
    with pytest.raises(ValueError, match="config differ"):
        write_shards(other, registry, out, 1, shard_size=1, workers=1, progress=False)


def test_model_weights_split_the_samples_and_name_known_models(tmp_path):
    """No model_weights: uniform, drawn as before the key existed. {hammer: 8} beside the eight
    LM-O models: half the samples are the hammer; a weight 0 never draws its model."""
    lmo_ids = ModelRegistry.from_yaml(REPO / "config" / "models.yaml").ids
    ids = (*lmo_ids, "hammer")
    assert SynthConfig().model_probabilities(ids) is None
    config, registry = load_synth_yaml(ADD_OBJECT)
    probs = config.model_probabilities(ids)
    assert probs[-1] == pytest.approx(0.5) and probs[:-1] == pytest.approx([1 / 16] * 8)
    assert config.distance_range == "auto" and set(ModelRegistry.from_yaml(registry).ids) == {*ids}
    with pytest.raises(ValueError, match=r"unknown model id\(s\) \['mug'\]"):
        SynthConfig(model_weights={"mug": 2}).model_probabilities(ids)
    with pytest.raises(ValueError, match="leave no model"):
        SynthConfig(model_weights=dict.fromkeys(ids, 0)).model_probabilities(ids)
    with pytest.raises(ValueError, match=">= 0"):
        SynthConfig(model_weights={"hammer": -1})
    (tmp_path / "box").mkdir()
    two = tmp_path / "models.yaml"
    two.write_text(f"include: [{_box_registry(tmp_path / 'box', (0.1, 0.1, 0.1))}]\nmodels:\n"
                   f"  ape: {{mesh: {LMO_MESHES}/obj_000001.ply, unit: mm}}\n")  # fmt: skip
    only_box = SynthConfig(window_size=16, model_weights={"ape": 0})
    data = generate_shard(only_box, two, seed=0, n=6)
    assert [str(data["model_ids"][i]) for i in data["model_idx"]] == ["box"] * 6
    with pytest.raises(ValueError, match="unknown model id"):
        generate_shard(SynthConfig(window_size=16, model_weights={"mug": 1}), two, seed=0, n=1)
