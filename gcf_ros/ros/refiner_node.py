"""The ``gcf_refiner`` node: images + camera_info + coarse detections (+ registered depth, with
``use_depth``) in, refined poses out.

    gcf-refiner                                  # packaged config/gcf.yaml, models, weights
    gcf-refiner --ros-args --params-file my.yaml -r image:=/camera/color/image_raw

The node turns messages into observations for the frame pipeline (:mod:`gcf_ros.pipeline`: seeds,
tracks, refinement) and publishes what it returns.
Threads: the executor thread runs the subscription callbacks, which only check and buffer their
messages (never refine); a worker thread refines the newest matched frame and publishes the
results. Every refused input is counted (``/diagnostics``) and logged at most once per
``WARN_PERIOD_S`` per kind, with its cause; an exception while refining one frame is logged and
counted and the worker goes on with the next frame. A frame whose stamp is older than
``max_latency`` by the node's clock is not started (``stale_dropped``). Shutdown (Ctrl-C) cancels
the refinement in progress between two iterations, joins the worker, and skips publishing once the
context is gone; start-up errors are one line (:mod:`gcf_ros.ros.startup`, status 2).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from gcf_ros.gcf.refiner import RefinementCancelledError, RefinerConfig
from gcf_ros.pipeline.pipeline import FramePipeline
from gcf_ros.pipeline.stats import Health, NodeStats
from gcf_ros.pipeline.types import Detections, FrameResult, Observation
from gcf_ros.resources import default_models_yaml, share_dir
from gcf_ros.ros import outputs
from gcf_ros.ros.camera_sync import CameraBook
from gcf_ros.ros.conversions import BadInputError, CameraModel, camera_info_to_model, stamp_to_s
from gcf_ros.ros.depth_sync import DepthBook
from gcf_ros.ros.image_codec import ENCODINGS, ImageDecodeError, fill_image, image_to_rgb
from gcf_ros.ros.inputs import DETECTION_INPUTS
from gcf_ros.ros.params import NodeParams
from gcf_ros.ros.qos import (
    LOST_IMAGES_HINT,
    POLL_PERIOD_S,
    PROFILE_ENV,
    SensorSubscription,
    large_messages_profile,
)
from gcf_ros.ros.startup import (
    StartupError,
    check_cli_types,
    load_models,
    load_refiner,
    other_nodes_named_alike,
    parameter_descriptor,
    parameter_error_line,
    resolve_device,
)
from gcf_ros.ros.sync import DROP_REASONS, FrameSync
from gcf_ros.ros.worker import LatestQueueWorker
from gcf_ros_msgs.msg import RefinedPoseArray

NODE_NAME = "gcf_refiner"
WARN_PERIOD_S = 5.0
STOP_TIMEOUT_S = 1.5  # the worker's time to end its refinement (one iteration) at shutdown
NAME_CHECK_S = 2.0  # after start-up: is another node of this name on the graph (discovery)?
FAR_BEHIND_S = 60.0  # stale frames this old: stamps and node clock disagree (a hint in the warning)
CAMERA_BUFFER = 100  # camera_info messages kept for matching by stamp
CAMERA_WAIT_S = 0.5  # the worker waits this long for a frame's camera_info still in flight
BYTES_PER_PIXEL = 4  # the widest encoding (rgba8, bgra8): max_image_pixels bounds the data too
# ROS types of the parameters that are unset by default (NodeParams annotations)
_UNSET_TYPES = {"int | None": Parameter.Type.INTEGER, "float | None": Parameter.Type.DOUBLE}
LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}


def default_params_yaml() -> Path:
    return share_dir() / "config" / "gcf.yaml"


@dataclass(frozen=True)
class _ImageItem:
    """A checked image waiting for its detections: the message and its arrival time."""

    msg: Image
    stamp: float
    received: float  # time.monotonic()
    epoch: int = 0  # stamp epochs: a jump back in time (a bag loop) starts a new one

    @property
    def nbytes(self) -> int:
        return len(self.msg.data)


@dataclass(frozen=True)
class _Job:
    """One frame to refine; ``detections`` is None for a tracking-only frame."""

    image: _ImageItem
    detections: Detections | None

    @property
    def tracking_only(self) -> bool:
        return self.detections is None


class GcfRefinerNode(Node):
    """GCF pose refinement as a ROS 2 node (see the module docstring and the README)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.params = self._declare_parameters()
        self.stats = NodeStats()
        self._health = Health()
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()  # sync
        self._cameras = CameraBook(self.params.sync_slop, CAMERA_BUFFER, CAMERA_WAIT_S)
        p = self.params  # depth is kept like the images that wait for their detections
        self._depth = (
            DepthBook(p.sync_slop, p.depth_unit_scale, p.image_buffer_size, p.image_buffer_mb << 20)
            if p.use_depth
            else None
        )
        self._distortion_warned = False
        self._newest_camera_noted = False
        self._lost_images_hinted = False

        # meshes and weights load now: errors at start-up (StartupError), no first-frame stall
        self.registry = load_models(Path(self.params.models or default_models_yaml()))
        self._known_models = set(self.registry.ids)
        self._class_map = self.params.class_map()
        device = resolve_device(self.params.device, self.get_logger().warning)
        self.placement = self.params.placement(device)  # renderer, solve and network
        if self.params.threads > 0:
            torch.set_num_threads(self.params.threads)
        self.refiner = load_refiner(
            self.registry, self.params.checkpoint, self.placement, self._refiner_config()
        )
        trained = self.refiner.predictor.window_size
        if self.params.window_size and self.params.window_size != trained:
            self.get_logger().warning(
                f"window_size {self.params.window_size} px, but the weights were trained at "
                f"{trained} px: expect worse poses (unset, it uses the weights' size)"
            )
        self.device = device
        # tf_child_frame_format and track_timeout are read-only parameters
        self.pipeline = FramePipeline(
            self.refiner,
            self.params.child_frame,
            self.params.track_timeout,
            self._refuse,
            self.params.max_detections_per_frame,
        )
        self.tracks = self.pipeline.tracks

        self.sync: FrameSync[_ImageItem, Detections] = FrameSync(
            self.params.sync_slop,
            self.params.image_buffer_size,
            self.params.pending_queue_size,
            self.params.max_stamp_age,
            self.params.image_buffer_mb * 2**20,
            lambda item: item.nbytes,
        )
        self._markers = outputs.MarkerBook()
        self._create_interfaces()
        self.worker: LatestQueueWorker[_Job] = LatestQueueWorker(
            self._process, self.params.work_queue_size, self._on_job_dropped, self._on_job_error
        )
        self.refiner.cancel = self.worker.stopping  # shutdown ends a refinement between iterations
        self._name_timer = self.create_timer(NAME_CHECK_S, self._check_unique_name)
        self.get_logger().info(
            f"ready: {len(self._known_models)} models, {self.device} "
            f"({self.placement.renderer} renderer, {self.placement.network_backend} network), "
            f"{self.params.solver} x "
            f"{self.params.iterations}, detections: {self.params.detections_type}, "
            f"inputs {self.params.input_reliability}, "
            f"tracking {'on' if self.params.tracking else 'off'} "
            f"({self.params.tracking_iterations} iterations from a track), "
            f"depth {'on' if self.params.use_depth else 'off'}"
        )

    # ----------------------------------------------------------------------------- set-up
    def _declare_parameters(self) -> NodeParams:
        values = {}
        for f in NodeParams.fields():
            default = f.default if f.default is not None else _UNSET_TYPES[f.type]
            values[f.name] = self.declare_parameter(f.name, default, parameter_descriptor(f)).value
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
        sensors: list[tuple[str, Any, Any]] = [
            ("image", Image, self._on_image),
            ("camera_info", CameraInfo, self._on_camera_info),
        ]
        if p.use_depth:  # registered depth, with the QoS of the image
            sensors.append(("depth", Image, self._on_depth))
        self._sensor_subs = tuple(  # reliability fixed, or following the publishers (ros/qos.py)
            SensorSubscription(self, msg_type, topic, callback, p.input_reliability)
            for topic, msg_type, callback in sensors
        )
        if p.input_reliability == "auto":
            self._qos_timer = self.create_timer(POLL_PERIOD_S, self._update_input_qos)
        det_type = DETECTION_INPUTS[p.detections_type][0]
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

    def _update_input_qos(self) -> None:
        for sub in self._sensor_subs:
            sub.update()

    def destroy_node(self) -> None:
        """Stop the worker (cancelling its refinement between iterations), then the node."""
        if not self.worker.stop(STOP_TIMEOUT_S):
            message = f"the refinement did not stop within {STOP_TIMEOUT_S} s"
            if self.context.ok():
                self.get_logger().warning(message)
            else:  # Ctrl-C shut the context down: a log call would fail to reach /rosout
                print(f"[WARN] [{self.get_name()}]: {message}", file=sys.stderr)
        super().destroy_node()

    def _check_unique_name(self) -> None:
        """Once, after discovery: warn when another node has this fully-qualified name."""
        self.destroy_timer(self._name_timer)
        others = other_nodes_named_alike(self)
        if others:
            self.get_logger().warning(
                f"{others} other node(s) named {self.get_fully_qualified_name()} on the graph: "
                "each refines and publishes every frame; give this one another name "
                "(--ros-args -r __node:=<name>) or stop the other"
            )

    # ------------------------------------------------------------------------ warnings
    def _refuse(self, kind: str, message: str) -> None:
        """Count a refused input under ``kind``; warn at most once per WARN_PERIOD_S per kind."""
        self.stats.count(kind)
        if kind == "no_image" and not self._lost_images_hinted:
            self._hint_lost_images()
        now = time.monotonic()
        if now - self._warned.get(kind, -np.inf) >= WARN_PERIOD_S:
            self._warned[kind] = now
            total = int(self.stats.counters[kind])
            self.get_logger().warning(f"{message} [{kind}: {total} so far]")

    def _hint_lost_images(self) -> None:
        """Once, when detection arrays keep arriving without their images: the likely cause."""
        n = int(self.stats.counters["no_image"])
        if n < LOST_IMAGES_HINT:
            return
        self._lost_images_hinted = True
        self.get_logger().warning(
            f"{n} detection arrays came without their image: images are lost in transport "
            f"(image: {self._sensor_subs[0].describe()}). Likely cause: large images over best "
            "effort (one lost fragment loses the image) or a QoS mismatch with the camera "
            "driver. Fix: publish images reliable (input_reliability auto follows), or start "
            f"the driver with {PROFILE_ENV}={large_messages_profile()}"
        )

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
        self._cameras.add(stamp_to_s(msg.header.stamp), camera)

    def _camera_for(self, image: _ImageItem) -> CameraModel:
        """The camera_info of the image's stamp (:class:`CameraBook`: exact, within the slop, or
        the newest while K has not changed; it waits briefly for one still in flight). Runs on the
        worker. BadInputError when there is none to trust."""
        match = self._cameras.lookup(image.stamp, image.msg.width, image.msg.height)
        if match.how != "exact":
            self.stats.count(f"camera_info_{match.how}")
        if match.how == "newest" and not self._newest_camera_noted:
            self._newest_camera_noted = True
            self.get_logger().info(
                "camera_info stamps do not match the images': using the newest camera_info while "
                "its K and size stay unchanged (frames are refused when they change)"
            )
        return match.camera

    def _on_depth(self, msg: Image) -> None:
        """Buffer a depth image; it is matched and checked when its frame is refined."""
        if self._depth is not None:
            self._depth.add(stamp_to_s(msg.header.stamp), msg)

    def _on_image(self, msg: Image) -> None:
        self.stats.tick("image")
        stamp = stamp_to_s(msg.header.stamp)
        try:
            item = self._check_image(msg, stamp)
        except BadInputError as err:
            self._refuse(err.kind, f"image refused: {err}")
            return
        with self._lock:
            epoch, jump = self.pipeline.stamp_image(stamp)  # a jump clears the tracks
            if jump:
                dropped = self.sync.clear()
                if self._depth is not None:
                    self._depth.clear()
                self.get_logger().warning(
                    f"image stamps jumped back {jump:.1f} s "
                    f"(bag loop or clock reset): buffers and tracks cleared"
                )
                self.stats.count("no_image", len(dropped))
            item = dataclasses.replace(item, epoch=epoch)
            result = self.sync.add_image(stamp, item)
        for _, reason in result.dropped:
            self._refuse(reason, f"detection array dropped: {DROP_REASONS[reason]}")
        for _ in result.evicted:
            self._refuse(
                "image_buffer_full",
                f"image buffer over image_buffer_mb ({self.params.image_buffer_mb} MB): the oldest "
                "image evicted early (late detection arrays may miss it)",
            )
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
        limit = self.params.max_image_pixels
        if msg.width * msg.height > limit or len(msg.data) > BYTES_PER_PIXEL * limit:
            raise BadInputError(
                "image_too_large",
                f"image of {msg.width} x {msg.height} pixels, {len(msg.data)} bytes: over "
                f"max_image_pixels ({limit})",
            )
        return _ImageItem(msg, stamp, time.monotonic())

    def _on_detections(self, msg: Any) -> None:
        self.stats.tick("detections")
        stamp = stamp_to_s(msg.header.stamp)
        if not msg.detections:
            self._refuse("empty_detections", "empty detection array (nothing to refine)")
        parse = DETECTION_INPUTS[self.params.detections_type][1]
        min_depth = self.refiner.config.min_depth_m  # closer: refused, "behind the camera"
        limit = self.params.max_detections_per_frame
        seeds, refused = parse(msg, self._known_models, min_depth, self._class_map, limit)
        detections = Detections(msg.header.frame_id, tuple(seeds), tuple(refused))
        now = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            result = self.sync.add_detections(stamp, detections, now)
        for _, reason in result.dropped:
            why = DROP_REASONS[reason]
            self._refuse(reason, f"detection array ({stamp:.3f}) dropped: {why}")
        for image, dets in result.matched:
            self._submit(_Job(image, dets))

    def _submit(self, job: _Job) -> None:
        if self._stale(job):
            return  # would push a fresher frame out of the queue, then be dropped itself
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
        if job.tracking_only and self.pipeline.superseded(job.image.stamp):
            return  # a newer frame was refined meanwhile
        if self._stale(job):
            return
        obs = self._observation(job)
        if obs is None:
            return
        try:
            p = self.params
            result = self.pipeline.process(obs, p.tracking, p.tracking_iterations)
        except RefinementCancelledError:
            return  # shutting down
        if result.rejected:
            self.stats.count("rejected", result.rejected)
        try:
            self._publish(job, obs, result)
        except Exception:
            if self.context.ok():
                raise
            # shut down while publishing (Ctrl-C): nothing left to publish to

    def _stale(self, job: _Job) -> bool:
        """Whether the frame is older than ``max_latency`` by the node's clock (counted)."""
        age = self.get_clock().now().nanoseconds * 1e-9 - job.image.stamp
        limit = self.params.max_latency
        if age <= limit:
            return False
        hint = " (it waited for a slower refinement; a larger max_latency refines it late)"
        if age > FAR_BEHIND_S:
            hint = " (stamps far behind the node's clock: a bag played without use_sim_time?)"
        self._refuse(
            "stale_dropped",
            f"frame at {job.image.stamp:.3f} not refined: {age:.2f} s old > max_latency "
            f"{limit} s{hint}",
        )
        return True

    def _observation(self, job: _Job) -> Observation | None:
        """The job's image decoded, with its camera's K; None (counted) when refused."""
        image, msg = job.image, job.image.msg
        try:
            camera = self._camera_for(image)
            rgb = image_to_rgb(msg)
        except (BadInputError, ImageDecodeError) as err:
            kind = err.kind if isinstance(err, BadInputError) else "bad_image"
            self._refuse(kind, f"frame at {image.stamp:.3f} refused: {err}")
            return None
        frame_id = msg.header.frame_id
        depth_m, note = self._depth_of(image)
        return Observation(image.stamp, frame_id, rgb, camera.K, job.detections, image.epoch,
                           depth_m, note)  # fmt: skip

    def _depth_of(self, image: _ImageItem) -> tuple[np.ndarray | None, str]:
        """The frame's registered depth, metres (:class:`DepthBook`; it waits at most
        ``sync_slop`` for one in flight), or None and why (counted and warned): then the frame is
        refined RGB-only."""
        if self._depth is None:
            return None, ""
        msg = image.msg
        got = self._depth.lookup(image.stamp, msg.width, msg.height, msg.header.frame_id)
        if got.depth_m is None:
            self._refuse(got.kind, f"frame at {image.stamp:.3f}: {got.note}")
        else:
            self.stats.count("depth_used")
        return got.depth_m, got.note

    def _publish(self, job: _Job, obs: Observation, result: FrameResult) -> None:
        if not self.context.ok():
            return  # shut down (Ctrl-C) during the refinement
        header = job.image.msg.header
        instances = result.instances
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
            overlay = self.pipeline.overlay(obs, result)
            self._overlay_pub.publish(fill_image(Image(header=header), overlay))
        self.stats.tick("output")
        self.stats.count("frames_refined")
        self.stats.latency(1e3 * (time.monotonic() - job.image.received))

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
        level, message = self._health.assess(snap, self.worker.is_alive())
        status = DiagnosticStatus(name=f"{self.get_name()}: refinement", hardware_id=self.device,
                                  level=LEVELS[level], message=message)  # fmt: skip
        status.values = [KeyValue(key=k, value=f"{v:.6g}") for k, v in sorted(snap.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = now.to_msg()
        self._diag_pub.publish(msg)


def main(argv: list[str] | None = None) -> int:
    """Console script ``gcf-refiner`` / ``gcf_refiner``: the packaged config/gcf.yaml is loaded
    unless a ``--params-file`` is given; exit status 0, or 2 with one line on a start-up error.

    Run as the process (``argv`` None) it ends the process itself once the node is shut down
    (:func:`_exit_now`): the interpreter's own teardown of torch takes 1-2 s on a loaded machine,
    and Ctrl-C must end the process within 2 s. Called with ``argv`` it returns the status.
    """
    status = _run(list(sys.argv if argv is None else argv))
    if argv is None:
        _exit_now(status)
    return status


def _run(args: list[str]) -> int:
    if "--params-file" not in args:  # first, so that the caller's -p name:=value still win
        args[1:1] = ["--ros-args", "--params-file", str(default_params_yaml()), "--"]
    try:
        check_cli_types(args)
    except StartupError as err:
        print(f"gcf_refiner: {err}", file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node = None
    try:
        node = GcfRefinerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterException as err:  # a type or range the descriptor refused
        print(f"gcf_refiner: {parameter_error_line(err)}", file=sys.stderr)
        return 2
    except (StartupError, ValueError) as err:
        print(f"gcf_refiner: {err}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()  # cancels the refinement, joins the worker
        rclpy.try_shutdown()
    return 0


def _exit_now(status: int) -> None:
    """End the process after a clean shutdown: atexit handlers and buffers, then ``os._exit``,
    skipping module teardown (slow with torch) and never ending the interpreter under a worker
    still in a long torch call (SIGABRT, "terminate called without an active exception")."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
