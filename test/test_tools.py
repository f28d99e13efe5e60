"""The console tools: gcf-render and gcf-demo on the shipped demo frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gcf_ros.resources import demo_frame_json, share_dir
from gcf_ros.ros import demo
from gcf_ros.tools import render_cli


def _demo_args(tmp_path, with_pose=True):
    meta = json.loads(demo_frame_json().read_text())
    inst = meta["instances"][1]  # the can
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.reshape(inst["cam_R_m2c"], (3, 3))).as_quat()  # x, y, z, w
    t = np.array(inst["cam_t_m2c_mm"]) / 1000
    K = np.reshape(meta["cam_K"], (3, 3))
    args = [
        "--image", str(demo_frame_json().parent / meta["image"]),
        "--mesh", str(share_dir() / "data/models/lmo/obj_000005.ply"), "--scale", "0.001",
        "--K", f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}", "--out", str(tmp_path / "out.png"),
    ]  # fmt: skip
    if with_pose:
        args += ["--pose", " ".join(f"{v:.8f}" for v in (*q, *t))]
    return args


def test_gcf_render_draws_the_outline_on_the_object(tmp_path):
    assert render_cli.main(_demo_args(tmp_path)) == 0
    out = cv2.imread(str(tmp_path / "out.png"))
    src = cv2.imread(_demo_args(tmp_path)[1])
    changed = np.any(out != src, axis=-1)
    rows, cols = np.nonzero(changed)
    # The can's ground-truth box (scene_gt_info bbox_obj of this instance) holds the drawing.
    assert changed.sum() > 200
    assert 330 < np.median(cols) < 480 and 180 < np.median(rows) < 330


def test_gcf_render_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        render_cli.main([*_demo_args(tmp_path, with_pose=False), "--pose", "1 2 3"])
    assert "qx qy qz qw tx ty tz" in capsys.readouterr().err
    args = _demo_args(tmp_path)
    args[args.index("--image") + 1] = str(tmp_path / "missing.png")
    assert render_cli.main(args) == 2


def test_gcf_demo_runs_the_node_on_the_bundled_sequence(tmp_path, capsys):
    """The README's demo: gcf_refiner in its own process, the player publishing the four bundled
    LM-O frames; every instance comes back, overlays are written, and the refiner improves the
    poses it prints. Requirement: the median 2D error of the 30 instances (medium noise, seed 0)
    falls to at most 0.55x the coarse one; today 14.74 -> 5.50 px (x0.37; the field term alone
    x0.41), a refiner that does nothing gives x1.0, swapped colour channels x0.67."""
    assert demo.main(["--out", str(tmp_path)]) == 0
    frames = json.loads((share_dir() / "data" / "demo" / "sequence.json").read_text())["frames"]
    for name in frames:
        overlay = cv2.imread(str(tmp_path / name.replace(".json", "_overlay.png")))
        assert overlay is not None and overlay.shape == (480, 640, 3)
    rows = json.loads((tmp_path / "results.json").read_text())["instances"]
    assert len(rows) >= 20 and {r["frame"] for r in rows} == {Path(f).stem for f in frames}
    assert all(r["tf"] == (r["status"] != "REJECTED") for r in rows)
    before, after = (np.median([r[stage][2] for r in rows]) for stage in ("before", "after"))
    assert after < 0.55 * before, (before, after)
    assert all(r["iterations"] >= 1 for r in rows)
    assert "median over" in capsys.readouterr().out
