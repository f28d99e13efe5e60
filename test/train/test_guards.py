"""Training guards: the shipped weights folder, default export paths, non-finite checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gcf_ros.resources import share_dir
from gcf_ros.train.guards import (
    NonFiniteError,
    check_export_path,
    check_finite_record,
    check_finite_state,
    non_finite_counts,
    shipped_weights_dirs,
)
from gcf_ros.train.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_weights_folders_are_refused():
    dirs = shipped_weights_dirs()
    assert (REPO / "weights").resolve() in dirs and (share_dir() / "weights").resolve() in dirs
    for path in (
        REPO / "weights" / "gcf_lmo.pt",  # a shipped file
        REPO / "weights" / "new.pt",  # a new file in the shipped folder
        REPO / "runs" / ".." / "weights" / "gcf_lmo_s64.pt",  # a detour
        share_dir() / "weights" / "gcf_lmo.pt",
    ):
        with pytest.raises(ValueError, match="--overwrite-shipped"):
            check_export_path(path)
        check_export_path(path, overwrite_shipped=True)  # asked for explicitly
    check_export_path(REPO / "runs" / "gcf_lmo" / "gcf_lmo.pt")
    check_export_path(REPO / "weights_backup" / "gcf.pt")  # only the folder itself


def test_default_exports_go_under_runs():
    assert TrainConfig().export.startswith("runs/")
    configs = sorted((REPO / "config").glob("train*.yaml"))
    assert len(configs) >= 10
    for path in configs:
        train = yaml.safe_load(path.read_text())["train"]
        assert train["export"].startswith("runs/"), path.name
        assert train["out_dir"].startswith("runs/"), path.name
        check_export_path(REPO / train["export"])


def test_non_finite_checks():
    assert non_finite_counts({"a": torch.tensor([1.0, float("nan"), float("inf")]),
                              "b": torch.ones(3), "c": None, "d": torch.ones(2, dtype=torch.uint8)}
                             ) == {"a": 2}  # fmt: skip
    check_finite_record({"val_epe": 1.0, "val_pixels": 3, "name": "x"}, "validation")
    with pytest.raises(NonFiniteError, match=r"validation at iteration 4: non-finite val_x = nan"):
        check_finite_record({"val_epe": 1.0, "val_x": float("nan")}, "validation at iteration 4")
    check_finite_state({"w": torch.ones(2)}, "weights")
    with pytest.raises(NonFiniteError, match=r"weights: 1 tensors .*w \(1\)"):
        check_finite_state({"w": torch.tensor([0.0, float("inf")]), "v": torch.ones(1)}, "weights")
