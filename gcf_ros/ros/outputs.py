"""Result messages of one refined frame: TF, RefinedPoseArray, Detection3DArray, markers.

All outputs of a frame share the image's header (stamp and optical frame), so TF lookups, RViz and
downstream consumers see one consistent instant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker, MarkerArray

from gcf_ros.pipeline.types import InstanceOutput
from gcf_ros.ros.conversions import fill_pose
from gcf_ros_msgs.msg import RefinedPose, RefinedPoseArray

ACCEPTED_RGBA = (0.1, 0.85, 0.3, 0.8)
MARKER_NS = "gcf_ros"


def tf_message(header, instances: Sequence[InstanceOutput]) -> TFMessage:
    """One transform parent = image optical frame -> child frame per accepted instance."""
    msg = TFMessage()
    for inst in instances:
        if not inst.accepted:
            continue
        tf = TransformStamped()
        tf.header = header
        tf.child_frame_id = inst.child_frame
        fill_pose(tf.transform, inst.T_cam_obj)
        msg.transforms.append(tf)
    return msg


def refined_pose_array(header, instances: Sequence[InstanceOutput]) -> RefinedPoseArray:
    """All instances, rejected ones included with their reason."""
    msg = RefinedPoseArray(header=header)
    for inst in instances:
        p = RefinedPose(
            model_id=inst.model_id,
            instance_id=inst.instance_id,
            confidence=float(inst.confidence),
            iterations=int(min(inst.iterations, 65535)),
            status=int(inst.status),
            status_reason=inst.reason,
        )
        fill_pose(p.pose, inst.T_cam_obj)
        fill_pose(p.initial_pose, inst.T_init)
        msg.poses.append(p)
    return msg


def detection3d_array(header, instances: Sequence[InstanceOutput]) -> Detection3DArray:
    """vision_msgs view of the accepted instances: class id = model id, score = confidence, box =
    the model's box at the refined pose."""
    msg = Detection3DArray(header=header)
    for inst in instances:
        if not inst.accepted:
            continue
        det = Detection3D(header=header, id=inst.instance_id)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = inst.model_id
        hyp.hypothesis.score = float(inst.confidence)
        fill_pose(hyp.pose.pose, inst.T_cam_obj)
        det.results.append(hyp)
        if inst.bbox_obj is not None:
            lo, hi = np.asarray(inst.bbox_obj, dtype=np.float64)
            T_box = inst.T_cam_obj.copy()
            T_box[:3, 3] = inst.T_cam_obj[:3, :3] @ (0.5 * (lo + hi)) + inst.T_cam_obj[:3, 3]
            fill_pose(det.bbox.center, T_box)
            det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in hi - lo)
        msg.detections.append(det)
    return msg


class MarkerBook:
    """Stable marker ids per instance, and DELETE markers for instances that vanished."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}
        self._shown: set[tuple[str, str]] = set()

    def markers(self, header, instances: Sequence[InstanceOutput]) -> MarkerArray:
        msg = MarkerArray()
        shown = set()
        for inst in instances:
            if not inst.accepted or not inst.mesh_uri:
                continue
            m = Marker(header=header, ns=MARKER_NS, id=self._id(inst.key))
            m.type, m.action = Marker.MESH_RESOURCE, Marker.ADD
            fill_pose(m.pose, inst.T_cam_obj)
            m.scale.x = m.scale.y = m.scale.z = float(inst.mesh_scale)
            m.color.r, m.color.g, m.color.b, m.color.a = ACCEPTED_RGBA
            m.mesh_resource = inst.mesh_uri
            m.text = inst.child_frame
            msg.markers.append(m)
            shown.add(inst.key)
        for key in sorted(self._shown - shown):
            gone = Marker(header=header, ns=MARKER_NS, id=self._ids[key], action=Marker.DELETE)
            msg.markers.append(gone)
        self._shown = shown
        return msg

    def _id(self, key: tuple[str, str]) -> int:
        if key not in self._ids:
            self._ids[key] = len(self._ids)
        return self._ids[key]
