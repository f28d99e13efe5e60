"""The pieces of the ROS layer that need no running graph: image codec, pose and camera checks,
input parsing, stamp matching, the newest-frame worker, tracks, parameters, statistics."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from gcf_ros.gcf.refiner import RefinerConfig, resolve_checkpoint
from gcf_ros.gcf.weights_meta import read_weights_meta
from gcf_ros.pipeline.stats import NodeStats
from gcf_ros.pipeline.tracking import Track, TrackTable
from gcf_ros.resources import share_dir
from gcf_ros.ros import image_codec
from gcf_ros.ros.conversions import (
    BadInputError,
    camera_info_to_model,
    check_image_size,
    fill_pose,
    pose_to_matrix,
)
from gcf_ros.ros.inputs import parse_coarse
from gcf_ros.ros.params import NodeParams
from gcf_ros.ros.sync import FrameSync
from gcf_ros.ros.worker import LatestQueueWorker


def _pose(x=0.0, y=0.0, z=0.8, q=(0.0, 0.0, 0.0, 1.0)):
    return SimpleNamespace(
        position=SimpleNamespace(x=x, y=y, z=z),
        orientation=SimpleNamespace(x=q[0], y=q[1], z=q[2], w=q[3]),
    )


# ------------------------------------------------------------------------------ image codec
@pytest.mark.parametrize("encoding", list(image_codec.ENCODINGS))
@pytest.mark.parametrize("pad", [0, 5])
def test_own_converter_decodes_every_encoding_with_row_padding(encoding, pad):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb[...] = rgb[..., :1]
    channels, order = image_codec.ENCODINGS[encoding]
    pixels = np.zeros((7, 5, channels), np.uint8)
    for c in range(min(channels, 3)):
        pixels[..., order[c]] = rgb[..., c]
    if channels == 4:
        pixels[..., 3] = 255
    step = 5 * channels + pad
    rows = np.zeros((7, step), np.uint8)
    rows[:, : 5 * channels] = pixels.reshape(7, -1)
    msg = SimpleNamespace(encoding=encoding, height=7, width=5, step=step, data=rows.tobytes())
    np.testing.assert_array_equal(image_codec.image_to_rgb(msg, use_cv_bridge=False), rgb)


def test_converter_errors_name_the_problem():
    msg = SimpleNamespace(encoding="16UC1", height=2, width=2, step=4, data=bytes(8))
    with pytest.raises(image_codec.ImageDecodeError, match="16UC1"):
        image_codec.image_to_rgb(msg)
    with pytest.raises(image_codec.ImageDecodeError, match="bytes"):
        image_codec.decode("rgb8", 4, 4, 12, bytes(20))
    with pytest.raises(image_codec.ImageDecodeError, match="step"):
        image_codec.decode("rgb8", 4, 4, 8, bytes(64))


def test_rgb_round_trip_through_image_fields():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = image_codec.fill_image(SimpleNamespace(header=None), rgb, use_cv_bridge=False)
    np.testing.assert_array_equal(image_codec.image_to_rgb(msg, use_cv_bridge=False), rgb)


def test_cv_bridge_and_own_converter_agree():
    """Runs where cv_bridge is installed (a ROS workspace); the pip set-up has none."""
    pytest.importorskip("cv_bridge")
    from sensor_msgs.msg import Image

    bgr = np.random.default_rng(2).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    msg = Image(height=5, width=4, encoding="bgr8", step=12, data=bgr.tobytes())
    np.testing.assert_array_equal(
        image_codec.image_to_rgb(msg, use_cv_bridge=True),
        image_codec.image_to_rgb(msg, use_cv_bridge=False),
    )


# ------------------------------------------------------------------------ poses and camera
def test_pose_round_trip():
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [0.3, -1.2, 2.9]).as_matrix()
    T[:3, 3] = [0.1, -0.2, 0.9]
    reading = pose_to_matrix(fill_pose(_pose(), T))
    np.testing.assert_allclose(reading.T, T, atol=1e-12)
    assert reading.note == ""


def test_pose_checks():
    with pytest.raises(BadInputError, match="NaN") as err:
        pose_to_matrix(_pose(q=(float("nan"), 0, 0, 1)))
    assert err.value.kind == "bad_pose"
    with pytest.raises(BadInputError, match="zero quaternion"):
        pose_to_matrix(_pose(q=(0, 0, 0, 0)))
    with pytest.raises(BadInputError, match="behind the camera") as err:
        pose_to_matrix(_pose(z=-0.5), min_depth_m=0.05)
    assert err.value.kind == "behind_camera"
    reading = pose_to_matrix(_pose(q=(0, 0, 0, 2.0)))
    assert "normalised" in reading.note
    np.testing.assert_allclose(reading.T[:3, :3], np.eye(3))


def _info(k, d=(0.0,) * 5, w=640, h=480):
    return SimpleNamespace(k=list(k), d=list(d), width=w, height=h,
                           header=SimpleNamespace(frame_id="cam"))  # fmt: skip


def test_camera_info_checks():
    K = [572.4, 0, 325.3, 0, 573.6, 242.0, 0, 0, 1]
    cam = camera_info_to_model(_info(K))
    assert cam.K[0, 0] == 572.4 and not cam.distorted
    assert camera_info_to_model(_info(K, d=(0.1, 0, 0, 0, 0))).distorted
    with pytest.raises(BadInputError, match="focal"):
        camera_info_to_model(_info([0.0] * 9))
    with pytest.raises(BadInputError, match="NaN"):
        camera_info_to_model(_info([float("nan"), *K[1:]]))
    with pytest.raises(BadInputError, match="far outside") as err:  # every rule of the core check
        camera_info_to_model(_info(K, w=160, h=120))
    assert err.value.kind == "bad_camera_info"
    with pytest.raises(BadInputError, match="320 x 240"):
        check_image_size(cam, 320, 240)
    with pytest.raises(BadInputError, match="missing") as err:  # no size: never trusted
        camera_info_to_model(_info(K, w=0, h=0))
    assert err.value.kind == "bad_camera_info"


def test_coarse_detection_parsing():
    def det(model_id, instance_id="", pose=None, has_pose=True):
        return SimpleNamespace(model_id=model_id, instance_id=instance_id, score=0.9,
                               pose=pose or _pose(), has_pose=has_pose)  # fmt: skip

    msg = SimpleNamespace(detections=[
        det("obj_000005"), det("obj_999"), det("obj_000006", "a", _pose(z=-1.0)),
        det("obj_000006", "b", has_pose=False), det("obj_000005", "0"),
    ])  # fmt: skip
    seeds, refused = parse_coarse(msg, {"obj_000005", "obj_000006"}, 0.05)
    assert [(s.model_id, s.instance_id) for s in seeds] == [("obj_000005", "0"),
                                                            ("obj_000006", "b")]  # fmt: skip
    assert seeds[1].T_cam_obj is None
    assert [r.kind for r in refused] == ["unknown_model", "behind_camera", "duplicate_instance"]


# ---------------------------------------------------------------------------------- sync
def test_sync_matches_within_slop_and_waits_for_late_images():
    sync: FrameSync[str, str] = FrameSync(slop=0.01, image_buffer=3, pending_size=2, max_age=1.0)
    assert sync.add_image(1.0, "img1").matched == []
    assert sync.add_detections(1.005, "d1").matched == [("img1", "d1")]
    assert sync.add_detections(1.2, "d2").matched == []  # its image has not come yet
    assert sync.pending_count() == 1
    out = sync.add_image(1.2, "img2")
    assert out.matched == [("img2", "d2")] and sync.pending_count() == 0


def test_sync_drops_with_reasons():
    sync: FrameSync[str, str] = FrameSync(slop=0.01, image_buffer=3, pending_size=2, max_age=1.0)
    for k in range(5):
        sync.add_image(10.0 + 0.1 * k, f"img{k}")
    assert sync.add_detections(8.0, "old").dropped == [("old", "stale")]
    assert sync.add_detections(10.05, "gap").dropped == [("gap", "no_image")]
    sync.add_detections(11.0, "a")
    sync.add_detections(11.1, "b")
    assert sync.add_detections(11.2, "c").dropped == [("a", "pending_full")]
    assert sync.add_image(11.15, "img").dropped == [("b", "no_image")]
    assert sync.expire(now=12.5) == ["c"]  # its image never came


# -------------------------------------------------------------------------------- worker
def test_worker_keeps_the_newest_and_survives_errors():
    gate, done, dropped, errors = threading.Event(), [], [], []

    def process(job):
        gate.wait(5.0)
        if job == "bad":
            raise RuntimeError("boom")
        done.append(job)

    worker = LatestQueueWorker(process, maxsize=2, on_drop=dropped.append,
                               on_error=lambda j, e: errors.append((j, str(e))))  # fmt: skip
    try:
        worker.submit("first")  # taken by the worker, blocked on the gate
        time.sleep(0.2)
        for job in ("a", "b", "bad", "c"):
            worker.submit(job)
        assert dropped == ["a", "b"] and worker.queued() == 2
        gate.set()
        deadline = time.monotonic() + 5
        while not worker.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == ["first", "c"] and errors == [("bad", "boom")]
        assert worker.is_alive()
        worker.submit("d", replaces=lambda j: True)
        deadline = time.monotonic() + 5
        while "d" not in done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done[-1] == "d"
    finally:
        worker.stop()
    assert not worker.is_alive()


# -------------------------------------------------------------------- tracks, params, stats
def test_track_table_expiry_and_frames():
    table = TrackTable(timeout=1.0)
    table.update(Track("m", "0", np.eye(4), 10.0, "cam"))
    table.update(Track("m", "1", np.eye(4), 10.5, "other_cam"))
    assert [t.instance_id for t in table.active(10.9, "cam")] == ["0"]
    assert [t.instance_id for t in table.active(11.2, "other_cam")] == ["1"]  # "0" expired
    assert len(table) == 1 and table.clear() == 1 and len(table) == 0


def _shipped_configs() -> dict:
    """The refiner's settings for each shipped weights file, as the node resolves them."""
    return {
        name: RefinerConfig.resolve(read_weights_meta(resolve_checkpoint(name)))
        for name in ("gcf_lmo.pt", "gcf_lmo_s64.pt")
    }


UNSET = [f.name for f in NodeParams.fields() if f.default is None]  # the weights' values


def test_packaged_gcf_yaml_matches_the_declared_defaults():
    text = (share_dir() / "config" / "gcf.yaml").read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]
    defaults = {f.name: f.default for f in NodeParams.fields() if f.default is not None}
    assert values == defaults
    for f in NodeParams.fields():
        assert f.default is None or type(values[f.name]) is type(f.default), f.name  # strict types
        assert len(f.metadata["description"]) > 15, f.name
    # the unset ones are there commented out, with the values of the shipped weights
    commented = dict(re.findall(r"^ {4}# (\w+): (\S+)", text, re.MULTILINE))
    shipped = _shipped_configs()["gcf_lmo.pt"]
    assert {k: yaml.safe_load(v) for k, v in commented.items()} == {
        k: getattr(shipped, k) for k in UNSET
    }


def test_readme_parameter_table_matches_the_declared_defaults():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("**Parameters**", 1)[1].split("\n\n")[1].splitlines()[2:]
    rows = {}
    for line in table:
        names, default, meaning = (c.strip() for c in line.strip("|").split("|"))
        rows.update((name, (default, meaning)) for name in re.findall(r"`(\w+)`", names))
    assert set(rows) == {f.name for f in NodeParams.fields()}
    for f in NodeParams.fields():
        value = '""' if f.default == "" else str(f.default)
        value = value.lower() if isinstance(f.default, bool) else value
        default = "unset" if f.default is None else f"`{value}`"
        assert rows[f.name][0] == default, f.name
    for name, config in _shipped_configs().items():  # "(`gcf_lmo.pt`: 128, ...)"
        for key in UNSET:
            stated = re.search(rf"`{re.escape(name)}`: ([\d.]+)", rows[key][1])
            assert stated and float(stated[1]) == getattr(config, key), (name, key)


def test_params_validation():
    NodeParams()
    assert NodeParams().window_size is None  # the size the weights were trained at
    assert NodeParams().min_confidence is None  # the threshold the weights file records
    NodeParams(window_size=96)
    for small in (0, 8):
        with pytest.raises(ValueError, match="window_size"):
            NodeParams(window_size=small)
    with pytest.raises(ValueError, match="tf_child_frame_format"):
        NodeParams(tf_child_frame_format="{model}_{nope}")
    with pytest.raises(ValueError, match="detections_type"):
        NodeParams(detections_type="yolo")
    assert NodeParams(class_id_map="mug:obj_000001, can :obj_000005").class_map() == {
        "mug": "obj_000001", "can": "obj_000005"}  # fmt: skip
    with pytest.raises(ValueError, match="class_id_map"):
        NodeParams(class_id_map="mug=obj_000001").class_map()
    assert NodeParams().child_frame("obj_000005", "3", "can") == "obj_000005_3"


def test_stats_snapshot():
    stats = NodeStats()
    for ms in range(1, 101):
        stats.latency(float(ms))
    stats.count("rejected", 2)
    stats.tick("image")
    snap = stats.snapshot()
    assert snap["latency_p50_ms"] == pytest.approx(50.5) and snap["rejected"] == 2.0
    assert snap["image_rate_hz"] > 0 and snap["output_rate_hz"] == 0.0
