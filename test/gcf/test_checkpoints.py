"""Checkpoint names resolve the same way in every command, from any current folder
(gcf_ros.gcf.checkpoints): gcf-eval --checkpoint and the API here, the node's checkpoint parameter
in test/ros/test_params.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gcf_ros.eval.cli import main as gcf_eval
from gcf_ros.gcf.checkpoints import (
    default_checkpoint,
    find_checkpoint,
    resolve_checkpoint,
    shipped_checkpoints,
)
from gcf_ros.gcf.refiner import Refiner

SHIPPED = default_checkpoint().parent


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A current folder outside the repository."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_names_paths_and_missing_files(elsewhere):
    assert shipped_checkpoints() == ("gcf_lmo.pt", "gcf_lmo_s64.pt")
    assert find_checkpoint(None) == find_checkpoint("") == default_checkpoint()
    assert find_checkpoint("gcf_lmo_s64.pt") == SHIPPED / "gcf_lmo_s64.pt"
    assert find_checkpoint(SHIPPED / "gcf_lmo.pt") == SHIPPED / "gcf_lmo.pt"
    (elsewhere / "gcf_lmo_s64.pt").write_bytes(b"mine")  # a file in the current folder wins
    assert find_checkpoint("gcf_lmo_s64.pt") == Path("gcf_lmo_s64.pt")
    assert resolve_checkpoint("runs/gcf_lmo.pt") == Path("runs/gcf_lmo.pt")  # a path stays one
    hint = "shipped weights (by name, from any folder): gcf_lmo.pt, gcf_lmo_s64.pt"
    for missing in ("gcf_lmo_s65.pt", "runs/gcf_lmo.pt"):
        expected = re.escape(f"checkpoint {missing}: no such file; {hint}")
        with pytest.raises(FileNotFoundError, match=expected):
            find_checkpoint(missing)


def test_the_api_takes_names_from_any_folder(elsewhere):
    """(The node's ``checkpoint`` parameter: test/ros/test_params.py.)"""
    assert Refiner.from_checkpoint(None, "gcf_lmo_s64.pt").predictor.window_size == 64
    with pytest.raises(FileNotFoundError, match=r"gcf_lmo_s65\.pt: no such file; shipped"):
        Refiner.from_checkpoint(None, "gcf_lmo_s65.pt")


def test_gcf_eval_takes_names_from_any_folder(elsewhere, tiny_bop, capsys, one_torch_thread):
    """gcf-eval --checkpoint gcf_lmo_s64.pt outside the repository: the shipped S = 64 network
    refines (one instance of the tiny folder, two iterations); a wrong name lists the shipped."""
    args = ["--dataset", str(tiny_bop), "--dataset-unit", "m", "--method", "gcf",
            "--max-instances", "1", "--min-visib", "0", "--iterations", "2"]  # fmt: skip
    assert gcf_eval([*args, "--checkpoint", "gcf_lmo_s64.pt", "--out", "r.json"]) == 0
    results = json.loads((elsewhere / "r.json").read_text())
    assert results["n_instances"] == 1 and results["instances"][0]["iterations"] >= 1
    assert results["config"]["checkpoint"] == "gcf_lmo_s64.pt"
    capsys.readouterr()
    assert gcf_eval([*args, "--checkpoint", "gcf_lmo_s65.pt"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"gcf_lmo_s65\.pt: no such file; .*gcf_lmo\.pt, gcf_lmo_s64\.pt", err)
