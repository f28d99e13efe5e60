"""Real Fast DDS round trips between two nodes.

Every project message, TFMessage and the vision_msgs detections arrive intact, and the vendored
upstream types carry the upstream type hashes.
"""

from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (
    Point,
    Pose,
    PoseWithCovariance,
    Quaternion,
    Transform,
    TransformStamped,
    Vector3,
)
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (
    BoundingBox2D,
    BoundingBox3D,
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
    Point2D,
    Pose2D,
)

from gcf_ros_msgs.msg import CoarseDetection, CoarseDetectionArray, RefinedPose, RefinedPoseArray

pytestmark = pytest.mark.ros

# RIHS01 type hashes of the ROS 2 Jazzy releases of the vendored packages, as real Jazzy nodes
# announce them (tf2_msgs 0.36, vision_msgs 4.1.1). A mismatch means /tf or the detections would not
# connect to real ROS 2 nodes.
UPSTREAM_TYPE_HASHES = {
    "vision_msgs/msg/Detection3DArray": (
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018"
    ),
    "tf2_msgs/msg/TFMessage": (
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
    ),
    "tf2_msgs/msg/TF2Error": (
        "RIHS01_db2485e7d6a0ec75bf087e058ee45df682acc3a621ca7780503d10aac141809a"
    ),
}


def _header(frame: str = "camera_color_optical_frame") -> Header:
    return Header(stamp=Time(sec=1_700_000_123, nanosec=456_789), frame_id=frame)


def _pose(x: float, y: float, z: float) -> Pose:
    return Pose(
        position=Point(x=x, y=y, z=z),
        orientation=Quaternion(x=0.5, y=-0.5, z=0.5, w=0.5),
    )


def _coarse_detection_array() -> CoarseDetectionArray:
    det = CoarseDetection(
        model_id="obj_000005",
        instance_id="can-1",
        score=0.75,
        bbox=[12, 34, 56, 78],
        pose=_pose(0.1, -0.2, 0.9),
        has_pose=True,
    )
    box_only = CoarseDetection(model_id="obj_000001", score=0.25, bbox=[1, 2, 3, 4])
    return CoarseDetectionArray(header=_header(), detections=[det, box_only])


def _refined_pose_array() -> RefinedPoseArray:
    refined = RefinedPose(
        model_id="obj_000005",
        instance_id="can-1",
        pose=_pose(0.101, -0.199, 0.905),
        initial_pose=_pose(0.1, -0.2, 0.9),
        confidence=0.875,
        iterations=7,
        status=RefinedPose.MAX_ITERATIONS,
        status_reason="iteration limit",
    )
    rejected = RefinedPose(
        model_id="obj_000001", status=RefinedPose.REJECTED, status_reason="low confidence"
    )
    return RefinedPoseArray(header=_header(), poses=[refined, rejected])


def _tf_message() -> TFMessage:
    t = TransformStamped(
        header=_header(),
        child_frame_id="obj_000005_can-1",
        transform=Transform(
            translation=Vector3(x=0.1, y=-0.2, z=0.9),
            rotation=Quaternion(x=0.0, y=0.0, z=0.6, w=0.8),
        ),
    )
    return TFMessage(transforms=[t])


def _detection3d_array() -> Detection3DArray:
    hyp = ObjectHypothesisWithPose(
        hypothesis=ObjectHypothesis(class_id="obj_000005", score=0.9),
        pose=PoseWithCovariance(
            pose=_pose(0.1, 0.2, 0.3), covariance=[0.01 * i for i in range(36)]
        ),
    )
    det = Detection3D(
        header=_header(),
        results=[hyp],
        bbox=BoundingBox3D(center=_pose(0.1, 0.2, 0.3), size=Vector3(x=0.1, y=0.2, z=0.05)),
        id="can-1",
    )
    return Detection3DArray(header=_header(), detections=[det])


def _detection2d_array() -> Detection2DArray:
    det = Detection2D(
        header=_header(),
        results=[ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id="ape", score=0.5))],
        bbox=BoundingBox2D(
            center=Pose2D(position=Point2D(x=320.5, y=240.25), theta=0.125),
            size_x=40.0,
            size_y=30.0,
        ),
        id="ape-7",
    )
    return Detection2DArray(header=_header(), detections=[det])


def _roundtrip(ros, msg_type, sent, topic):
    """Publish ``sent`` from one node, receive it on another; return (received, type hash)."""
    pub_node = ros.node("roundtrip_pub")
    sub_node = ros.node("roundtrip_sub")
    received = []
    sub_node.create_subscription(msg_type, topic, received.append, 10)
    pub = pub_node.create_publisher(msg_type, topic, 10)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0), "no DDS match"
    assert ros.spin_until(lambda: bool(received), on_tick=lambda: pub.publish(sent)), "no message"
    infos = sub_node.get_publishers_info_by_topic(topic)
    assert len(infos) == 1
    return received[0], str(infos[0].topic_type_hash)


def test_coarse_detection_array_roundtrip(ros):
    sent = _coarse_detection_array()
    got, _ = _roundtrip(ros, CoarseDetectionArray, sent, "detections")
    assert got == sent
    det = got.detections[0]
    assert (det.model_id, det.instance_id, det.has_pose) == ("obj_000005", "can-1", True)
    assert list(det.bbox) == [12, 34, 56, 78]
    assert det.score == pytest.approx(0.75)
    assert det.pose.position.z == pytest.approx(0.9)
    assert got.detections[1].has_pose is False
    assert got.header.frame_id == "camera_color_optical_frame"
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1_700_000_123, 456_789)


def test_refined_pose_array_roundtrip(ros):
    sent = _refined_pose_array()
    got, _ = _roundtrip(ros, RefinedPoseArray, sent, "refined_poses")
    assert got == sent
    assert (RefinedPose.CONVERGED, RefinedPose.MAX_ITERATIONS, RefinedPose.REJECTED) == (0, 1, 2)
    first, second = got.poses
    assert first.status == RefinedPose.MAX_ITERATIONS and first.iterations == 7
    assert first.confidence == pytest.approx(0.875)
    assert first.initial_pose.position.x == pytest.approx(0.1)
    assert first.pose.position.z == pytest.approx(0.905)
    assert second.status == RefinedPose.REJECTED and second.status_reason == "low confidence"


def test_tf_message_roundtrip_has_upstream_type_hash(ros):
    sent = _tf_message()
    got, type_hash = _roundtrip(ros, TFMessage, sent, "tf")
    assert got == sent
    assert got.transforms[0].child_frame_id == "obj_000005_can-1"
    assert got.transforms[0].transform.rotation.w == pytest.approx(0.8)
    assert type_hash == UPSTREAM_TYPE_HASHES["tf2_msgs/msg/TFMessage"]


def test_tf2_error_has_upstream_type_hash(ros):
    from tf2_msgs.msg import TF2Error

    sent = TF2Error(error=TF2Error.LOOKUP_ERROR, error_string="no frame")
    got, type_hash = _roundtrip(ros, TF2Error, sent, "tf_error")
    assert got == sent
    assert type_hash == UPSTREAM_TYPE_HASHES["tf2_msgs/msg/TF2Error"]


def test_detection3d_array_roundtrip(ros):
    sent = _detection3d_array()
    got, type_hash = _roundtrip(ros, Detection3DArray, sent, "detections_3d")
    assert got == sent
    assert type_hash == UPSTREAM_TYPE_HASHES["vision_msgs/msg/Detection3DArray"]
    hyp = got.detections[0].results[0]
    assert hyp.hypothesis.class_id == "obj_000005"
    assert hyp.pose.covariance[35] == pytest.approx(0.35)
    assert got.detections[0].bbox.size.y == pytest.approx(0.2)


def test_detection2d_array_roundtrip(ros):
    sent = _detection2d_array()
    got, _ = _roundtrip(ros, Detection2DArray, sent, "detections_2d")
    assert got == sent
    assert got.detections[0].bbox.center.position.x == pytest.approx(320.5)
