#!/usr/bin/env python
"""Mutation check: does the test suite fail when the product breaks?

Copies the working tree (tracked and untracked-but-not-ignored files, not .venv/out/runs) to a
temporary folder, checks that the relevant tests pass there, then applies each sabotage below --
one exact text replacement in one file, a semantic break a reviewer would try -- to a fresh copy
and runs the tests named for it. A sabotage is *caught* when those tests fail (pytest exit status
1); it is MISSED when they pass. Exit status 0 only when every sabotage is caught.

    source env.sh && python scripts/mutation_check.py            # everything (~10 min on 2 cores)
    python scripts/mutation_check.py --list                      # the sabotages and their tests
    python scripts/mutation_check.py --only tf-initial-pose --only add-median

A pattern that is not found exactly once stops the check before anything runs (exit status 2):
the list must follow the code, it cannot go stale silently. The copy imports its own gcf_ros
(PYTHONPATH; checked), the ROS message packages come from the venv, the LM-O data from
$GCF_LMO_ROOT or <repo>/../shared/data/lmo (required).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Tests, fastest discriminating ones first (pytest -x stops at the first failure).
EXACT = "test/gcf/test_refiner_exact_field.py"
CAMERA = "test/core/test_camera.py"
RAYCAST = ["test/core/test_render_raycast.py", "test/core/test_render_agreement.py"]
SHIPPED = "test/gcf/test_shipped_weights.py::test_refines_held_out_synthetic_samples"
NODE = "test/ros/test_refiner_node.py"
MARKERS = f"{NODE}::test_markers_overlay_diagnostics_and_vanished_instances"
VISION = f"{NODE}::test_vision_msgs_in_and_out_device_fallback_and_runtime_parameters"
HAS_POSE = f"{NODE}::test_has_pose_false_with_tracking_is_seeded_from_the_track"
FAULT = f"{NODE}::test_an_exception_inside_refine_is_counted_and_the_next_frame_is_refined"
BAG_LOOP = f"{NODE}::test_a_bag_loop_clears_tracks_and_the_node_keeps_refining"
HARNESS = "test/eval/test_harness.py"
METRICS = "test/eval/test_metrics.py"
DEMO = "test/test_tools.py::test_gcf_demo_runs_the_node_on_the_bundled_sequence"
BENCH = "test/bench/test_bench_cli.py::test_accuracy_plot_with_stored_baselines"
DATA_TESTS = ["test/core/test_bop.py", "test/eval/test_metrics.py"]
HOOK = "test/gcf/test_refiner_hook.py"
LIFECYCLE = "test/ros/test_lifecycle.py"
PARAMS = "test/ros/test_params.py"
WINDOWS = "test/train/test_shards.py"
DELIVERY = "test/ros/test_delivery.py"
EVERY_FRAME = f"{DELIVERY}::test_every_full_size_frame_reaches_the_default_node"
RELIABLE_SENDER = f"{EVERY_FRAME}[reliable-sender]"
PROFILE_SENDER = f"{EVERY_FRAME}[best-effort-sender-with-profile]"
HINT = f"{DELIVERY}::test_arrays_without_their_images_give_one_hint"
DEPTH_TERM = "test/gcf/test_depth_term.py"
INFERENCE = "test/gcf/test_inference.py"
COARSE = "test/gcf/test_refiner_coarse.py"
CAPS = "test/gcf/test_refiner_hook.py::test_a_detection_runs_its_own_iteration_count_in_the_batch"
TRACKED_SEEDS = (
    "test/pipeline/test_pipeline.py::"
    "test_seeds_from_tracks_get_the_tracking_iterations_fresh_detections_the_refiners"
)
TORCH_RASTER = "test/core/test_render_torch.py"
EXACT_FIELD_DISTANCE = (
    "test/gcf/test_refiner_exact_field.py::"
    "test_distance_trust_region_holds_the_pose_near_its_initial_distance"
)
WITHOUT_FIELD_DISTANCE = (
    "test/gcf/test_refiner_exact_field.py::"
    "test_without_the_field_the_distance_stays_near_the_detections"
)
OCCLUDERS = "test/gcf/test_occluders.py"
UNTRAINED = "test/gcf/test_weights_meta.py::test_an_untrained_model_is_refined_without_the_field"
STRIDED = (
    "test/gcf/test_network.py::test_strided_weights_compute_the_old_network_on_the_averaged_window"
)
SNAPSHOT = "test/core/test_model_snapshot.py"
DEPTH_NODE = "test/ros/test_depth.py"
DEPTH_NODE_E2E = (
    f"{DEPTH_NODE}::test_the_node_refines_with_registered_depth_and_notes_every_frame_without"
)
DEPTH_EVAL = "test/eval/test_depth_input.py::test_gcf_method_hands_the_depth_to_the_refiner"

RESULT_LINE = "for it in range(iterations):"
RESULT_T = "det.model_id, det.instance_id, state.T[b].copy(), state.T0[b].copy(),"


@dataclass(frozen=True)
class Sabotage:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: list[str]
    env: dict = field(default_factory=dict)  # extra environment (a data sabotage)
    caught_marker: str = ""  # the output line that proves a data sabotage was caught


def _t(*tests) -> list[str]:
    out: list[str] = []
    for t in tests:
        out += t if isinstance(t, list) else [t]
    return out


SABOTAGES = [
    # --- the seven the audit found caught ------------------------------------------------------
    Sabotage("refiner-returns-initial", "the refiner returns the initial pose",
             "gcf_ros/gcf/refiner.py", RESULT_T,
             "det.model_id, det.instance_id, state.T0[b].copy(), state.T0[b].copy(),",
             _t(EXACT, SHIPPED, DEMO)),
    Sabotage("network-zero-field", "the network outputs a zero field",
             "gcf_ros/gcf/predictor.py", "return field, weight * render.mask",
             "return torch.zeros_like(field), weight * render.mask", _t(SHIPPED, DEMO)),
    Sabotage("projection-jacobian-sign", "sign error in the projection Jacobian (du/dZ)",
             "gcf_ros/core/camera.py",
             "row_u = torch.stack([fx * inv_z, zero, -fx * X * inv_z * inv_z], dim=-1)",
             "row_u = torch.stack([fx * inv_z, zero, fx * X * inv_z * inv_z], dim=-1)",
             _t(CAMERA, EXACT)),
    Sabotage("update-jacobian-sign", "sign error in the update Jacobian (rotation, row x)",
             "gcf_ros/core/pose_update.py", "torch.stack([i, o, o, o, dz, -dy], -1)",
             "torch.stack([i, o, o, o, -dz, dy], -1)", _t(CAMERA, EXACT, DEMO)),
    Sabotage("raycast-half-pixel", "the raycaster's pixel centres shifted by half a pixel",
             "gcf_ros/core/render/raycast.py",
             "np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing=",
             "np.arange(size, dtype=np.float64) + 0.5, np.arange(size, dtype=np.float64) + 0.5, "
             "indexing=", RAYCAST),
    Sabotage("swapped-channels", "the network sees BGR instead of RGB",
             "gcf_ros/gcf/inputs.py", "return windows_rgb_u8.permute(0, 3, 1, 2)",
             "return windows_rgb_u8.flip(-1).permute(0, 3, 1, 2)", _t(SHIPPED, DEMO)),
    Sabotage("one-iteration", "the refiner stops after one iteration",
             "gcf_ros/gcf/refiner.py", RESULT_LINE,
             "for it in range(min(1, iterations)):", _t(SHIPPED, DEMO)),
    # --- the five the audit found uncaught -----------------------------------------------------
    Sabotage("tf-initial-pose", "/tf publishes the initial pose",
             "gcf_ros/ros/outputs.py", "fill_pose(tf.transform, inst.T_cam_obj)",
             "fill_pose(tf.transform, inst.T_init)", _t(MARKERS, DEMO)),
    Sabotage("harness-reports-initial", "gcf-eval reports the initial errors as refined",
             "gcf_ros/eval/harness.py", "for T in (T0, out.T_cam_obj[b])", "for T in (T0, T0)",
             _t(HARNESS)),
    Sabotage("gcf-method-returns-initial", "gcf-eval --method gcf returns the initial poses",
             "gcf_ros/eval/methods.py", "T = np.stack([r.T_cam_obj for r in results])",
             "T = np.stack([r.T_init for r in results])", _t(HARNESS)),
    Sabotage("soft-render-returns-initial", "the soft-rasterizer baselines return the initial "
             "poses", "gcf_ros/eval/methods.py",
             "return MethodOutput(result.T_cam_obj, iterations, time.perf_counter() - t0)",
             "return MethodOutput(np.array(T_init), iterations, time.perf_counter() - t0)",
             _t(HARNESS)),
    Sabotage("add-median", "ADD is the median, not the mean, vertex distance",
             "gcf_ros/eval/metrics.py", "return float(np.linalg.norm(d, axis=1).mean())",
             "return float(np.median(np.linalg.norm(d, axis=1)))", _t(METRICS)),
    # --- the weak spots: each against the one test that must catch it --------------------------
    Sabotage("real-frames/one-iteration", "one iteration, on the real-frame demo test alone",
             "gcf_ros/gcf/refiner.py", RESULT_LINE,
             "for it in range(min(1, iterations)):", _t(DEMO)),
    Sabotage("real-frames/swapped-channels", "BGR input, on the real-frame demo test alone",
             "gcf_ros/gcf/inputs.py", "return windows_rgb_u8.permute(0, 3, 1, 2)",
             "return windows_rgb_u8.flip(-1).permute(0, 3, 1, 2)", _t(DEMO)),
    Sabotage("shipped-weights/one-iteration", "one iteration, on the shipped-weights test alone",
             "gcf_ros/gcf/refiner.py", RESULT_LINE,
             "for it in range(min(1, iterations)):", _t(SHIPPED)),
    Sabotage("shipped-weights/swapped-channels", "BGR input, on the shipped-weights test alone",
             "gcf_ros/gcf/inputs.py", "return windows_rgb_u8.permute(0, 3, 1, 2)",
             "return windows_rgb_u8.flip(-1).permute(0, 3, 1, 2)", _t(SHIPPED)),
    Sabotage("demo/node-publishes-coarse-poses", "the node's refiner does nothing (the demo)",
             "gcf_ros/pipeline/pipeline.py", "T_cam_obj=r.T_cam_obj,", "T_cam_obj=r.T_init,",
             _t(DEMO)),
    Sabotage("bench/initial-accuracy", "gcf-bench reports another initial accuracy",
             "gcf_ros/bench/accuracy.py",
             "initial = summarize([r.initial for r in records]).add_s_01d",
             "initial = summarize([r.initial for r in records]).acc_pi6", _t(BENCH)),
    Sabotage("markers/all-rejected", "the node rejects every instance (markers test)",
             "gcf_ros/pipeline/pipeline.py", "status=r.status,", "status=REJECTED,",
             _t(MARKERS)),
    Sabotage("markers/never-deleted", "markers of vanished instances are not deleted",
             "gcf_ros/ros/outputs.py", "self._shown = shown", "self._shown = set()",
             _t(MARKERS)),
    Sabotage("markers/initial-pose", "markers drawn at the initial pose",
             "gcf_ros/ros/outputs.py", "fill_pose(m.pose, inst.T_cam_obj)",
             "fill_pose(m.pose, inst.T_init)", _t(MARKERS)),
    Sabotage("refined-detections/initial-pose", "refined_detections carry the initial pose",
             "gcf_ros/ros/outputs.py", "fill_pose(hyp.pose.pose, inst.T_cam_obj)",
             "fill_pose(hyp.pose.pose, inst.T_init)", _t(VISION)),
    Sabotage("camera-fd/update-jacobian-sign", "update Jacobian sign, on test_camera alone",
             "gcf_ros/core/pose_update.py", "torch.stack([i, o, o, o, dz, -dy], -1)",
             "torch.stack([i, o, o, o, -dz, dy], -1)", _t(CAMERA)),
    Sabotage("camera-fd/apply-update-sign", "apply_update moves the wrong way in translation",
             "gcf_ros/core/pose_update.py", "t = T_cam_obj[..., :3, 3] + xi[..., :3]",
             "t = T_cam_obj[..., :3, 3] - xi[..., :3]", _t(CAMERA)),
    # --- node behaviours of the issue ----------------------------------------------------------
    Sabotage("node/bag-loop-keeps-tracks", "a bag loop does not clear the tracks",
             "gcf_ros/pipeline/pipeline.py",
             "self.tracks.clear()\n                self._last_done = -np.inf",
             "self._last_done = -np.inf", _t(BAG_LOOP)),
    Sabotage("node/bag-loop-keeps-last-stamp", "a bag loop keeps the last refined stamp",
             "gcf_ros/pipeline/pipeline.py",
             "self.tracks.clear()\n                self._last_done = -np.inf",
             "self.tracks.clear()", _t(BAG_LOOP)),
    Sabotage("node/bag-loop-in-flight-frame", "a frame of the old pass re-seeds the tracks",
             "gcf_ros/pipeline/pipeline.py", "if obs.epoch == self._epoch:", "if True:",
             _t(BAG_LOOP)),
    Sabotage("node/exception-stops-worker", "an exception inside refine ends the worker",
             "gcf_ros/ros/worker.py",
             "if self._on_error is not None:\n                    self._on_error(job, err)",
             "raise", _t(FAULT)),
    Sabotage("node/has-pose-false-ignores-track", "has_pose: false never uses the track",
             "gcf_ros/pipeline/tracking.py",
             "track = tracks.get(s.model_id, s.instance_id) if tracks is not None else None",
             "track = None", _t(HAS_POSE)),
    Sabotage("delivery/auto-stays-best-effort", "input_reliability auto never turns reliable",
             "gcf_ros/ros/qos.py",
             "return RELIABLE if offered and all(r == RELIABLE for r in offered) else BEST_EFFORT",
             "return BEST_EFFORT", _t(RELIABLE_SENDER)),
    Sabotage("delivery/profile-default-segment", "the profile's SHM segment is the default 512 KB",
             "config/fastdds_large_messages.xml", "<segment_size>33554432</segment_size>",
             "<segment_size>524288</segment_size>", _t(PROFILE_SENDER)),
    Sabotage("delivery/hint-repeats", "the lost-images hint is logged for every drop",
             "gcf_ros/ros/refiner_node.py",
             'if kind == "no_image" and not self._lost_images_hinted:', 'if kind == "no_image":',
             _t(HINT)),
    # --- shutdown, stale frames, parameters --------------------------------------------------
    Sabotage("lifecycle/no-cancel", "Ctrl-C does not cancel the refinement in progress",
             "gcf_ros/gcf/refiner.py", "if self.cancel is not None and self.cancel.is_set():",
             "if False:", _t(HOOK, f"{LIFECYCLE}::test_ctrl_c_during_a_long_refinement_and_a_"
                                   "duplicate_name")),
    Sabotage("lifecycle/stale-frames-refined", "frames older than max_latency are refined",
             "gcf_ros/ros/refiner_node.py", "if age <= limit:", "if True:",
             _t(f"{LIFECYCLE}::test_frames_older_than_max_latency_are_not_refined")),
    Sabotage("params/no-range-check", "parameters out of their range are accepted",
             "gcf_ros/ros/params.py", "if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:",
             "if False:", _t(PARAMS)),
    Sabotage("params/cli-type-ignored", "-p iterations:=abc is silently ignored again",
             "gcf_ros/ros/startup.py", "if type(value) is not expected:", "if False:",
             _t(PARAMS)),
    # --- what studies read -------------------------------------------------------------------
    Sabotage("hook/post-step-pose", "on_iteration reports the pose after the step",
             "gcf_ros/gcf/refiner.py", "IterationRecord(it, idx, T.numpy(), windows",
             "IterationRecord(it, idx, state.T[idx], windows", _t(HOOK)),
    Sabotage("validation-windows/any-level", "validation_windows ignores the noise level",
             "gcf_ros/train/shards.py",
             "idx = (ds.level_indices(level) if level else np.arange(len(ds)))[:n]",
             "idx = np.arange(len(ds))[:n]", _t(WINDOWS)),
    # --- the data is required ------------------------------------------------------------------
    Sabotage("data/lmo-missing", "the LM-O folder is missing (must fail, not skip)",
             "", "", "", DATA_TESTS, env={"GCF_LMO_ROOT": "/nonexistent/shared/data/lmo"},
             caught_marker="LM-O test data not found at /nonexistent/shared/data/lmo"),
    # --- issue 19: the depth term and its inputs ------------------------------------------------
    Sabotage("depth-jacobian-sign", "the depth term's Jacobian has the wrong sign",
             "gcf_ros/gcf/terms/depth.py",
             "J = (s * normals_cam)[..., None, :] @ point_jacobian(",
             "J = -(s * normals_cam)[..., None, :] @ point_jacobian(", _t(DEPTH_TERM)),
    Sabotage("depth-pulls-occluders", "occluders in front of the object are not down-weighted",
             "gcf_ros/gcf/terms/depth.py", "valid & (e > -2 * c)", "valid & (e > -1e9)",
             _t(DEPTH_TERM)),
    Sabotage("depth-no-rejection", "results the depth disagrees with are not rejected",
             "gcf_ros/gcf/refiner.py",
             "if inliers is not None and inliers < cfg.min_depth_inliers:",
             "if inliers is not None and inliers < 0.0:", _t(DEPTH_TERM)),
    Sabotage("depth-dropped-by-pipeline", "the frame pipeline never hands depth to the refiner",
             "gcf_ros/pipeline/pipeline.py",
             'depth = {} if obs.depth_m is None else {"depth_m": obs.depth_m}', "depth = {}",
             _t(DEPTH_NODE_E2E)),
    Sabotage("depth-16uc1-unscaled", "16UC1 depth counts are taken as metres",
             "gcf_ros/ros/image_codec.py",
             'np.float32(unit_scale if dtype.kind == "u" else 1.0)', "np.float32(1.0)",
             _t(DEPTH_NODE)),
    Sabotage("depth-dropped-by-eval", "gcf-eval --depth never hands depth to the refiner",
             "gcf_ros/eval/methods.py",
             "detections, depth_m=frame.depth_m)", "detections, depth_m=None)", _t(DEPTH_EVAL)),
    Sabotage("torch-raster-farthest", "the torch rasterizer keeps the farthest face per pixel",
             "gcf_ros/core/render/torch_raster.py", 'reduce="amin"', 'reduce="amax"',
             _t(TORCH_RASTER)),
    Sabotage("torch-raster-affine-depth", "the torch rasterizer interpolates depth affinely",
             "gcf_ros/core/render/torch_raster.py",
             "    depth = 1.0 / inv_z.sum(1)\n",
             "    depth = (w * uvz[tri][..., 2]).sum(1)\n", _t(TORCH_RASTER)),
    Sabotage("torch-raster-culls", "the torch rasterizer drops faces of one winding",
             "gcf_ros/core/render/torch_raster.py", "    ok = area.abs() > 1e-12",
             "    ok = area > 1e-12", _t(TORCH_RASTER)),
    Sabotage("distance-trust-region-ignored", "max_distance_change never clamps the distance",
             "gcf_ros/gcf/refiner.py", "        if np.isfinite(self.distance_limit[b]):\n",
             "        if False:\n", _t(EXACT_FIELD_DISTANCE)),
    Sabotage("without-field-limit-ignored", "instances without the field get the field's bound",
             "gcf_ros/gcf/refiner.py", "limits = np.where(measured, ",
             "limits = np.where(True, ", _t(WITHOUT_FIELD_DISTANCE)),
    Sabotage("depth-distance-bounded", "a call with depth still bounds the distance",
             "gcf_ros/gcf/refiner.py", '("field" in cfg.terms)) | with_depth',
             '("field" in cfg.terms)) | False', _t(WITHOUT_FIELD_DISTANCE)),
    Sabotage("occluded-samples-kept", "samples another instance hides still count as evidence",
             "gcf_ros/gcf/terms/silhouette.py", "p[hidden] = 0.5  # unobserved",
             "p[hidden] = p[hidden]  #",
             _t(OCCLUDERS)),
    Sabotage("field-keeps-hidden-pixels", "the field term keeps pixels another instance hides",
             "gcf_ros/gcf/terms/field.py", "weight = weight * ~hidden.to(weight.device)",
             "weight = weight", _t(OCCLUDERS)),
    Sabotage("hypotheses-occlude", "two detections of one object occlude each other",
             "gcf_ros/gcf/occluders.py",
             "and not _same_object(models[b], T_cam_obj[b], models[j], T_cam_obj[j])",
             "and not False", _t(OCCLUDERS)),
    Sabotage("occluders-behind", "instances behind the contour are taken for occluders",
             "gcf_ros/gcf/terms/silhouette.py", "return d < z_contour[:, None]",
             "return d > z_contour[:, None]", _t(OCCLUDERS)),
    Sabotage("untrained-field-used", "the field still refines models the network never saw",
             "gcf_ros/gcf/refiner.py", 'if name == "field" and not state.field_trusted[idx].all():',
             "if False:", _t(UNTRAINED)),
    Sabotage("strided-stem-not-averaged", "the strided network sums the 2 x 2 block",
             "gcf_ros/gcf/network.py", "src.repeat_interleave(s * s, dim=1) / (s * s)",
             "src.repeat_interleave(s * s, dim=1)", _t(STRIDED)),
    Sabotage("fused-input-stride-ignored", "the fused network does not upsample its heads",
             "gcf_ros/gcf/inference.py", "heads = to_window(self.heads(x), stride)",
             "heads = self.heads(x)", _t(INFERENCE)),
    Sabotage("fused-band-offset", "the fused cost volume reads its offsets one column off",
             "gcf_ros/gcf/inference.py", "(s[0], s[1], s[2] + 1, wp, 1)",
             "(s[0], s[1], s[2], wp, 1)", _t(INFERENCE)),
    Sabotage("fused-no-batchnorm", "the fused network drops its BatchNorms instead of folding",
             "gcf_ros/gcf/inference.py",
             "fused = fuse_conv_bn_eval(child[0].eval(), child[1].eval())",
             "fused = child[0]", _t(INFERENCE)),
    Sabotage("fused-heads-swapped", "the fused network's merged heads read the weight as field",
             "gcf_ros/gcf/inference.py", "field = (heads[:, :2] * self.config.field_scale)",
             "field = (heads[:, 1:3] * self.config.field_scale)", _t(INFERENCE)),
    Sabotage("coarse-window-ignored", "the coarse iterations run at the full window",
             "gcf_ros/gcf/refiner.py", "        S = cfg.window_at(it)\n",
             "        S = cfg.window_size\n", _t(COARSE)),
    Sabotage("coarse-for-capped-calls", "a tracked instance's single iteration runs coarse",
             "gcf_ros/gcf/refiner.py", "((caps < default).any() or",
             "((caps < 0).any() or", _t(COARSE)),
    Sabotage("coarse-for-untrained", "a call with an untrained model runs the coarse windows",
             "gcf_ros/gcf/refiner.py", "or not state.field_trusted.all()):", "or False):",
             _t(COARSE)),
    Sabotage("lines-not-scaled", "the silhouette lines keep 128 px lengths in every window",
             "gcf_ros/gcf/terms/silhouette.py",
             "return self.config.scaled(self.scale_at(size))", "return self.config",
             _t(COARSE)),
    Sabotage("colour-margins-not-scaled", "the colour band keeps 128 px lengths in every window",
             "gcf_ros/gcf/terms/silhouette.py",
             "rc = self.region.scaled(self.scale_at(inputs.render.size))", "rc = self.region",
             _t(COARSE)),
    Sabotage("mask-statistics-ignored", "region.statistics=mask still counts the rendering",
             "gcf_ros/gcf/terms/silhouette.py",
             'if rc.statistics == "mask" and inputs.masks[b] is not None:', "if False:",
             _t("test/gcf/test_terms.py")),
    Sabotage("coarse-default-96", "the coarse default is not the chosen 64 px x 2",
             "gcf_ros/gcf/refiner.py", "{128: (64, 2)}", "{128: (96, 2)}", _t(COARSE)),
    Sabotage("detection-caps-ignored", "a detection's own iteration count is ignored",
             "gcf_ros/gcf/refiner.py", "state.active & ~state.waiting & (caps > it)",
             "state.active & ~state.waiting", _t(CAPS)),
    Sabotage("tracked-seeds-full-count", "seeds from tracks run the full iteration count",
             "gcf_ros/pipeline/pipeline.py",
             "iterations=tracking_iterations if s.tracked else None",
             "iterations=None", _t(TRACKED_SEEDS)),
]  # fmt: skip


def lmo_root() -> Path:
    return Path(os.environ.get("GCF_LMO_ROOT", REPO.parent / "shared" / "data" / "lmo"))


def working_tree_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    return sorted({p for p in out.split("\0") if p and (REPO / p).is_file()})


def make_base(dest: Path) -> None:
    for rel in working_tree_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)


def check_patterns(base: Path, sabotages: list[Sabotage]) -> list[str]:
    problems = []
    for s in sabotages:
        if not s.file:
            continue
        path = base / s.file
        if not path.is_file():
            problems.append(f"{s.name}: {s.file} does not exist")
            continue
        n = path.read_text().count(s.old)
        if n != 1:
            problems.append(f"{s.name}: pattern found {n} times in {s.file}: {s.old!r}")
    return problems


def env_for(copy: Path, extra: dict) -> dict:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-size edit in the same second: no stale .pyc
    env["GCF_LMO_ROOT"] = str(lmo_root())
    env.pop("GCF_ALLOW_MISSING_DATA", None)
    env.update(extra)
    return env


def check_imports(copy: Path) -> None:
    code = "import gcf_ros, gcf_ros.resources as r; print(gcf_ros.__file__); print(r.share_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env_for(copy, {}),
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    for p in out:
        if not Path(p).resolve().is_relative_to(copy.resolve()):
            sys.exit(f"mutation_check: the copy imports {p}, not its own gcf_ros in {copy}")


def run_tests(copy: Path, tests: list[str], extra_env: dict, timeout: float):
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "-n", "0",
           *tests]  # fmt: skip
    env = env_for(copy, extra_env)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, output = -1, f"timed out after {timeout:.0f} s\n{err.stdout or ''}"
    return rc, output, time.monotonic() - t0


def failed_tests(output: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^FAILED (\S+)", output, re.M)]


def verdict(s: Sabotage, rc: int, output: str) -> tuple[bool, str]:
    if s.caught_marker:
        ok = rc != 0 and s.caught_marker in output
        return ok, f"suite failed (exit {rc}): data required" if ok else f"MISSED (exit {rc})"
    if rc == 1:
        names = failed_tests(output)
        return True, "caught: " + (", ".join(n.split("::")[-1] for n in names) or "failed")
    if rc == 0:
        return False, "MISSED (tests passed)"
    return False, f"ERROR (pytest exit {rc})"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the sabotages and exit")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these sabotages (repeatable; a prefix like node/ works)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip checking that the tests pass without sabotage",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="per sabotage, seconds")
    p.add_argument("--keep", action="store_true", help="keep the temporary copies")
    p.add_argument("--verbose", action="store_true", help="print pytest's output tail per run")
    return p.parse_args(argv)  # fmt: skip


def select(only: list[str]) -> list[Sabotage]:
    def wanted(s: Sabotage) -> bool:
        return any(s.name == o or (o.endswith("/") and s.name.startswith(o)) for o in only)

    return [s for s in SABOTAGES if not only or wanted(s)]


def print_list(chosen: list[Sabotage]) -> None:
    for s in chosen:
        print(f"{s.name:<36} {s.file or '(environment)':<30} {s.what}")
        print(f"{'':<36} tests: {' '.join(s.tests)}")


def baseline(base: Path, chosen: list[Sabotage], timeout: float) -> bool:
    tests = list(dict.fromkeys(t for s in chosen for t in s.tests))
    print(f"baseline: {len(tests)} test selections without sabotage ...", flush=True)
    rc, output, dt = run_tests(base, tests, {}, timeout)
    if rc != 0:
        print(output[-4000:])
        print(f"mutation_check: the tests fail WITHOUT sabotage (exit {rc}): fix that first",
              file=sys.stderr)  # fmt: skip
        return False
    print(f"baseline: passed in {dt:.0f} s", flush=True)
    return True


def run_one(base: Path, tmp: Path, k: int, s: Sabotage, args) -> tuple:
    copy = tmp / f"m{k:02d}"
    shutil.copytree(base, copy)
    if s.file:
        path = copy / s.file
        path.write_text(path.read_text().replace(s.old, s.new))
    rc, output, dt = run_tests(copy, s.tests, s.env, args.timeout)
    ok, text = verdict(s, rc, output)
    if args.verbose or not ok:
        print("    " + "\n    ".join(output.strip().splitlines()[-15:]))
    if not args.keep:
        shutil.rmtree(copy, ignore_errors=True)
    return ok, text, dt


def print_table(rows: list[tuple]) -> None:
    print()
    print(f"{'sabotage':<36} | {'file':<28} | result")
    print("-" * 100)
    for name, file, tests, text, dt in rows:
        print(f"{name:<36} | {file:<28} | {text} [{dt:.0f} s]")
        print(f"{'':<36} | {'':<28} |   tests: {tests}")
    print("-" * 100)
    missed = sum(not text.startswith(("caught", "suite failed")) for *_, text, _ in rows)
    print(f"{len(rows) - missed} of {len(rows)} sabotages caught"
          + (f"; {missed} MISSED or in error" if missed else ""))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = select(args.only)
    if not chosen:
        print(f"mutation_check: no sabotage named {args.only}", file=sys.stderr)
        return 2
    if args.list:
        print_list(chosen)
        return 0
    if not (lmo_root() / "camera.json").is_file():
        print(
            f"mutation_check: LM-O data not found at {lmo_root()} (GCF_LMO_ROOT)", file=sys.stderr
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="gcf_mutation_"))
    try:
        base = tmp / "base"
        make_base(base)
        problems = check_patterns(base, chosen)
        if problems:
            print("mutation_check: stale sabotage patterns (update SABOTAGES):", file=sys.stderr)
            print("  " + "\n  ".join(problems), file=sys.stderr)
            return 2
        check_imports(base)
        if not args.no_baseline and not baseline(base, chosen, 2 * args.timeout):
            return 2
        rows, all_caught = [], True
        for k, s in enumerate(chosen):
            ok, text, dt = run_one(base, tmp, k, s, args)
            all_caught &= ok
            tests = ", ".join(t.split("/")[-1] for t in s.tests)
            rows.append((s.name, s.file or "(environment)", tests, text, dt))
            print(f"[{k + 1}/{len(chosen)}] {s.name}: {text} ({dt:.0f} s)", flush=True)
        print_table(rows)
        return 0 if all_caught else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
