"""WeightsMeta: what weights files record, old and new, and the editor."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from gcf_ros.core.models import ModelRegistry
from gcf_ros.gcf.network import GcfNet, NetConfig, load_gcf_weights, save_gcf_weights
from gcf_ros.gcf.refiner import (
    Detection,
    Refiner,
    RefinerConfig,
    default_checkpoint,
    resolve_checkpoint,
)
from gcf_ros.gcf.weights_meta import (
    DAMPING,
    DEFAULT_WINDOW_SIZE,
    MIN_CONFIDENCE,
    ROTATION_DAMPING,
    WeightsMeta,
    edit_weights_meta,
    main,
    read_weights_meta,
)
from gcf_ros.resources import default_models_yaml


def _settings(meta: WeightsMeta) -> dict:
    return {s: (meta.damping[s], meta.rotation_damping[s]) for s in ROTATION_DAMPING}


def test_shipped_files():
    """gcf_lmo.pt records its settings (tuned, docs/results.md session 5); gcf_lmo_s64.pt records
    none: the defaults, chosen on its own validation windows, apply."""
    shipped = read_weights_meta(default_checkpoint())
    assert shipped.window_size == 128 and shipped.min_confidence == 0.003
    assert _settings(shipped) == {"gauss_newton": (0.1, 5.0), "gradient": (0.1, 20.0)}
    assert "tune_refiner.py" in shipped.note and "command" in shipped.training
    s64 = read_weights_meta(resolve_checkpoint("gcf_lmo_s64.pt"))
    assert (DEFAULT_WINDOW_SIZE, MIN_CONFIDENCE) == (64, 0.2)
    assert (s64.window_size, s64.min_confidence) == (DEFAULT_WINDOW_SIZE, MIN_CONFIDENCE)
    assert _settings(s64) == {s: (DAMPING, ROTATION_DAMPING[s]) for s in ROTATION_DAMPING}
    assert "command" in s64.training
    lmo = ModelRegistry.from_yaml(default_models_yaml()).ids
    assert shipped.trained_models == s64.trained_models == tuple(lmo)
    config = RefinerConfig.resolve(shipped, solver="gradient", iterations=3)
    assert (config.window_size, config.damping, config.rotation_damping) == (128, 0.1, 20.0)
    assert config.min_confidence == 0.003 and config.iterations == 3


def test_old_layouts_and_round_trip():
    # one damping for every solver, rotation damping for one: the other keeps its default
    old = {"command": "x", "refiner": {"damping": 0.01, "rotation_damping": {"gauss_newton": 1.0}}}
    meta = WeightsMeta.from_dict(old)
    assert _settings(meta) == {"gauss_newton": (0.01, 1.0), "gradient": (0.01, 20.0)}
    assert meta.training == {"command": "x"} and meta.min_confidence == MIN_CONFIDENCE
    assert WeightsMeta.from_dict(meta.to_dict()) == meta
    assert WeightsMeta.from_dict({}) == WeightsMeta()
    with pytest.raises(ValueError, match="settings >= 0"):
        WeightsMeta(damping={"gauss_newton": -1.0, "gradient": 0.1})
    with pytest.raises(ValueError, match="each of"):
        WeightsMeta(rotation_damping={"gauss_newton": 5.0})


def test_editor_rewrites_only_the_settings(tmp_path):
    path = tmp_path / "w.pt"
    shutil.copy(resolve_checkpoint("gcf_lmo_s64.pt"), path)
    before = torch.load(path, weights_only=True)
    meta = edit_weights_meta(
        path, ["rotation_damping.gradient=10", "damping.gauss_newton=0.05", "min_confidence=0.01"],
        "tuned on synthetic validation",
    )  # fmt: skip
    assert _settings(meta) == {"gauss_newton": (0.05, 5.0), "gradient": (0.1, 10.0)}
    assert (meta.min_confidence, meta.window_size) == (0.01, 64)
    assert meta.note == "tuned on synthetic validation"
    assert read_weights_meta(path) == meta
    after = torch.load(path, weights_only=True)
    assert NetConfig.from_dict(after["net_config"]) == NetConfig.from_dict(before["net_config"])
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert after["meta"]["command"] == before["meta"]["command"]
    assert WeightsMeta.from_dict(after["meta"]).training == read_weights_meta(path).training
    meta = edit_weights_meta(path, ["trained_models=mug, obj_000005"], "n")
    assert meta.trained_models == ("mug", "obj_000005")
    meta = edit_weights_meta(path, ["min_confidence=0.01"], "n")
    assert meta.trained_models == ("mug", "obj_000005")  # kept by other edits
    with pytest.raises(ValueError, match=r"damping\.SOLVER"):
        edit_weights_meta(path, ["damping.newton=1"], "x")
    with pytest.raises(ValueError, match="settings >= 0"):
        edit_weights_meta(path, ["damping.gradient=-1"], "x")
    assert read_weights_meta(path) == meta  # a refused edit leaves the file


def test_results_for_a_model_the_network_never_saw_say_so(novel_registry, caplog):
    """The shipped network knows the eight LM-O models; a result for another model notes that its
    field is untrained (and the refiner warns once), whatever its status."""
    refiner = Refiner.from_checkpoint(novel_registry, overrides={"iterations": 2})
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 0.5)
    image = np.full((480, 640, 3), 90, np.uint8)
    K = np.array([[572.4, 0, 320.0], [0, 573.6, 240.0], [0, 0, 1]])
    with caplog.at_level(logging.WARNING, logger="gcf_ros.gcf.refiner"):
        (first,) = refiner.refine(image, K, [Detection("novel", T)])
        (second,) = refiner.refine(image, K, [Detection("novel", T)])
    assert "network not trained on novel: field term off" in first.status_reason
    assert first.status_reason == second.status_reason
    assert sum("not among the models the network was trained on" in r.message
               for r in caplog.records) == 1  # fmt: skip
    assert refiner.untrained_note("obj_000005") == ""
    region_only = Refiner(novel_registry, None, RefinerConfig.resolve(None, terms=("region",)))
    assert region_only.untrained_note("novel") == ""  # no field term, nothing to note
    used = Refiner.from_checkpoint(novel_registry, overrides={"untrained_field": True})
    assert used.untrained_note("novel") == "network not trained on novel: field unreliable"


def test_an_untrained_model_is_refined_without_the_field(novel_registry):
    """``untrained_field`` off (the default): whatever the network predicts for a model it was not
    trained on does not move that instance; on, it does."""
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 0.5)
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    K = np.array([[572.4, 0, 320.0], [0, 573.6, 240.0], [0, 0, 1]])
    poses = {}
    for untrained_field in (False, True):
        for shift in (0.0, 30.0):
            refiner = Refiner.from_checkpoint(
                novel_registry, overrides={"iterations": 2, "untrained_field": untrained_field}
            )
            predict = refiner.predictor.predict_with_mask

            def shifted(*args, predict=predict, shift=shift):
                field, weight, visible = predict(*args)
                return field + shift, weight, visible

            refiner.predictor.predict_with_mask = shifted
            (res,) = refiner.refine(image, K, [Detection("novel", T)])
            poses[untrained_field, shift] = res.T_cam_obj
    assert np.array_equal(poses[False, 0.0], poses[False, 30.0])
    assert np.abs(poses[True, 0.0] - poses[True, 30.0]).max() > 1e-3


def test_command_line(tmp_path, capsys):
    path = tmp_path / "w.pt"
    save_gcf_weights(path, GcfNet(NetConfig(widths=(8, 8, 8, 8))), {"window_size": 48})
    assert main([str(path)]) == 0
    assert '"window_size": 48' in capsys.readouterr().out
    assert main([str(path), "--set", "min_confidence=0.05"]) == 2  # no --note
    assert main([str(path), "--set", "min_confidence=0.05", "--note", "n"]) == 0
    assert load_gcf_weights(path)[1]["refiner"]["min_confidence"] == 0.05
    assert main([str(tmp_path / "absent.pt")]) == 2
