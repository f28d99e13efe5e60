"""Intrinsics by stamp and bounds on every input (issue 18, items 2 and 3).

Unit level: camera_info matching (:class:`CameraBook`), the detection limit of the parsers and of
the tracks, the sync's future stamps, waiting time and memory bound, the new parameters. Node
level: one refiner over Fast DDS, fed the alternating-K sequence (camera_info, image and detections
published back to back under one stamp, the focal length x1.2 every other frame), camera_info
without a size or of another size, too many detections, too large images, a full image buffer and
detection arrays from the future.
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from gcf_ros.eval.sequence import coarse_instances, load_sequence
from gcf_ros.pipeline.tracking import Track, TrackTable, seed_frame
from gcf_ros.pipeline.types import Detections, Observation, Seed
from gcf_ros.ros.camera_sync import CameraBook
from gcf_ros.ros.conversions import BadInputError, CameraModel
from gcf_ros.ros.inputs import parse_coarse, parse_detection3d
from gcf_ros.ros.params import NodeParams
from gcf_ros.ros.player import camera_info_msg, detections_msg, image_msg, stamp_msg
from gcf_ros.ros.sync import FrameSync
from gcf_ros_msgs.msg import CoarseDetectionArray, RefinedPose, RefinedPoseArray

K_A = np.array([[572.4, 0.0, 325.3], [0.0, 573.6, 242.0], [0.0, 0.0, 1.0]])


def _camera(K=K_A, w=640, h=480) -> CameraModel:
    return CameraModel(np.asarray(K, dtype=np.float64), w, h, "cam", False)


def _zoomed(K: np.ndarray, f: float) -> np.ndarray:
    out = K.copy()
    out[0, 0] *= f
    out[1, 1] *= f
    return out


# --------------------------------------------------------------------- camera_info by stamp
def test_camera_book_matches_by_stamp_and_never_guesses_when_k_changed():
    book = CameraBook(slop=0.01, size=10, wait_s=0.0)
    with pytest.raises(BadInputError) as err:
        book.lookup(1.0, 640, 480)
    assert err.value.kind == "no_camera_info"
    K_B = _zoomed(K_A, 1.2)
    book.add(1.0, _camera(K_A))
    book.add(1.1, _camera(K_B))
    match = book.lookup(1.1, 640, 480)
    assert match.how == "exact" and match.camera.K is not None
    np.testing.assert_array_equal(match.camera.K, K_B)
    match = book.lookup(1.006, 640, 480)
    assert match.how == "inexact"
    np.testing.assert_array_equal(match.camera.K, K_A)
    with pytest.raises(BadInputError) as err:  # K changed: the newest would be a guess
        book.lookup(1.05, 640, 480)
    assert err.value.kind == "camera_info_unmatched"
    with pytest.raises(BadInputError) as err:
        book.lookup(1.1, 320, 240)
    assert err.value.kind == "size_mismatch"
    # a static camera: the newest one, once every buffered camera_info agrees
    for k in range(10):
        book.add(2.0 + k, _camera(K_B))
    match = book.lookup(50.0, 640, 480)
    assert match.how == "newest"
    np.testing.assert_array_equal(match.camera.K, K_B)
    with pytest.raises(BadInputError) as err:  # ...of the image's size only
        book.lookup(50.0, 1280, 960)
    assert err.value.kind == "size_mismatch"
    book.add(12.0, _camera(K_B, 1280, 960))  # the size changed: no more guessing
    with pytest.raises(BadInputError):
        book.lookup(50.0, 640, 480)


def test_camera_book_waits_for_the_camera_info_still_in_flight():
    """The executor may deliver an image before the camera_info published just ahead of it: the
    lookup (on the worker) waits for it, and no longer than ``wait_s``."""
    book = CameraBook(slop=0.01, size=10, wait_s=2.0)
    book.add(1.0, _camera(K_A))
    K_B = _zoomed(K_A, 1.2)
    late = threading.Timer(0.1, book.add, (1.1, _camera(K_B)))
    late.start()
    match = book.lookup(1.1, 640, 480)  # the previous K is there; its own comes 0.1 s later
    late.join()
    assert match.how == "exact" and 0.05 < match.waited_s < 1.5
    np.testing.assert_array_equal(match.camera.K, K_B)
    # none comes: refused after wait_s (K changed), not refined with the previous one
    book.wait_s = 0.1
    t0 = time.monotonic()
    with pytest.raises(BadInputError, match="sync_slop"):
        book.lookup(1.2, 640, 480)
    assert 0.09 < time.monotonic() - t0 < 1.0
    # a camera_info newer than the image has arrived: nothing more to wait for
    book.wait_s = 2.0
    book.add(1.3, _camera(K_A))
    t0 = time.monotonic()
    with pytest.raises(BadInputError):
        book.lookup(1.25, 640, 480)
    assert time.monotonic() - t0 < 0.5


def test_a_static_camera_info_stream_is_waited_for_once():
    """A driver that stamps camera_info apart from its images: once enough camera_info came, all
    alike, the first frame waits, falls back to the (unchanged) newest; the next frames do not wait
    again until a stamp matches."""
    book = CameraBook(slop=0.01, size=10, wait_s=0.3, min_static=3)
    book.add(0.3, _camera())
    with pytest.raises(BadInputError, match="fewer than 3"):  # one camera_info: K may change
        book.lookup(1.0, 640, 480)
    book.add(0.4, _camera())
    book.add(0.5, _camera())
    t0 = time.monotonic()
    assert book.lookup(1.0, 640, 480).how == "newest"
    assert time.monotonic() - t0 > 0.25
    t0 = time.monotonic()
    assert book.lookup(1.1, 640, 480).how == "newest"
    assert time.monotonic() - t0 < 0.1


# ------------------------------------------------------------------------- detection limit
def _det(model_id, instance_id, score, z=0.8):
    pose = SimpleNamespace(position=SimpleNamespace(x=0.0, y=0.0, z=z),
                           orientation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0))  # fmt: skip
    return SimpleNamespace(model_id=model_id, instance_id=instance_id, score=score, pose=pose,
                           has_pose=True)  # fmt: skip


def test_the_highest_scoring_detections_are_kept_and_the_extras_rejected_with_the_reason():
    scores = [0.2, 0.9, float("nan"), 0.5, 0.9, 0.7]
    msg = SimpleNamespace(detections=[_det("m", str(k), s) for k, s in enumerate(scores)])
    seeds, refused = parse_coarse(msg, {"m"}, 0.05, None, 3)
    assert [s.instance_id for s in seeds] == ["1", "4", "5"]  # array order, ties in array order
    assert [r.instance_id for r in refused] == ["0", "2", "3"]
    assert {r.kind for r in refused} == {"too_many_detections"}
    assert "max_detections_per_frame" in refused[0].reason and "3 highest" in refused[0].reason
    # unknown models and duplicates take no place; a bad pose among the kept is refused itself
    msg.detections += [_det("x", "9", 1.0), _det("m", "1", 1.0), _det("m", "7", 0.95, z=-1.0)]
    seeds, refused = parse_coarse(msg, {"m"}, 0.05, None, 3)
    assert [s.instance_id for s in seeds] == ["1", "4"]
    kinds = {r.instance_id: r.kind for r in refused}
    assert kinds["9"] == "unknown_model" and kinds["7"] == "behind_camera"
    assert kinds["5"] == "too_many_detections"
    assert len(parse_coarse(msg, {"m"}, 0.05)[0]) == 6  # no limit


def test_vision_msgs_detections_are_limited_by_their_best_hypothesis_score():
    def det(instance_id, scores):
        results = [SimpleNamespace(hypothesis=SimpleNamespace(class_id="m", score=s),
                                   pose=SimpleNamespace(pose=_det("m", "", 0).pose))
                   for s in scores]  # fmt: skip
        return SimpleNamespace(id=instance_id, results=results)

    msg = SimpleNamespace(detections=[det("a", [0.1, 0.3]), det("b", [0.8]), det("c", [0.2])])
    seeds, refused = parse_detection3d(msg, {"m"}, 0.05, {}, 2)
    assert [s.instance_id for s in seeds] == ["a", "b"]  # a: 0.3 (its best), b: 0.8; array order
    assert [(r.instance_id, r.kind) for r in refused] == [("c", "too_many_detections")]


def test_tracks_fill_only_the_places_the_detections_leave():
    tracks = TrackTable(timeout=5.0)
    for k in range(6):
        tracks.update(Track("m", f"t{k}", np.eye(4), 10.0 + 0.1 * k, "cam"))
    dets = Detections("", (Seed("m", "d0", np.eye(4)), Seed("m", "d1", np.eye(4))))
    obs = Observation(11.0, "cam", np.zeros((4, 4, 3), np.uint8), K_A, dets)
    reports = []
    seeds, _ = seed_frame(obs, tracks, lambda kind, message: reports.append(kind), max_seeds=4)
    assert [s.instance_id for s in seeds] == ["d0", "d1", "t5", "t4"]  # the most recent tracks
    assert reports == ["too_many_tracks"] and len(tracks) == 6
    seeds, _ = seed_frame(obs, tracks, lambda kind, message: None)
    assert len(seeds) == 8


# ------------------------------------------------------------------------------ the sync
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_future_arrays_are_refused_and_none_waits_for_ever():
    clock = _Clock()
    sync: FrameSync[str, str] = FrameSync(0.01, 5, 5, max_age=2.0, clock=clock)
    assert sync.add_detections(1e9, "no clock given").dropped == []
    sync.add_image(100.0, "img")
    assert sync.add_detections(102.5, "future", now=100.4).dropped == [("future", "future")]
    # ahead of the newest image by more than max_age, not of the clock: its image may still come
    assert sync.add_detections(102.5, "early", now=100.6).dropped == []
    assert sync.pending_count() == 2
    clock.t = 1.0
    assert sync.expire(now=100.0) == []
    clock.t = 2.5  # waited longer than max_age: dropped, whatever its stamp
    assert sync.expire(now=100.0) == ["no clock given", "early"] and sync.pending_count() == 0


def test_the_image_buffer_is_bounded_in_bytes():
    sync: FrameSync[bytes, str] = FrameSync(0.01, 30, 5, 2.0, max_bytes=250, size_of=len)
    evicted = []
    for k in range(5):
        evicted += sync.add_image(float(k), bytes(100 + k)).evicted
    assert sync.image_count() == 2 and sync.image_bytes == 207
    assert [len(e) for e in evicted] == [100, 101, 102]
    assert sync.add_image(9.0, bytes(1000)).evicted and sync.image_count() == 1  # newest stays


def test_bound_parameters_are_validated():
    p = NodeParams()
    assert (p.max_detections_per_frame, p.max_image_pixels, p.image_buffer_mb) == (
        32, 4096 * 4096, 256)  # fmt: skip
    for name in ("max_detections_per_frame", "max_image_pixels", "image_buffer_mb"):
        with pytest.raises(ValueError, match=name):
            NodeParams(**{name: 0})


# ------------------------------------------------------------------------------ the node
@pytest.fixture(scope="module")
def frames():
    return load_sequence()


NAMESPACE = f"bounds_{os.getpid()}"  # no other test's refiner answers these inputs


class _Client:
    """Publishes the inputs (reliable, back to back) and records refined_poses by stamp."""

    def __init__(self, ros):
        self.ros = ros
        self.node = ros.node("bounds_client")
        ns = f"/{NAMESPACE}/"
        self.image_pub = self.node.create_publisher(Image, ns + "image", 10)
        self.info_pub = self.node.create_publisher(CameraInfo, ns + "camera_info", 10)
        self.det_pub = self.node.create_publisher(CoarseDetectionArray, ns + "detections", 10)
        self.poses: dict[float, RefinedPoseArray] = {}
        self.node.create_subscription(RefinedPoseArray, ns + "refined_poses", self._on_poses, 10)
        self.t = round(time.time(), 3)

    def _on_poses(self, msg):
        self.poses[round(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec, 6)] = msg

    def connect(self):
        pubs = (self.image_pub, self.info_pub, self.det_pub)
        assert self.ros.spin_until(
            lambda: (
                all(p.get_subscription_count() > 0 for p in pubs)
                and self.node.count_publishers(f"/{NAMESPACE}/refined_poses") > 0
            ),
            30.0,
        ), "the refiner did not subscribe"

    def send(self, frame, instances, K, info_size=(640, 480), info_late_s=None):
        """camera_info, image, detections back to back under one new stamp (the camera_info
        ``info_late_s`` after the others, if given: the executor's order); returns the stamp."""
        self.t = round(self.t + 0.1, 6)
        t = stamp_msg(self.t)
        info = camera_info_msg(K, *info_size, t)
        if info_late_s is None:
            self.info_pub.publish(info)
        self.image_pub.publish(image_msg(frame.image_rgb, t))
        self.det_pub.publish(detections_msg(instances, t))
        if info_late_s is not None:
            time.sleep(info_late_s)
            self.info_pub.publish(info)
        return self.t


def test_every_frame_uses_its_own_camera_info_and_every_input_is_bounded(
    ros, frames, start_refiner
):
    running = start_refiner(namespace=NAMESPACE, input_reliability="reliable", iterations=1,
                            diagnostics_period=0.5, max_detections_per_frame=3,
                            max_image_pixels=640 * 480, image_buffer_mb=2)  # fmt: skip
    node = running.node
    seen_K: list[np.ndarray] = []
    refine = node.refiner.refine

    def spy(rgb, K, detections):
        seen_K.append(np.array(K, dtype=np.float64))
        return refine(rgb, K, detections)

    node.refiner.refine = spy
    client = _Client(ros)
    client.connect()
    frame = frames[0]
    one = coarse_instances(frame, "small", seed=0)[:1]
    counters = node.stats.counters
    assert node.count_subscribers(f"/{NAMESPACE}/depth") == 0  # use_depth false: no depth input

    # the alternating-K sequence from the first frame on: each frame is refined with its own K.
    # A frame is sent once the previous one is out, so the worker is idle and looks its camera up
    # at once; every third frame's camera_info comes 50 ms after its image and detections (the
    # executor may deliver them in that order), the first frame's too (the first-frame race)
    K_B = _zoomed(frame.K, 1.2)
    n = 16
    for k in range(n):
        late = 0.05 if k % 3 == 0 else None
        stamp = client.send(frame, one, frame.K if k % 2 == 0 else K_B, info_late_s=late)
        assert ros.spin_until(lambda s=stamp: s in client.poses, 20.0), f"frame {k} not refined"
        assert len(seen_K) == k + 1, f"frame {k}: refined {len(seen_K)} times"
    for k, K in enumerate(seen_K):
        np.testing.assert_array_equal(K, frame.K if k % 2 == 0 else K_B, err_msg=f"frame {k}")
    assert counters.get("camera_info_unmatched", 0) == 0 and counters.get("no_camera_info", 0) == 0

    # the image buffer: at most 2 MB (two 640 x 480 bgr8 frames), the evictions counted
    assert node.sync.image_count() == 2 and node.sync.image_bytes <= 2 * 2**20
    assert counters["image_buffer_full"] >= n - 2

    # camera_info without its size, with the K of a 1280 x 960 camera: refused on arrival, never
    # used (the buffered K changed recently, so the frame is refused rather than guessed)
    K_big = _zoomed(frame.K, 2.0)
    K_big[:2, 2] *= 2.0
    calls = len(seen_K)
    stamp = client.send(frame, one, K_big, info_size=(0, 0))
    assert ros.spin_until(lambda: counters.get("camera_info_unmatched", 0) == 1, 10.0)
    assert counters["bad_camera_info"] == 1 and len(seen_K) == calls and stamp not in client.poses
    # ...and one of another size than the image: never used either
    stamp = client.send(frame, one, K_big, info_size=(1280, 960))
    assert ros.spin_until(lambda: counters.get("size_mismatch", 0) == 1, 10.0)
    assert len(seen_K) == calls and stamp not in client.poses

    # more detections than max_detections_per_frame: the 3 highest scores are refined, the
    # others REJECTED with the reason
    five = coarse_instances(frame, "small", seed=1)[:5]
    scores = [0.3, 0.9, 0.1, 0.8, 0.7]

    def scored(t):
        msg = detections_msg(five, t)
        for d, s in zip(msg.detections, scores, strict=True):
            d.score = s
        return msg

    client.t = round(client.t + 0.1, 6)
    t = stamp_msg(client.t)
    client.info_pub.publish(camera_info_msg(frame.K, 640, 480, t))
    client.image_pub.publish(image_msg(frame.image_rgb, t))
    client.det_pub.publish(scored(t))
    assert ros.spin_until(lambda: client.t in client.poses, 20.0)
    by_id = {p.instance_id: p for p in client.poses[client.t].poses}
    kept = {five[k].instance_id for k in (1, 3, 4)}
    assert set(by_id) == {i.instance_id for i in five}
    for instance_id, p in by_id.items():
        if instance_id in kept:
            assert p.iterations >= 1, p.status_reason
        else:
            assert p.status == RefinedPose.REJECTED and p.iterations == 0
            assert "max_detections_per_frame" in p.status_reason
    assert counters["too_many_detections"] == 2

    # an image over max_image_pixels: refused before buffering
    buffered = node.sync.newest_image_stamp
    big = np.zeros((480, 641, 3), np.uint8)
    client.image_pub.publish(image_msg(big, stamp_msg(client.t + 0.05)))
    assert ros.spin_until(lambda: counters.get("image_too_large", 0) == 1, 10.0)
    assert node.sync.newest_image_stamp == buffered

    # a detection array stamped beyond max_stamp_age ahead of the node's clock: refused at once,
    # not kept pending
    client.det_pub.publish(detections_msg(one, stamp_msg(client.t + 10.0)))
    assert ros.spin_until(lambda: counters.get("future", 0) == 1, 10.0)
    assert node.sync.pending_count() == 0
    assert counters.get("errors", 0) == 0 and node.worker.is_alive()
