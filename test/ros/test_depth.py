"""The node's registered depth input (issue 19): 16UC1/32FC1 decoding (gcf_ros.ros.image_codec),
matching and checking against the colour frame (gcf_ros.ros.depth_sync), and one refiner over
Fast DDS fed frames with registered, missing, wrongly sized, unregistered and late depth."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from gcf_ros.ros import image_codec
from gcf_ros.ros.depth_sync import DepthBook
from gcf_ros.ros.params import NodeParams

DEPTH = np.array([[0.5, 0.0, 1.234], [np.nan, 65.535, 2.0]], dtype=np.float32)  # 0 / NaN: missing


def _msg(fields: dict, stamp: float = 0.0, frame_id: str = "cam") -> SimpleNamespace:
    header = SimpleNamespace(stamp=stamp, frame_id=frame_id)
    return SimpleNamespace(header=header, **fields)


def _padded(fields: dict, pad: int) -> dict:
    """The same image with ``pad`` bytes of padding at the end of every row."""
    h, step = fields["height"], fields["step"]
    rows = np.zeros((h, step + pad), np.uint8)
    rows[:, :step] = np.frombuffer(fields["data"], np.uint8).reshape(h, step)
    return {**fields, "step": step + pad, "data": rows.tobytes()}


# ------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 3])
def test_depth_decodes_to_metres_with_padding_and_either_byte_order(encoding, bigendian, pad):
    fields = image_codec.depth_to_image_fields(DEPTH, encoding, 0.001, bigendian)
    assert fields["is_bigendian"] == int(bigendian) and fields["encoding"] == encoding
    msg = _msg(_padded(fields, pad))
    depth = image_codec.depth_to_metres(msg, unit_scale=0.001)
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    expected = np.nan_to_num(DEPTH, nan=0.0)
    np.testing.assert_allclose(depth, expected, atol=1e-6 if encoding == "32FC1" else 5e-4)


def test_16uc1_counts_follow_the_unit_scale_and_the_byte_order_flag_is_read():
    counts = np.array([[1000, 0], [258, 65535]], dtype="<u2")
    fields = {"height": 2, "width": 2, "encoding": "16UC1", "step": 4, "is_bigendian": 0,
              "data": counts.tobytes()}  # fmt: skip
    np.testing.assert_allclose(
        image_codec.depth_to_metres(_msg(fields), unit_scale=0.0001),
        [[0.1, 0.0], [0.0258, 6.5535]],
        rtol=1e-6,
    )
    # the same bytes read big-endian: 1000 = 0x03e8 -> 0xe803 = 59395
    big = image_codec.depth_to_metres(_msg({**fields, "is_bigendian": 1}), unit_scale=0.001)
    assert big[0, 0] == pytest.approx(59.395) and big[1, 0] == pytest.approx(0.513)


def test_nan_inf_and_negative_depth_are_missing():
    values = np.array([[np.nan, np.inf, -np.inf], [-0.5, 0.0, 0.75]], dtype="<f4")
    fields = {"height": 2, "width": 3, "encoding": "32FC1", "step": 12, "is_bigendian": 0,
              "data": values.tobytes()}  # fmt: skip
    depth = image_codec.depth_to_metres(_msg(fields))
    np.testing.assert_array_equal(depth, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.75]])


def test_depth_decoding_errors_name_the_problem():
    fields = image_codec.depth_to_image_fields(DEPTH, "16UC1")
    with pytest.raises(image_codec.ImageDecodeError, match=r"'mono8'.*16UC1, 32FC1"):
        image_codec.depth_to_metres(_msg({**fields, "encoding": "mono8"}))
    with pytest.raises(image_codec.ImageDecodeError, match="step 4 < width 3 x 2 bytes"):
        image_codec.depth_to_metres(_msg({**fields, "step": 4}))
    with pytest.raises(image_codec.ImageDecodeError, match="10 bytes of data"):
        image_codec.depth_to_metres(_msg({**fields, "data": fields["data"][:10]}))
    with pytest.raises(image_codec.ImageDecodeError, match="empty"):
        image_codec.depth_to_metres(_msg({**fields, "width": 0}))


# ----------------------------------------------------------------------- matching by stamp
def _depth(stamp: float, size=(3, 2), frame_id="cam", encoding="16UC1") -> SimpleNamespace:
    depth = np.full(size[::-1], 0.8, np.float32)
    return _msg(image_codec.depth_to_image_fields(depth, encoding), stamp, frame_id)


def test_depth_is_matched_by_stamp_and_checked_against_the_frame():
    book = DepthBook(slop=0.01, unit_scale=0.001, size=4)
    got = book.lookup(1.0, 3, 2, "cam")  # none at all: missing, after at most the slop
    assert got.depth_m is None and got.kind == "depth_missing"
    assert (
        got.note == "depth missing: none within sync_slop (0.01 s) of the frame; refined RGB-only"
    )
    book.add(1.0, _depth(1.0))
    book.add(1.1, _depth(1.1, encoding="32FC1"))
    for stamp in (1.0, 1.005, 1.1):
        got = book.lookup(stamp, 3, 2, "cam")
        assert got.kind == got.note == "" and got.depth_m is not None
        np.testing.assert_allclose(got.depth_m, 0.8, atol=1e-6)
    got = book.lookup(1.05, 3, 2, "cam")  # outside the slop of both (a late or early depth)
    assert got.kind == "depth_missing" and "the nearest 0.050 s away" in got.note
    got = book.lookup(1.1, 6, 4, "cam")
    assert got.kind == "depth_size_mismatch"
    assert got.note == "depth refused: 3x2, image 6x4; refined RGB-only"
    got = book.lookup(1.1, 3, 2, "camera_depth_optical_frame")
    assert got.kind == "depth_frame_mismatch" and "registered" in got.note
    rgb8 = _depth(1.2)
    rgb8.encoding = "rgb8"
    book.add(1.2, rgb8)
    got = book.lookup(1.2, 3, 2, "cam")
    assert got.kind == "bad_depth" and "'rgb8'" in got.note and got.note.endswith("RGB-only")
    for k in range(5):  # the newest `size` kept
        book.add(2.0 + k, _depth(2.0 + k))
    assert len(book) == 4 and book.lookup(1.1, 3, 2, "cam").kind == "depth_missing"
    book.clear()
    assert len(book) == 0


def test_the_depth_book_is_bounded_in_bytes():
    book = DepthBook(0.01, 0.001, size=30, max_bytes=30)  # 12 bytes per 3 x 2 16UC1 image
    for k in range(5):
        book.add(float(k), _depth(float(k)))
    assert len(book) == 2
    book.add(9.0, _depth(9.0, size=(10, 10)))  # larger than the bound alone: the newest stays
    assert len(book) == 1 and book.lookup(9.0, 10, 10, "cam").depth_m is not None


def test_a_frame_waits_for_its_depth_at_most_the_slop():
    book = DepthBook(slop=0.5, unit_scale=0.001)
    book.add(0.9, _depth(0.9))
    late = threading.Timer(0.1, book.add, (1.0, _depth(1.0)))  # in flight: comes 0.1 s later
    late.start()
    t0 = time.monotonic()
    got = book.lookup(1.0, 3, 2, "cam")
    late.join()
    assert got.depth_m is not None and 0.05 < time.monotonic() - t0 < 0.45
    t0 = time.monotonic()  # none comes: missing after the slop, not later
    assert book.lookup(1.6, 3, 2, "cam").kind == "depth_missing"
    assert 0.45 < time.monotonic() - t0 < 1.0
    book.add(2.6, _depth(2.6))  # a newer depth came: the frame's own was lost, no wait
    t0 = time.monotonic()
    assert book.lookup(2.0, 3, 2, "cam").kind == "depth_missing"
    assert time.monotonic() - t0 < 0.1


def test_depth_parameters():
    p = NodeParams()
    assert p.use_depth is False and p.depth_unit_scale == 0.001
    assert NodeParams(use_depth=True, depth_unit_scale=0.0001).depth_unit_scale == 0.0001
    for bad in (0.0, -0.001, 2.0):
        with pytest.raises(ValueError, match="depth_unit_scale must be in"):
            NodeParams(depth_unit_scale=bad)
    with pytest.raises(ValueError, match="use_depth must be true or false"):
        NodeParams(use_depth=1)


NAMESPACE = f"depth_{os.getpid()}"  # no other test's refiner answers these inputs


# ------------------------------------------------------------------------------ the node
@pytest.fixture(scope="module")
def frames():
    from gcf_ros.eval.sequence import load_sequence

    return load_sequence()


def gt_depth(frame, registry) -> np.ndarray:
    """(H, W) metres the ground truth's objects show a perfect registered depth camera."""
    from gcf_ros.core.render.scene import render_scene_depth

    models = [registry.get(m) for m in frame.model_ids]
    return render_scene_depth(models, frame.T_gt, frame.K, frame.image_rgb.shape[:2]).depth


class _Client:
    """Publishes depth, camera_info, image and detections (reliable) under one stamp and records
    refined_poses by stamp and /diagnostics."""

    def __init__(self, ros):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image

        from gcf_ros_msgs.msg import CoarseDetectionArray, RefinedPoseArray

        self.ros = ros
        self.node = ros.node("depth_client")
        ns = f"/{NAMESPACE}/"
        self.depth_pub = self.node.create_publisher(Image, ns + "depth", 10)
        self.image_pub = self.node.create_publisher(Image, ns + "image", 10)
        self.info_pub = self.node.create_publisher(CameraInfo, ns + "camera_info", 10)
        self.det_pub = self.node.create_publisher(CoarseDetectionArray, ns + "detections", 10)
        self.poses: dict[float, RefinedPoseArray] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(RefinedPoseArray, ns + "refined_poses", self._on_poses, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.t = time.time()

    def _on_poses(self, msg):
        self.poses[round(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec, 6)] = msg

    def connect(self):
        pubs = (self.depth_pub, self.image_pub, self.info_pub, self.det_pub)
        assert self.ros.spin_until(
            lambda: (
                all(p.get_subscription_count() > 0 for p in pubs)
                and self.node.count_publishers(f"/{NAMESPACE}/refined_poses") > 0
            ),
            30.0,
        ), "the refiner did not subscribe"

    def send(self, frame, instances, depth=None, late_s=None, before_late=None):
        """``depth(t)`` (a depth Image of stamp ``t``; None: no depth) first, or ``late_s`` after
        the others (calling ``before_late()`` just before); then camera_info, image, detections;
        waits for the frame's refined poses."""
        from gcf_ros.ros.player import camera_info_msg, detections_msg, image_msg, stamp_msg

        self.t = round(max(self.t + 0.1, time.time()), 6)
        t = stamp_msg(self.t)
        if depth is not None and late_s is None:
            self.depth_pub.publish(depth(t))
        self.info_pub.publish(camera_info_msg(frame.K, 640, 480, t))
        self.image_pub.publish(image_msg(frame.image_rgb, t))
        self.det_pub.publish(detections_msg(instances, t))
        if depth is not None and late_s is not None:
            time.sleep(late_s)
            if before_late is not None:
                before_late()
            self.depth_pub.publish(depth(t))
        stamp = self.t
        assert self.ros.spin_until(lambda: stamp in self.poses, 60.0), f"no result at {stamp}"
        return self.poses[stamp].poses


def _z_errors_mm(poses, instances) -> np.ndarray:
    from gcf_ros.ros.conversions import pose_to_matrix

    gt = {inst.instance_id: inst.T_gt for inst in instances}
    return np.array([1e3 * abs(pose_to_matrix(p.pose).T[2, 3] - gt[p.instance_id][2, 3])
                     for p in poses])  # fmt: skip


def test_the_node_refines_with_registered_depth_and_notes_every_frame_without(
    ros, frames, registry, start_refiner
):
    """One refiner, frames in turn: registered depth (16UC1, then 32FC1) is used and noted
    nowhere; missing, wrongly sized, unregistered, early/late-stamped and late-arriving depth is
    counted, noted in every result's reason, and the frame refined RGB-only, without a stall."""
    from gcf_ros.eval.sequence import coarse_instances
    from gcf_ros.ros.player import OPTICAL_FRAME, depth_msg, stamp_msg

    running = start_refiner(namespace=NAMESPACE, input_reliability="reliable", use_depth=True,
                            diagnostics_period=0.5)  # fmt: skip
    node = running.node
    seen: list[np.ndarray | None] = []  # the depth each refinement got
    refine = node.refiner.refine

    def spy(rgb, K, detections, depth_m=None):
        seen.append(depth_m)
        return refine(rgb, K, detections, depth_m=depth_m)

    node.refiner.refine = spy
    client = _Client(ros)
    client.connect()
    counters = node.stats.counters
    frame = frames[0]
    truth = gt_depth(frame, registry)
    four = coarse_instances(frame, "medium", seed=0)[:4]
    one = four[:1]

    def reasons(poses):  # "" or the refiner's own ("iteration limit"), then the depth note
        return [p.status_reason for p in poses]

    # registered depth: used, and no result says anything about depth
    with_depth = client.send(frame, four, lambda t: depth_msg(truth, t))
    assert not any("depth" in r for r in reasons(with_depth)), reasons(with_depth)
    assert seen[-1] is not None and seen[-1].shape == (480, 640)
    np.testing.assert_allclose(seen[-1], truth, atol=5e-4)  # 1 mm counts
    # the same frame without depth: RGB-only, said in every result
    rgb_only = client.send(frame, four)
    assert seen[-1] is None and counters["depth_missing"] == 1
    assert all("depth missing" in r and r.endswith("refined RGB-only") for r in reasons(rgb_only))
    z_depth, z_rgb = _z_errors_mm(with_depth, four), _z_errors_mm(rgb_only, four)
    print(f"z error, mm: with depth {z_depth.round(2)}, RGB-only {z_rgb.round(2)}")
    assert np.median(z_depth) < 0.5 * np.median(z_rgb), (z_depth, z_rgb)  # the depth term

    # 32FC1, metres
    poses = client.send(frame, one, lambda t: depth_msg(truth, t, encoding="32FC1"))
    assert "depth" not in reasons(poses)[0] and counters["depth_used"] == 2
    np.testing.assert_allclose(seen[-1], truth, atol=1e-6)

    # not registered to the colour image: another size, another frame
    small = truth[::2, ::2]
    poses = client.send(frame, one, lambda t: depth_msg(small, t))
    assert seen[-1] is None and counters["depth_size_mismatch"] == 1
    assert reasons(poses)[0].endswith("depth refused: 320x240, image 640x480; refined RGB-only")
    poses = client.send(frame, one, lambda t: depth_msg(truth, t, "camera_depth_optical_frame"))
    assert seen[-1] is None and counters["depth_frame_mismatch"] == 1
    assert f"'camera_depth_optical_frame', image '{OPTICAL_FRAME}'" in reasons(poses)[0]

    # stamped outside sync_slop (0.01 s) of the image: missing
    def off(t):
        return depth_msg(truth, stamp_msg(t.sec + 1e-9 * t.nanosec + 0.05))

    poses = client.send(frame, one, off)
    assert seen[-1] is None and counters["depth_missing"] == 2
    assert "the nearest 0.050 s away" in reasons(poses)[0]
    # arriving 1 s after its frame: the frame has not waited for it (counted before it is sent)
    missing_before = []

    def note_missing():
        missing_before.append(counters["depth_missing"])

    poses = client.send(
        frame, one, lambda t: depth_msg(truth, t), late_s=1.0, before_late=note_missing
    )
    assert missing_before == [3] and seen[-1] is None and counters["depth_missing"] == 3
    assert "depth missing" in reasons(poses)[0]

    # /diagnostics reports every count, and warns about them
    def reported():
        for msg in client.diagnostics[::-1]:
            values = {kv.key: kv.value for kv in msg.status[0].values}
            if values.get("depth_missing") == "3":
                return values
        return None

    assert ros.spin_until(lambda: reported() is not None, 5.0), "no depth counts on /diagnostics"
    values = reported()
    counts = [values[k] for k in ("depth_used", "depth_size_mismatch", "depth_frame_mismatch")]
    assert counts == ["2", "1", "1"]
    assert counters.get("errors", 0) == 0 and len(seen) == 7
