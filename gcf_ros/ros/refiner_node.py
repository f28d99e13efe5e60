"""The ``gcf_refiner`` node: images + camera_info + coarse detections in, refined poses out.

    gcf-refiner                                  # packaged config/gcf.yaml, models, weights
    gcf-refiner --ros-args --params-file my.yaml -r image:=/camera/color/image_raw

Threads: the executor thread runs the subscription callbacks, which only check and buffer their
messages (never refine); a worker thread refines the newest matched frame and publishes the
results. Every refused input is counted (``/diagnostics``) and logged at most once per
``WARN_PERIOD_S`` per kind, with its cause; an exception while refining one frame is logged and
counted and the worker goes on with the next frame.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from gcf_ros.core.draw import draw_axes, draw_outline, outline_contours
from gcf_ros.core.models import ModelRegistry
from gcf_ros.gcf.refiner import REJECTED, Detection, Refiner, RefinerConfig, RefineResult
from gcf_ros.resources import default_models_yaml, share_dir
from gcf_ros.ros import outputs
from gcf_ros.ros.conversions import (
    BadInputError,
    CameraModel,
    camera_info_to_model,
    check_image_size,
    stamp_to_s,
)
from gcf_ros.ros.image_codec import ENCODINGS, ImageDecodeError, fill_image, image_to_rgb
from gcf_ros.ros.inputs import Refused, Seed, parse_coarse, parse_detection3d
from gcf_ros.ros.params import NodeParams
from gcf_ros.ros.stats import NodeStats
from gcf_ros.ros.sync import FrameSync
from gcf_ros.ros.tracking import Track, TrackTable
from gcf_ros.ros.worker import LatestQueueWorker
from gcf_ros_msgs.msg import CoarseDetectionArray, RefinedPoseArray

NODE_NAME = "gcf_refiner"
WARN_PERIOD_S = 5.0
CAMERA_BUFFER = 30  # camera_info messages kept for matching by stamp
MIN_DEPTH_M = RefinerConfig.min_depth_m  # closer coarse poses are refused: "behind the camera"
# ROS types of the parameters that are unset by default (NodeParams annotations)
_UNSET_TYPES = {"int | None": Parameter.Type.INTEGER, "float | None": Parameter.Type.DOUBLE}
REFINED_RGB, REJECTED_RGB = (40, 230, 90), (240, 60, 40)


def default_params_yaml() -> Path:
    return share_dir() / "config" / "gcf.yaml"


@dataclass(frozen=True)
class _ImageItem:
    """A checked image waiting for its detections: the message and its arrival time."""

    msg: Image
    stamp: float
    received: float  # time.monotonic()
    epoch: int = 0  # stamp epochs: a jump back in time (a bag loop) starts a new one


@dataclass(frozen=True)
class _Job:
    """One frame to refine; ``detections`` is None for a tracking-only frame."""

    image: _ImageItem
    detections: Any | None

    @property
    def tracking_only(self) -> bool:
        return self.detections is None


class GcfRefinerNode(Node):
    """GCF pose refinement as a ROS 2 node (see the module docstring and the README)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.params = self._declare_parameters()
        self.stats = NodeStats()
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()  # camera, sync, last stamps
        self._cameras: deque[tuple[float, CameraModel]] = deque(maxlen=CAMERA_BUFFER)
        self._last_image_stamp: float | None = None
        self._last_done_stamp = -np.inf
        self._epoch = 0  # incremented when image stamps jump back (bag loop, clock reset)
        self._distortion_warned = False

        self.registry = ModelRegistry.from_yaml(Path(self.params.models or default_models_yaml()))
        self._known_models = set(self.registry.ids)
        for model_id in self.registry.ids:  # load now: errors at start-up, no first-frame stall
            self.registry.render_model(model_id)
        self._mesh_uris = {
            m: Path(self.registry.spec(m).mesh_path).resolve().as_uri() for m in self.registry.ids
        }
        self._class_map = self.params.class_map()
        device = self.params.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            self.get_logger().warning(f"device {device!r} requested but CUDA is unavailable: cpu")
            device = "cpu"
        if self.params.threads > 0:
            torch.set_num_threads(self.params.threads)
        self.refiner = Refiner.from_checkpoint(
            self.registry, self.params.checkpoint or None, device, self._refiner_config()
        )
        trained = self.refiner.predictor.window_size
        if self.params.window_size and self.params.window_size != trained:
            self.get_logger().warning(
                f"window_size {self.params.window_size} px, but the weights were trained at "
                f"{trained} px: expect worse poses (unset, it uses the weights' size)"
            )
        self.device = device

        self.sync: FrameSync[_ImageItem, Any] = FrameSync(
            self.params.sync_slop,
            self.params.image_buffer_size,
            self.params.pending_queue_size,
            self.params.max_stamp_age,
        )
        self.tracks = TrackTable(self.params.track_timeout)
        self._markers = outputs.MarkerBook()
        self._create_interfaces()
        self.worker: LatestQueueWorker[_Job] = LatestQueueWorker(
            self._process, self.params.work_queue_size, self._on_job_dropped, self._on_job_error
        )
        self.get_logger().info(
            f"ready: {len(self._known_models)} models, {self.device}, {self.params.solver} x "
            f"{self.params.iterations}, detections: {self.params.detections_type}, "
            f"inputs {self.params.input_reliability}, "
            f"tracking {'on' if self.params.tracking else 'off'}"
        )

    # ----------------------------------------------------------------------------- set-up
    def _declare_parameters(self) -> NodeParams:
        values = {}
        for f in NodeParams.fields():
            descriptor = ParameterDescriptor(
                description=f.metadata["description"], read_only=not f.metadata["dynamic"]
            )
            default = f.default if f.default is not None else _UNSET_TYPES[f.type]
            values[f.name] = self.declare_parameter(f.name, default, descriptor).value
        params = NodeParams(**values)  # ValueError with the offending setting
        self.add_on_set_parameters_callback(self._on_set_parameters)
        return params

    def _on_set_parameters(self, changes) -> SetParametersResult:
        update = {p.name: p.value for p in changes if p.name in NodeParams.__dataclass_fields__}
        try:
            params = dataclasses.replace(self.params, **update)
        except (TypeError, ValueError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        if hasattr(self, "refiner"):
            self.params = params
            weights = self.refiner.predictor.weights
            self.refiner.config = RefinerConfig.resolve(weights, **self._refiner_config())
        return SetParametersResult(successful=True)

    def _refiner_config(self) -> dict:
        """The parameters' RefinerConfig fields; unset ones are the weights' (``resolve``)."""
        p = self.params
        given = {"iterations": p.iterations, "solver": p.solver, "terms": p.term_list() or None,
                 "window_size": p.window_size, "min_confidence": p.min_confidence}  # fmt: skip
        return {k: v for k, v in given.items() if v is not None}

    def _create_interfaces(self) -> None:
        p = self.params
        sensor_qos = QoSProfile(
            depth=qos_profile_sensor_data.depth,
            reliability=ReliabilityPolicy.RELIABLE
            if p.input_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        self.create_subscription(Image, "image", self._on_image, sensor_qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, sensor_qos)
        det_type = CoarseDetectionArray if p.detections_type == "gcf" else Detection3DArray
        self.create_subscription(det_type, "detections", self._on_detections, 10)
        self._tf_pub = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
        self._poses_pub = self.create_publisher(RefinedPoseArray, "refined_poses", 10)
        self._dets_pub = (
            self.create_publisher(Detection3DArray, "refined_detections", 10)
            if p.publish_refined_detections
            else None
        )
        self._markers_pub = (
            self.create_publisher(MarkerArray, "markers", 10) if p.publish_markers else None
        )
        self._overlay_pub = (
            self.create_publisher(Image, "debug/overlay", 2) if p.publish_overlay else None
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self._diag_last: dict[str, float] = {}

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()

    # ------------------------------------------------------------------------ warnings
    def _refuse(self, kind: str, message: str) -> None:
        """Count a refused input under ``kind``; warn at most once per WARN_PERIOD_S per kind."""
        self.stats.count(kind)
        now = time.monotonic()
        if now - self._warned.get(kind, -np.inf) >= WARN_PERIOD_S:
            self._warned[kind] = now
            total = int(self.stats.counters[kind])
            self.get_logger().warning(f"{message} [{kind}: {total} so far]")

    # ------------------------------------------------------------------------ callbacks
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = camera_info_to_model(msg)
        except BadInputError as err:
            self._refuse(err.kind, f"camera_info refused: {err}")
            return
        if camera.distorted and not self._distortion_warned:
            self._distortion_warned = True
            self.get_logger().warning(
                "camera_info has non-zero distortion: the refiner assumes a pinhole camera, "
                "feed it rectified images (image_rect) and their camera_info"
            )
        with self._lock:
            self._cameras.append((stamp_to_s(msg.header.stamp), camera))

    def _camera_for(self, stamp: float) -> CameraModel | None:
        """The camera_info with the image's stamp (within the slop), else the newest one."""
        with self._lock:
            if not self._cameras:
                return None
            best = min(self._cameras, key=lambda item: abs(item[0] - stamp))
            close = abs(best[0] - stamp) <= self.params.sync_slop
            return best[1] if close else self._cameras[-1][1]

    def _on_image(self, msg: Image) -> None:
        self.stats.tick("image")
        stamp = stamp_to_s(msg.header.stamp)
        try:
            item = self._check_image(msg, stamp)
        except BadInputError as err:
            self._refuse(err.kind, f"image refused: {err}")
            return
        with self._lock:
            if self._last_image_stamp is not None and stamp < self._last_image_stamp - 1.0:
                dropped = self.sync.clear()
                self.tracks.clear()
                self._last_done_stamp = -np.inf
                self._epoch += 1
                self.get_logger().warning(
                    f"image stamps jumped back {self._last_image_stamp - stamp:.1f} s "
                    f"(bag loop or clock reset): buffers and tracks cleared"
                )
                self.stats.count("no_image", len(dropped))
            self._last_image_stamp = stamp
            item = dataclasses.replace(item, epoch=self._epoch)
            result = self.sync.add_image(stamp, item)
        for _, reason in result.dropped:
            self._refuse(reason, f"detection array dropped: {reason.replace('_', ' ')}")
        for image, dets in result.matched:
            self._submit(_Job(image, dets))
        tracked = self.params.tracking and not result.matched and len(self.tracks) > 0
        if tracked and not self.worker.any_queued(lambda j: not j.tracking_only):
            self._submit(_Job(item, None))  # a tracking-only frame, superseded by detections

    def _check_image(self, msg: Image, stamp: float) -> _ImageItem:
        """Cheap checks in the callback; the camera is looked up when the frame is refined (the
        executor may deliver an image before the camera_info published just ahead of it)."""
        if msg.encoding not in ENCODINGS:
            raise BadInputError(
                "bad_encoding",
                f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})",
            )
        if not msg.header.frame_id:
            raise BadInputError("no_frame_id", "image has an empty header.frame_id (TF needs one)")
        if stamp <= 0.0:
            raise BadInputError("stale", "image has a zero stamp")
        return _ImageItem(msg, stamp, time.monotonic())

    def _on_detections(self, msg: Any) -> None:
        self.stats.tick("detections")
        stamp = stamp_to_s(msg.header.stamp)
        if not msg.detections:
            self._refuse("empty_detections", "empty detection array (nothing to refine)")
        with self._lock:
            result = self.sync.add_detections(stamp, msg)
        for _, reason in result.dropped:
            why = reason.replace("_", " ")
            self._refuse(reason, f"detection array ({stamp:.3f}) dropped: {why}")
        for image, dets in result.matched:
            self._submit(_Job(image, dets))

    def _submit(self, job: _Job) -> None:
        stamp = job.image.stamp
        if job.tracking_only:
            self.worker.submit(job, replaces=lambda j: j.tracking_only)
        else:
            self.worker.submit(job, replaces=lambda j: j.tracking_only and j.image.stamp <= stamp)

    def _on_job_dropped(self, job: _Job) -> None:
        self.stats.count("queue_dropped")

    def _on_job_error(self, job: _Job, err: BaseException) -> None:
        cause = "".join(traceback.format_exception_only(type(err), err)).strip()
        self.stats.count("errors")
        self.get_logger().error(
            f"refinement of the frame at {job.image.stamp:.3f} failed: {cause}",
            throttle_duration_sec=WARN_PERIOD_S,
        )
        self.get_logger().debug("".join(traceback.format_exception(err)))

    def _on_reset(self, request, response):
        n = self.tracks.clear()
        response.success, response.message = True, f"cleared {n} track(s)"
        self.get_logger().info(response.message)
        return response

    # ---------------------------------------------------------------------- the worker
    def _process(self, job: _Job) -> None:
        if job.tracking_only and job.image.stamp <= self._last_done_stamp:
            return  # a newer frame was refined meanwhile
        camera = self._camera_for(job.image.stamp)
        msg = job.image.msg
        try:
            if camera is None:
                raise BadInputError("no_camera_info", "no valid camera_info received yet")
            check_image_size(camera, msg.width, msg.height)
            rgb = image_to_rgb(msg)
        except (BadInputError, ImageDecodeError) as err:
            kind = err.kind if isinstance(err, BadInputError) else "bad_image"
            self._refuse(kind, f"frame at {job.image.stamp:.3f} refused: {err}")
            return
        frame_id = job.image.msg.header.frame_id
        seeds, refused = self._seeds(job, frame_id)
        detections = [Detection(s.model_id, s.T_cam_obj, s.instance_id) for s in seeds]
        results = self.refiner.refine(rgb, camera.K, detections)
        instances = [self._output(s, r) for s, r in zip(seeds, results, strict=True)]
        instances += [self._refused_output(r) for r in refused]
        with self._lock:
            # A frame from before a jump back in time (refined while the loop began) must not
            # re-seed the tracks nor hold back the tracking-only frames of the new pass.
            if job.image.epoch == self._epoch:
                self._update_tracks(instances, job.image.stamp, frame_id)
                self._last_done_stamp = max(self._last_done_stamp, job.image.stamp)
        self._publish(job, rgb, camera.K, instances)

    def _seeds(self, job: _Job, frame_id: str) -> tuple[list[Seed], list[Refused]]:
        """Seeds of a frame: its detections (a missing pose falls back to the track) and, in
        tracking mode, the tracked instances those detections do not cover."""
        seeds: list[Seed] = []
        refused: list[Refused] = []
        if job.detections is not None:
            det_frame = job.detections.header.frame_id
            if det_frame and det_frame != frame_id:
                self._refuse(
                    "frame_mismatch",
                    f"detections in frame {det_frame!r} but the image is in {frame_id!r}: "
                    "poses must be in the image's optical frame",
                )
                return [], []
            seeds, refused = self._parse(job.detections)
        for r in refused:
            self._refuse(r.kind, f"detection {r.model_id}/{r.instance_id} refused: {r.reason}")
        tracking = self.params.tracking
        out = []
        for s in seeds:
            if s.note:
                self._refuse("non_unit_quaternion", f"{s.model_id}/{s.instance_id}: {s.note}")
            if s.T_cam_obj is not None:
                out.append(s)
                continue
            track = self.tracks.get(s.model_id, s.instance_id) if tracking else None
            if track is not None:
                out.append(dataclasses.replace(s, T_cam_obj=track.T_cam_obj))
            else:
                reason = "detection has no pose and no track"
                refused.append(Refused(s.model_id, s.instance_id, "no_pose", reason))
                self._refuse("no_pose", f"{s.model_id}/{s.instance_id}: {reason}")
        if tracking:
            covered = {(s.model_id, s.instance_id) for s in out} | {
                (r.model_id, r.instance_id) for r in refused
            }
            for t in self.tracks.active(job.image.stamp, frame_id):
                if (t.model_id, t.instance_id) not in covered:
                    out.append(Seed(t.model_id, t.instance_id, 1.0, t.T_cam_obj))
        return out, refused

    def _parse(self, msg: Any) -> tuple[list[Seed], list[Refused]]:
        if self.params.detections_type == "gcf":
            return parse_coarse(msg, self._known_models, MIN_DEPTH_M)
        return parse_detection3d(msg, self._known_models, MIN_DEPTH_M, self._class_map)

    def _output(self, seed: Seed, r: RefineResult) -> outputs.InstanceOutput:
        spec = self.registry.spec(seed.model_id)
        model = self.registry.get(seed.model_id)
        if r.status == REJECTED:
            self.stats.count("rejected")
        return outputs.InstanceOutput(
            model_id=seed.model_id,
            instance_id=seed.instance_id,
            child_frame=self.params.child_frame(
                seed.model_id, seed.instance_id, spec.tf_name or seed.model_id
            ),
            T_cam_obj=r.T_cam_obj,
            T_init=r.T_init,
            confidence=r.confidence,
            iterations=r.iterations,
            status=r.status,
            reason=r.status_reason,
            mesh_uri=self._mesh_uris[seed.model_id],
            mesh_scale=spec.scale,
            bbox_obj=np.stack([model.bbox_min, model.bbox_max]).astype(np.float64),
        )

    def _refused_output(self, r: Refused) -> outputs.InstanceOutput:
        T = r.T_cam_obj if r.T_cam_obj is not None else np.eye(4)
        return outputs.InstanceOutput(
            r.model_id, r.instance_id, "", T, T, 0.0, 0, REJECTED, r.reason
        )

    def _update_tracks(self, instances, stamp: float, frame_id: str) -> None:
        if not self.params.tracking:
            return
        for inst in instances:
            if inst.accepted:
                self.tracks.update(
                    Track(inst.model_id, inst.instance_id, inst.T_cam_obj, stamp, frame_id)
                )
            else:
                self.tracks.remove(inst.model_id, inst.instance_id)

    def _publish(self, job: _Job, rgb: np.ndarray, K: np.ndarray, instances) -> None:
        header = job.image.msg.header
        p = self.params
        if p.publish_tf:
            tf = outputs.tf_message(header, instances)
            if tf.transforms:
                self._tf_pub.publish(tf)
        self._poses_pub.publish(outputs.refined_pose_array(header, instances))
        if self._dets_pub is not None:
            self._dets_pub.publish(outputs.detection3d_array(header, instances))
        if self._markers_pub is not None:
            self._markers_pub.publish(self._markers.markers(header, instances))
        if self._overlay_pub is not None and self._overlay_pub.get_subscription_count() > 0:
            overlay = self._draw_overlay(rgb, K, instances)
            self._overlay_pub.publish(fill_image(Image(header=header), overlay))
        self.stats.tick("output")
        self.stats.count("frames_refined")
        self.stats.latency(1e3 * (time.monotonic() - job.image.received))

    def _draw_overlay(self, rgb: np.ndarray, K: np.ndarray, instances) -> np.ndarray:
        """Refined outlines (green) and axes; rejected instances outlined in red."""
        h, w = rgb.shape[:2]
        out = rgb
        for inst in instances:
            if inst.model_id not in self._known_models or not inst.iterations:
                continue
            model = self.registry.get(inst.model_id)
            color = REFINED_RGB if inst.accepted else REJECTED_RGB
            contours = outline_contours(model, K, inst.T_cam_obj, (w, h), self.refiner.renderer)
            out = draw_outline(out, contours, color)
            if inst.accepted:
                out = draw_axes(out, K, inst.T_cam_obj, 0.5 * model.diameter)
        return out

    # ----------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        with self._lock:
            expired = self.sync.expire(now.nanoseconds * 1e-9)
        for _ in expired:
            self._refuse("no_image", "detection array dropped: its image never arrived")
        snap = self.stats.snapshot()
        snap["queued_frames"] = float(self.worker.queued())
        snap["pending_detections"] = float(self.sync.pending_count())
        snap["tracks"] = float(len(self.tracks))
        problems = [
            k
            for k, v in snap.items()
            if k not in _NOT_PROBLEMS
            and not k.endswith(("_hz", "_ms"))
            and v > self._diag_last.get(k, 0.0)
        ]
        self._diag_last = snap
        status = DiagnosticStatus(name=f"{self.get_name()}: refinement", hardware_id=self.device)
        if not self.worker.is_alive():
            status.level, status.message = DiagnosticStatus.ERROR, "refinement worker stopped"
        elif problems:
            status.level = DiagnosticStatus.WARN
            status.message = "new: " + ", ".join(sorted(problems))
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        status.values = [KeyValue(key=k, value=f"{v:.6g}") for k, v in sorted(snap.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = now.to_msg()
        self._diag_pub.publish(msg)


_NOT_PROBLEMS = {
    "frames_refined", "queued_frames", "pending_detections", "tracks", "empty_detections",
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Console script ``gcf-refiner`` / ``gcf_refiner``: the packaged config/gcf.yaml is loaded
    unless a ``--params-file`` is given."""
    args = list(sys.argv if argv is None else argv)
    if "--params-file" not in args:  # first, so that the caller's -p name:=value still win
        args[1:1] = ["--ros-args", "--params-file", str(default_params_yaml()), "--"]
    rclpy.init(args=args)
    node = None
    try:
        node = GcfRefinerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (FileNotFoundError, ValueError) as err:
        print(f"gcf_refiner: {err}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
