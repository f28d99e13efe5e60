"""The frame pipeline without ROS: seeds and tracks, refused detections, stamp epochs, the
FrameResult, the overlay and the diagnostics verdict. A stand-in refiner moves every pose 1 cm
along z and rejects the models it is told to, so each output can be traced to its seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gcf_ros.gcf.refiner import CONVERGED, REJECTED, RefineResult
from gcf_ros.pipeline.pipeline import REFINED_RGB, REJECTED_RGB, FramePipeline, draw_overlay
from gcf_ros.pipeline.stats import Health
from gcf_ros.pipeline.types import Detections, FrameResult, Observation, Refused, Seed

MOVE_M = 0.01
K = np.array([[572.4, 0.0, 320.0], [0.0, 573.6, 240.0], [0.0, 0.0, 1.0]])
A, B = "obj_000005", "obj_000006"  # refined; rejected by the stand-in


class StandInRefiner:
    """Records the seeds it gets; returns each pose moved by MOVE_M along z."""

    def __init__(self, registry, reject=(B,)) -> None:
        self.registry, self.renderer, self.reject = registry, None, set(reject)
        self.calls: list[dict[tuple[str, str], np.ndarray]] = []
        self.iterations: list[dict[tuple[str, str], int | None]] = []  # Detection.iterations

    def refine(self, rgb, K, detections):
        self.calls.append({(d.model_id, d.instance_id): d.T_cam_obj.copy() for d in detections})
        self.iterations.append({(d.model_id, d.instance_id): d.iterations for d in detections})
        out = []
        for d in detections:
            T = d.T_cam_obj.copy()
            T[2, 3] += MOVE_M
            status = REJECTED if d.model_id in self.reject else CONVERGED
            out.append(RefineResult(d.model_id, d.instance_id, T, d.T_cam_obj, 0.9, 3, status,
                                    "low confidence" if status == REJECTED else ""))  # fmt: skip
        return out


def _pose(x=0.0, y=0.0, z=0.8):
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def _obs(stamp, seeds=(), refused=(), det_frame="cam", epoch=0, tracking_only=False, size=(64, 48)):
    dets = None if tracking_only else Detections(det_frame, tuple(seeds), tuple(refused))
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    return Observation(stamp, "cam", rgb, K, dets, epoch)


@pytest.fixture
def reports():
    return []


@pytest.fixture
def pipeline(registry, reports):
    return FramePipeline(
        StandInRefiner(registry),
        child_frame=lambda model_id, instance_id, tf_name: f"{tf_name}/{instance_id}",
        report=lambda kind, message: reports.append((kind, message)),
    )


def test_refined_and_refused_detections_make_the_frame_result(pipeline, registry, reports):
    seeds = [Seed(A, "a", _pose(z=0.8)), Seed(B, "b", _pose(z=0.9))]
    refused = [Refused("obj_999", "c", "unknown_model", "unknown model id 'obj_999'"),
               Refused("obj_000008", "d", "behind_camera", "behind")]  # fmt: skip
    result = pipeline.process(_obs(10.0, seeds, refused))

    assert [i.key for i in result.refined] == [(A, "a"), (B, "b")]
    a, b = result.refined
    np.testing.assert_array_equal(a.T_init, _pose(z=0.8))
    np.testing.assert_array_equal(a.T_cam_obj, _pose(z=0.8 + MOVE_M))
    assert a.accepted and a.iterations == 3 and a.confidence == 0.9 and a.reason == ""
    assert a.child_frame == f"{registry.spec(A).tf_name or A}/a"
    assert a.mesh_uri.startswith("file://") and a.mesh_uri.endswith(registry.spec(A).mesh_path.name)
    assert a.mesh_scale == registry.spec(A).scale
    model = registry.get(A)
    np.testing.assert_array_equal(a.bbox_obj, np.stack([model.bbox_min, model.bbox_max]))
    assert not b.accepted and b.reason == "low confidence"
    assert result.rejected == 1  # the refused detections are not counted as rejections

    assert [(i.key, i.status, i.iterations, i.reason) for i in result.refused] == [
        (("obj_999", "c"), REJECTED, 0, "unknown model id 'obj_999'"),
        (("obj_000008", "d"), REJECTED, 0, "behind"),
    ]
    assert all((i.T_init == np.eye(4)).all() and (i.T_cam_obj == np.eye(4)).all()
               for i in result.refused)  # fmt: skip
    assert result.instances == result.refined + result.refused
    assert [kind for kind, _ in reports] == ["unknown_model", "behind_camera"]
    assert "obj_999/c" in reports[0][1]


def test_tracks_seed_poseless_and_undetected_instances(pipeline, reports):
    refiner = pipeline.refiner
    first = [Seed(A, "a", _pose(z=0.8)), Seed(B, "b", _pose(z=0.9))]
    pipeline.process(_obs(10.0, first), tracking=True)
    assert len(pipeline.tracks) == 1  # b was rejected: not tracked

    # a detection without a pose is seeded from its track; one without a track is refused
    poseless = [Seed(A, "a", None), Seed("obj_000008", "x", None)]
    result = pipeline.process(_obs(10.1, poseless), tracking=True)
    np.testing.assert_array_equal(refiner.calls[-1][(A, "a")], _pose(z=0.8 + MOVE_M))
    assert list(refiner.calls[-1]) == [(A, "a")]
    assert [(i.key, i.reason) for i in result.refused] == [
        (("obj_000008", "x"), "detection has no pose and no track")
    ]
    assert reports[-1][0] == "no_pose"

    # a frame without detections refines every tracked instance from its track
    pipeline.process(_obs(10.2, tracking_only=True), tracking=True)
    np.testing.assert_allclose(refiner.calls[-1][(A, "a")], _pose(z=0.8 + 2 * MOVE_M))
    # detections cover their instances: the track does not add a second seed
    pipeline.process(_obs(10.3, [Seed(A, "a", _pose(z=0.7))]), tracking=True)
    np.testing.assert_array_equal(refiner.calls[-1][(A, "a")], _pose(z=0.7))

    # tracking off: no track is read (nor written)
    result = pipeline.process(_obs(10.4, [Seed(A, "a", None)]), tracking=False)
    assert refiner.calls[-1] == {} and result.refused[0].reason.startswith("detection has no pose")
    assert pipeline.tracks.get(A, "a").stamp == 10.3

    # a refused detection ends its instance's track; tracks expire after track_timeout (1 s)
    pipeline.process(_obs(10.5, refused=[Refused(A, "a", "bad_pose", "NaN")]), tracking=True)
    assert len(pipeline.tracks) == 0
    pipeline.process(_obs(10.6, [Seed(A, "a", _pose())]), tracking=True)
    result = pipeline.process(_obs(11.7, tracking_only=True), tracking=True)
    assert refiner.calls[-1] == {} and result.instances == ()


def test_seeds_from_tracks_get_the_tracking_iterations_fresh_detections_the_refiners(pipeline):
    refiner = pipeline.refiner
    pipeline.process(_obs(10.0, [Seed(A, "a", _pose()), Seed(A, "b", _pose(x=0.1))]), True, 2)
    assert refiner.iterations[-1] == {(A, "a"): None, (A, "b"): None}  # fresh: the config's
    # a frame mixing a fresh detection, a poseless one (its track) and an uncovered track
    seeds = [Seed(A, "c", _pose(y=0.1)), Seed(A, "a", None)]
    pipeline.process(_obs(10.1, seeds), tracking=True, tracking_iterations=2)
    assert refiner.iterations[-1] == {(A, "c"): None, (A, "a"): 2, (A, "b"): 2}
    pipeline.process(_obs(10.2, tracking_only=True), tracking=True, tracking_iterations=3)
    assert set(refiner.iterations[-1].values()) == {3} and len(refiner.iterations[-1]) == 3
    pipeline.process(_obs(10.3, tracking_only=True), tracking=True)  # None: the refiner's count
    assert set(refiner.iterations[-1].values()) == {None}


def test_detections_in_another_frame_are_dropped_whole(pipeline, reports):
    pipeline.process(_obs(10.0, [Seed(A, "a", _pose())]), tracking=True)
    stray = [Seed(A, "a", _pose()), Seed(B, "b", _pose())]
    result = pipeline.process(_obs(10.1, stray, det_frame="other"), tracking=True)
    assert result.instances == () and pipeline.refiner.calls[-1] == {}  # not even the track
    assert reports == [("frame_mismatch", reports[0][1])] and "'other'" in reports[0][1]
    # an empty frame id means the image's frame
    assert pipeline.process(_obs(10.2, stray, det_frame="")).refined


def test_a_jump_back_in_stamps_starts_an_epoch_that_old_frames_cannot_touch(pipeline):
    assert pipeline.stamp_image(100.0) == (0, 0.0)
    pipeline.process(_obs(100.0, [Seed(A, "a", _pose())]), tracking=True)
    assert pipeline.superseded(100.0) and not pipeline.superseded(100.1)
    assert pipeline.stamp_image(99.5) == (0, 0.0)  # jitter within JUMP_BACK_S: same epoch
    late = _obs(100.2, [Seed(A, "late", _pose())], epoch=0)  # arrived before the loop

    epoch, jump = pipeline.stamp_image(5.0)  # the bag loops
    assert epoch == 1 and jump == pytest.approx(94.5)
    assert len(pipeline.tracks) == 0 and not pipeline.superseded(5.0)
    assert pipeline.process(late, tracking=True).refined  # published, but it neither seeds
    assert len(pipeline.tracks) == 0 and not pipeline.superseded(5.0)  # nor holds back epoch 1
    pipeline.process(_obs(5.0, [Seed(A, "a", _pose())], epoch=1), tracking=True)
    assert pipeline.tracks.get(A, "a").stamp == 5.0 and pipeline.superseded(5.0)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="uint8"):
        Observation(0.0, "cam", np.zeros((4, 4, 3)), K)
    with pytest.raises(ValueError, match="K"):
        Observation(0.0, "cam", np.zeros((4, 4, 3), np.uint8), np.eye(4))
    dets = Detections.of_poses([A, A], np.stack([_pose(), _pose(z=1.0)]))
    assert [(s.model_id, s.instance_id, s.T_cam_obj[2, 3]) for s in dets.seeds] == [
        (A, "0", 0.8), (A, "1", 1.0)]  # fmt: skip
    with pytest.raises(ValueError):
        Detections.of_poses([A], np.stack([_pose(), _pose()]))


def test_depth_goes_to_the_refiner_and_its_note_into_every_refined_reason(pipeline, registry):
    seeds = [Seed(A, "a", _pose(z=0.8)), Seed(B, "b", _pose(z=0.9))]
    refused = [Refused("obj_999", "c", "unknown_model", "unknown model id 'obj_999'")]
    plain = pipeline.process(_obs(10.0, seeds, refused))  # the stand-in takes no depth_m at all
    reasons = ["", "low confidence", "unknown model id 'obj_999'"]
    assert [i.reason for i in plain.instances] == reasons

    got = []

    class DepthRefiner(StandInRefiner):
        def refine(self, rgb, K, detections, depth_m=None):
            got.append(depth_m)
            return super().refine(rgb, K, detections)

    depth_pipeline = FramePipeline(DepthRefiner(registry))
    depth = np.full((48, 64), 0.8, np.float32)
    obs = dataclasses.replace(_obs(11.0, seeds), depth_m=depth)
    assert [i.reason for i in depth_pipeline.process(obs).refined] == ["", "low confidence"]
    assert got[-1] is depth
    note = "depth refused: 32x24, image 64x48; refined RGB-only"
    noted = dataclasses.replace(_obs(12.0, seeds, refused), depth_note=note)
    result = depth_pipeline.process(noted)
    assert got[-1] is None
    assert [i.reason for i in result.instances] == [
        note, f"low confidence; {note}", "unknown model id 'obj_999'"]  # fmt: skip
    with pytest.raises(ValueError, match="depth_m"):
        dataclasses.replace(obs, depth_m=np.zeros((24, 32), np.float32))
    with pytest.raises(ValueError, match="float32"):
        dataclasses.replace(obs, depth_m=np.zeros((48, 64), np.float64))


def _colour_pixels(image, rgb):
    return int((np.abs(image.astype(int) - rgb).max(axis=-1) <= 12).sum())


def test_overlay_draws_refined_green_and_rejected_red(pipeline):
    seeds = [Seed(A, "a", _pose(x=-0.15)), Seed(B, "b", _pose(x=0.15))]
    obs = _obs(10.0, seeds, size=(640, 480))
    result = pipeline.process(obs)
    out = draw_overlay(obs.rgb, K, result, pipeline.registry)
    assert not obs.rgb.any()  # drawn on a copy
    left, right = out[:, :320], out[:, 320:]
    assert _colour_pixels(left, REFINED_RGB) > 50 and _colour_pixels(right, REFINED_RGB) == 0
    assert _colour_pixels(right, REJECTED_RGB) > 50
    np.testing.assert_array_equal(pipeline.overlay(obs, result), out)

    # nothing is drawn for an instance never refined (0 iterations) or of an unknown model
    unrefined = dataclasses.replace(result.refined[0], iterations=0)
    unknown = dataclasses.replace(result.refined[0], model_id="obj_999")
    nothing = FrameResult((unrefined, unknown), ())
    assert not draw_overlay(obs.rgb, K, nothing, pipeline.registry).any()


def test_health_warns_once_per_growing_problem_counter():
    health = Health()
    calm = {"frames_refined": 1.0, "image_rate_hz": 30.0, "latency_p50_ms": 80.0}
    assert health.assess(calm, worker_alive=True) == ("ok", "ok")
    busy = {"frames_refined": 2.0, "image_rate_hz": 31.0, "latency_p50_ms": 90.0,
            "empty_detections": 3.0, "tracks": 2.0, "unknown_model": 1.0}  # fmt: skip
    assert health.assess(busy, worker_alive=True) == ("warn", "new: unknown_model")
    assert health.assess(busy, worker_alive=True) == ("ok", "ok")  # not grown since
    worse = {**busy, "unknown_model": 2.0, "errors": 1.0}
    assert health.assess(worse, worker_alive=True) == ("warn", "new: errors, unknown_model")
    assert health.assess(worse, worker_alive=False) == ("error", "refinement worker stopped")
