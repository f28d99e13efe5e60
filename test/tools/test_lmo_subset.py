"""scripts/lmo_subset.py: a copy of LM-O's frames A-B in which gcf-eval's protocol selects the same
instances, with the same initial poses, as in the full set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.cli import frame_range
from gcf_ros.eval.harness import EvalConfig, select_instances
from gcf_ros.resources import default_models_yaml

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("lmo_subset", ROOT / "scripts" / "lmo_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _protocol(root: Path, frames: str) -> list:
    """(scene, image, instance, initial pose) as gcf-eval selects them (the packaged registry
    stands in for the models: LM-O's visibilities come from scene_gt_info.json)."""
    dataset = BopDataset(root)
    registry = ModelRegistry.from_yaml(default_models_yaml())
    selected = select_instances(dataset, registry, EvalConfig(root, "medium", 0))
    return [(f.scene_id, f.im_id, inst.inst_idx, T0)
            for f, inst, _, T0 in frame_range(selected, dataset, frames)]  # fmt: skip


def test_the_subset_selects_the_same_instances(lmo_root: Path, tmp_path: Path):
    out = tmp_path / "lmo_51_52"
    info = _script().write_subset(lmo_root, out, "51-52")
    assert info["n_frames"] == 2 and info["images"] == 2 and info["im_ids"][0] == 283
    full, subset = _protocol(lmo_root, "51-52"), _protocol(out, "51-52")
    assert [s[:3] for s in subset] == [s[:3] for s in full] and len(full) > 0
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(full, subset, strict=True))
    dataset, full_set = BopDataset(out), BopDataset(lmo_root)
    for im_id in info["im_ids"]:
        frame = dataset.frame(2, im_id)
        assert np.array_equal(frame.load_rgb(), full_set.frame(2, im_id).load_rgb())
    assert not dataset.frame(2, 3).rgb_path.exists()  # frame 1: annotations only
    assert (out / "models" / "models_info.json").read_bytes() == (
        lmo_root / "models" / "models_info.json"
    ).read_bytes()
    assert not list((out / "models").glob("*.ply"))
    with pytest.raises(FileExistsError):
        _script().write_subset(lmo_root, out, "51-52")
