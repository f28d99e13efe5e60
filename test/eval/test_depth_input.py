"""gcf-eval --depth on a tiny simulated copy of LM-O (3 frames made by gcf-simdepth): which depth
image each frame gets (late, thinned), what the methods receive, and the results header."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gcf_ros.core.bop import BopDataset
from gcf_ros.eval import cli
from gcf_ros.eval.depth_input import DepthInput, DepthSettings
from gcf_ros.eval.methods import MethodOutput
from gcf_ros.eval.simdepth_cli import main as simdepth_main


@pytest.fixture(scope="module")
def sim3(lmo_root, tmp_path_factory):
    """A BOP copy of the first 3 LM-O frames with simulated depth."""
    out = tmp_path_factory.mktemp("sim") / "lmo3"
    assert simdepth_main(["--dataset", str(lmo_root), "--out", str(out), "--max-frames", "3"]) == 0
    return out


@pytest.fixture(scope="module")
def frames(sim3):
    return list(BopDataset(sim3).frames())


def test_without_lag_or_drop_each_frame_gets_its_own_depth(sim3, frames):
    depth = DepthInput(BopDataset(sim3), DepthSettings())
    for frame in frames:
        np.testing.assert_array_equal(depth.depth_for(frame), frame.load_depth())
    assert depth.header() == {"depth": True, "depth_drop": 0.0, "depth_lag": 0}


@pytest.mark.parametrize(("lag", "sources"), [(1, [0, 0, 1]), (2, [0, 0, 0]), (5, [0, 0, 0])])
def test_a_late_depth_is_that_of_an_earlier_frame(sim3, frames, lag, sources):
    """Frame k gets frame max(k - lag, 0)'s depth (im_id order within the scene)."""
    depth = DepthInput(BopDataset(sim3), DepthSettings(lag_frames=lag))
    for frame, k in zip(frames, sources, strict=True):
        assert depth.source_frame(frame).im_id == frames[k].im_id
        np.testing.assert_array_equal(depth.depth_for(frame), frames[k].load_depth())


def test_dropped_pixels_are_that_fraction_of_the_valid_ones_and_seeded(sim3, frames):
    full = frames[1].load_depth()
    valid = full > 0
    thinned = DepthInput(BopDataset(sim3), DepthSettings(drop_fraction=0.3, seed=4))
    out = thinned.depth_for(frames[1])
    assert (out > 0).sum() == valid.sum() - round(0.3 * valid.sum())
    np.testing.assert_array_equal(out[out > 0], full[out > 0])  # the rest untouched
    np.testing.assert_array_equal(out, thinned.depth_for(frames[1]))  # the same every time
    other = DepthInput(BopDataset(sim3), DepthSettings(drop_fraction=0.3, seed=5))
    assert not np.array_equal(out, other.depth_for(frames[1]))


def test_settings_and_missing_depth_are_errors(lmo_root):
    with pytest.raises(ValueError, match="--depth-drop"):
        DepthSettings(drop_fraction=1.0)
    with pytest.raises(ValueError, match="--depth-lag"):
        DepthSettings(lag_frames=-1)
    with pytest.raises(FileNotFoundError, match="gcf-simdepth"):
        DepthInput(BopDataset(lmo_root), DepthSettings())


class _Recorder:
    """A method that returns the initial poses and keeps the frames it was given."""

    label = "recorder"
    uses_depth = True

    def __init__(self) -> None:
        self.frames: list = []

    def refine(self, frame, T_init) -> MethodOutput:
        self.frames.append(frame)
        return MethodOutput(np.array(T_init), np.ones(len(T_init), int), 0.0)


def _eval(sim3, tmp_path, *args) -> dict:
    out = tmp_path / "results.json"
    code = cli.main(["--dataset", str(sim3), *args, "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_gcf_eval_depth_gives_each_frame_its_depth_and_records_it(
    sim3, frames, tmp_path, monkeypatch
):
    recorder = _Recorder()
    monkeypatch.setattr(cli, "make_method", lambda args, registry: recorder)
    results = _eval(sim3, tmp_path, "--method", "none", "--depth", "--depth-drop", "0.25",
                    "--depth-lag", "1", "--seed", "2")  # fmt: skip
    assert (results["depth"], results["depth_drop"], results["depth_lag"]) == (True, 0.25, 1)
    assert results["depth_used"] is True and results["n_instances"] > 3
    expected = DepthInput(BopDataset(sim3), DepthSettings(0.25, 1, seed=2))
    assert len(recorder.frames) == 3
    for eval_frame, frame in zip(recorder.frames, frames, strict=True):
        assert eval_frame.depth_m.shape == eval_frame.image_rgb.shape[:2]
        np.testing.assert_array_equal(eval_frame.depth_m, expected.depth_for(frame))

    recorder.frames.clear()
    plain = _eval(sim3, tmp_path, "--method", "none")
    assert (plain["depth"], plain["depth_drop"], plain["depth_lag"]) == (False, 0.0, 0)
    assert plain["depth_used"] is False
    assert all(f.depth_m is None for f in recorder.frames)


def test_gcf_eval_depth_errors(lmo_root, sim3, capsys):
    assert cli.main(["--dataset", str(lmo_root), "--method", "none", "--depth"]) == 2
    assert "gcf-simdepth" in capsys.readouterr().err
    assert cli.main(["--dataset", str(sim3), "--method", "none", "--depth-lag", "1"]) == 2
    assert "need --depth" in capsys.readouterr().err


def test_baselines_ignore_depth_and_say_so(sim3, tmp_path):
    results = _eval(sim3, tmp_path, "--method", "none", "--depth", "--max-instances", "2")
    assert results["depth"] is True and results["depth_used"] is False


def test_gcf_method_hands_the_depth_to_the_refiner(sim3, tmp_path, one_torch_thread):
    """The gcf method with --depth (field + region + the depth term, 2 instances): the depth
    term's read-outs appear in the scores, which they do only when the refiner got depth_m."""
    args = ("--method", "gcf", "--max-instances", "2", "--iterations", "2")
    results = _eval(sim3, tmp_path, *args, "--depth")
    assert results["depth_used"] is True
    for inst in results["instances"]:
        assert 0.5 < inst["scores"]["depth_coverage"] <= 1.0
    without = _eval(sim3, tmp_path, *args)
    assert all("depth_coverage" not in i["scores"] for i in without["instances"])
