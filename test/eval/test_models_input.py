"""gcf-eval on any BOP folder: --dataset-unit, --models, --model-id (gcf_ros.eval.models_input),
end to end on the tiny BOP folder of test/conftest.py, and the symmetries reaching the metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.cli import main
from gcf_ros.eval.harness import EvalConfig, evaluate, select_instances
from gcf_ros.eval.methods import MethodOutput
from gcf_ros.eval.models_input import parse_model_ids
from gcf_ros.eval.symmetry_match import _rotation_about

ERRORS = ("rot_deg", "trans_cm", "proj_px", "add_m", "add_sym_m")


def _eval(tmp_path: Path, root: Path, *args: str) -> dict:
    out = tmp_path / "results.json"
    code = main(["--dataset", str(root), "--method", "none", "--min-visib", "0", *args,
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


def _errors(results: dict) -> np.ndarray:
    return np.array([[i["initial"][k] for k in ERRORS] for i in results["instances"]])


def _registry_yaml(tiny_bop: Path, path: Path, symmetries: bool = True) -> Path:
    """The tiny folder's two meshes as a registry of our own: ids box and can, unit m."""
    info = json.loads((tiny_bop / "models/models_info.json").read_text())
    box = {"discrete": info["1"]["symmetries_discrete"], "unit": "m"}
    can = {"discrete": info["2"]["symmetries_discrete"], "unit": "m",
           "continuous": info["2"]["symmetries_continuous"][0]}  # fmt: skip
    models = {
        name: {"mesh": str(tiny_bop / f"models/obj_{i:06d}.ply"), "unit": "m",
               **({"symmetry": sym} if symmetries else {})}
        for name, i, sym in (("box", 1, box), ("can", 2, can))
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def test_a_metre_dataset_evaluates_as_its_millimetre_copy(tiny_bop, tiny_bop_mm, tmp_path):
    """The tiny scene in metres with --dataset-unit m gives the errors of the same scene in
    millimetres read with the default unit: the unit reaches poses, meshes and models_info."""
    in_m = _eval(tmp_path, tiny_bop, "--dataset-unit", "m")
    in_mm = _eval(tmp_path, tiny_bop_mm)
    assert in_m["n_instances"] == in_mm["n_instances"] == 4
    np.testing.assert_allclose(_errors(in_m), _errors(in_mm), rtol=1e-5, atol=1e-9)
    trans = _errors(in_m)[:, 1]
    assert 0.1 < np.median(trans) < 10.0  # medium noise: centimetres, not metres or microns
    assert in_m["config"]["dataset_unit"] == "m"


def test_models_from_a_registry_yaml_or_models_info(tiny_bop, tmp_path):
    """--models REGISTRY.yaml with --model-id maps, and --models FOLDER/models_info.json, give
    the errors of the dataset's own models/ (same meshes, same symmetries)."""
    default = _errors(_eval(tmp_path, tiny_bop, "--dataset-unit", "m"))
    reg = _registry_yaml(tiny_bop, tmp_path / "models.yaml")
    mapped = ("--model-id", "1=box", "--model-id", "2=can")
    own = _eval(tmp_path, tiny_bop, "--dataset-unit", "m", "--models", str(reg), *mapped)
    np.testing.assert_allclose(_errors(own), default, rtol=1e-9)
    assert own["config"]["models"] == str(reg)
    info = str(tiny_bop / "models/models_info.json")
    np.testing.assert_allclose(
        _errors(_eval(tmp_path, tiny_bop, "--dataset-unit", "m", "--models", info)), default
    )


def _oracle_of_symmetries(turn_deg: float):
    """A method that returns each ground truth turned by a symmetry: the box half a turn about
    z (one of its discrete symmetries), the cylinder ``turn_deg`` about its axis."""

    class Oracle:
        label = "symmetric oracle"

        def refine(self, frame, T_init):
            T = frame.T_gt_all[frame.refine_idx].copy()
            for b, m in enumerate(frame.models):
                box = m.model_id in ("obj_000001", "box")
                angle = np.pi if box else np.radians(turn_deg)
                T[b] = T[b] @ _rotation_about(np.array([0.0, 0.0, 1.0]), np.zeros(3), angle)
            return MethodOutput(T, np.ones(len(T), int), 0.0)

    return Oracle()


@pytest.mark.parametrize("source", ["models_info", "registry"])
def test_symmetric_answers_count_as_correct(tiny_bop, tmp_path, source):
    """Poses that differ from the ground truth by a symmetry of models_info.json or of the
    registry (a box half-turned, a cylinder turned 73° about its axis) have zero rotation error
    and ADD over symmetries; with the symmetries taken away they are 180° and 73° off."""
    ids = {1: "box", 2: "can"} if source == "registry" else {}
    dataset = BopDataset(tiny_bop, unit="m", model_ids=ids)
    if source == "registry":
        registry = ModelRegistry.from_yaml(_registry_yaml(tiny_bop, tmp_path / "r.yaml"))
    else:
        registry = dataset.model_registry()
    plain = ModelRegistry.from_yaml(_registry_yaml(tiny_bop, tmp_path / "p.yaml", False))
    selected = select_instances(dataset, registry, EvalConfig(tiny_bop, min_visib=0.0))
    records = evaluate(selected, registry, _oracle_of_symmetries(73.0))
    assert len(records) == 4
    for r in records:
        assert r.refined.rot_deg == pytest.approx(0.0, abs=1e-6)
        assert r.refined.trans_cm == pytest.approx(0.0, abs=1e-9)
        assert r.refined.add_sym_m == pytest.approx(0.0, abs=1e-9)
        assert r.refined.proj_px < 1e-6
    dataset = BopDataset(tiny_bop, unit="m", model_ids={1: "box", 2: "can"})
    selected = select_instances(dataset, plain, EvalConfig(tiny_bop, min_visib=0.0))
    records = evaluate(selected, plain, _oracle_of_symmetries(73.0))
    assert sorted(round(r.refined.rot_deg, 6) for r in records) == [73.0, 73.0, 180.0, 180.0]


def test_error_messages(tiny_bop, tmp_path, capsys):
    def run(*args: str) -> str:
        assert main(["--dataset", str(tiny_bop), "--method", "none", *args]) == 2
        return capsys.readouterr().err

    reg = str(_registry_yaml(tiny_bop, tmp_path / "models.yaml"))
    err = run("--dataset-unit", "m", "--models", reg, "--model-id", "1=box")
    assert "models.yaml: no model for BOP object(s) 2 ('obj_000002')" in err
    assert "['box', 'can']" in err and "--model-id N=ID" in err
    assert "expected OBJ_ID=MODEL_ID" in run("--model-id", "box")
    assert "nothing: not a BOP models folder" in run("--models", str(tmp_path / "nothing"))
    assert "model registry file not found" in run("--models", str(tmp_path / "none.yaml"))
    with pytest.raises(SystemExit):
        main(["--dataset", str(tiny_bop), "--method", "none", "--dataset-unit", "km"])
    assert "invalid choice: 'km'" in capsys.readouterr().err


def test_parse_model_ids():
    assert parse_model_ids(["1=box", " 2 = can ", "1=box"]) == {1: "box", 2: "can"}
    for bad in ("1", "x=box", "-1=box", "3="):
        with pytest.raises(ValueError, match="expected OBJ_ID=MODEL_ID"):
            parse_model_ids([bad])
    with pytest.raises(ValueError, match="object 1 mapped twice: 'box', 'can'"):
        parse_model_ids(["1=box", "1=can"])
