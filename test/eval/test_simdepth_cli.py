"""gcf-simdepth on the first LM-O frames: the BOP layout it writes reads back as simulated depth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gcf_ros.core.bop import BopDataset
from gcf_ros.eval.simdepth import DepthNoise
from gcf_ros.eval.simdepth_cli import frame_depth, main


@pytest.fixture(scope="module")
def copy2(lmo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("simdepth") / "lmo_sim"
    assert main(["--dataset", str(lmo_root), "--out", str(out), "--max-frames", "2",
                 "--seed", "3"]) == 0  # fmt: skip
    return out


def test_copy_has_the_bop_layout_and_reads_back(copy2, lmo_root):
    source = BopDataset(lmo_root)
    first = list(source.frames())[:2]
    ds = BopDataset(copy2)
    frames = list(ds.frames())
    assert [(f.scene_id, f.im_id) for f in frames] == [(f.scene_id, f.im_id) for f in first]
    registry = source.model_registry()
    for frame, src in zip(frames, first, strict=True):
        assert frame.rgb_path.is_symlink() and frame.rgb_path.resolve() == src.rgb_path.resolve()
        np.testing.assert_array_equal(frame.K, src.K)
        assert frame.depth_scale == 1.0
        assert [i.obj_id for i in frame.instances] == [i.obj_id for i in src.instances]
        assert [i.visib_fract for i in frame.instances] == [i.visib_fract for i in src.instances]
        depth = frame.load_depth(required=True)
        expected = frame_depth(src, registry, 3, DepthNoise())  # the same per-frame seed
        np.testing.assert_allclose(depth, expected, atol=1e-6)
        assert 0.5 < (depth > 0).mean() < 1.0  # the table and objects, with holes
    scene = copy2 / "test" / "000002"
    assert len(json.loads((scene / "scene_gt.json").read_text())) == 2
    assert (copy2 / "models").is_symlink() and (copy2 / "camera.json").is_symlink()
    readme = (copy2 / "README.txt").read_text()
    assert "SIMULATED depth" in readme and "seed: 3" in readme and "sigma_base_m: 0.0012" in readme


def test_refuses_an_existing_folder_and_copies_on_request(copy2, lmo_root, tmp_path, capsys):
    assert main(["--dataset", str(lmo_root), "--out", str(copy2)]) == 2
    assert "exists" in capsys.readouterr().err
    out = tmp_path / "exact"
    args = ["--dataset", str(lmo_root), "--out", str(out), "--max-frames", "1", "--copy", "--exact"]
    assert main(args) == 0
    frame = next(BopDataset(out).frames())
    assert frame.rgb_path.is_file() and not frame.rgb_path.is_symlink()
    depth = frame.load_depth()
    assert (depth > 0).mean() > 0.99  # no holes, no edges dropped: only pixels off the table


def test_a_metre_dataset_gets_the_depth_scale_of_its_unit(tiny_bop, tmp_path):
    """The PNGs hold millimetres; for a dataset in metres depth_scale is 0.001, so the copy's
    depth reads back in metres as the exact simulated depth (1 mm steps)."""
    out = tmp_path / "sim"
    assert main(["--dataset", str(tiny_bop), "--dataset-unit", "m", "--out", str(out),
                 "--exact"]) == 0  # fmt: skip
    source, copy = BopDataset(tiny_bop, unit="m"), BopDataset(out, unit="m")
    registry = source.model_registry()
    for frame, src in zip(copy.frames(), source.frames(), strict=True):
        assert frame.depth_scale == 0.001 and (frame.width, frame.height) == (src.width, src.height)
        expected = frame_depth(src, registry, 0, DepthNoise.ideal())
        np.testing.assert_allclose(frame.load_depth(required=True), expected, atol=6e-4)
        assert (expected > 0.3).mean() > 0.5  # the table plane, metres away
    assert "depth_scale 0.001: the dataset unit is m" in (out / "README.txt").read_text()
