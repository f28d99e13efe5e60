"""gcf-demo: the refiner node on the bundled real LM-O sequence, end to end over ROS 2.

Starts ``gcf_refiner`` (a separate process, packaged config and shipped weights) and a player node
that publishes the four bundled LM-O frames with camera_info and coarse detections (ground truth
perturbed at the protocol's medium level), one frame after the other. It collects ``/tf``,
``refined_poses`` and ``debug/overlay``, prints the per-instance errors before and after
refinement, and writes the overlays (green: refined outlines) to ``--out``.

    gcf-demo [--out out/demo] [--level small|medium|large] [--seed 0] [--depth]

With ``--depth`` the player also publishes a simulated registered depth image per frame
(``gcf_ros.eval.simdepth``: the ground truth's objects on their table, Kinect-like noise, a fixed
seed) on ``aligned_depth``, and the node runs with ``-r depth:=aligned_depth -p use_depth:=true``
(default ``--out out/demo_depth``).

Both processes send images: both get config/fastdds_large_messages.xml as their Fast DDS profile
unless FASTRTPS_DEFAULT_PROFILES_FILE is set. The node runs with its defaults (its inputs follow
the player's reliable QoS). Uses the environment's ROS_DOMAIN_ID, so RViz (fixed frame
camera_color_optical_frame, displays TF, MarkerArray on /markers, Image on /debug/overlay) can
watch it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from gcf_ros.core.models import ModelRegistry
from gcf_ros.eval.metrics import (
    add_or_adds,
    projection_error_px,
    rotation_error_deg,
    translation_error_cm,
)
from gcf_ros.eval.sequence import coarse_instances, load_sequence
from gcf_ros.resources import default_models_yaml
from gcf_ros.ros.conversions import pose_to_matrix
from gcf_ros.ros.player import DEPTH_TOPIC, Player
from gcf_ros.ros.qos import large_messages_env

STATUS = {0: "converged", 1: "max_iter", 2: "REJECTED"}
DEPTH_SEED = 0  # the simulated depth is the same in every run
DEPTH_ARGS = ["--ros-args", "-r", f"depth:={DEPTH_TOPIC}", "-p", "use_depth:=true"]


def start_refiner(extra_args: list[str] | None = None) -> subprocess.Popen:
    """``gcf_refiner`` in its own process (packaged config/gcf.yaml)."""
    cmd = [sys.executable, "-m", "gcf_ros.ros.refiner_node", *(extra_args or [])]
    return subprocess.Popen(cmd, env=os.environ.copy())


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[int | None, float]:
    """Ctrl-C a node process, killed if it has not ended after ``timeout`` s: (its exit status,
    None when it had to be killed; seconds from SIGINT to its end)."""
    t0 = time.monotonic()
    if proc.poll() is not None:
        return proc.returncode, 0.0
    proc.send_signal(signal.SIGINT)
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = None
    return status, time.monotonic() - t0


def spin_until(executor, condition, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        executor.spin_once(timeout_sec=0.05)
    return condition()


def _errors(registry, model_id, K, T, T_gt) -> tuple[float, float, float, float]:
    """Rotation (deg), translation (cm), 2D (px) and ADD(-S) as a fraction of the diameter."""
    model = registry.get(model_id)
    return (
        rotation_error_deg(T[:3, :3], T_gt[:3, :3]),
        translation_error_cm(T[:3, 3], T_gt[:3, 3]),
        projection_error_px(model.verts_obj, K, T, T_gt),
        add_or_adds(model, None, T, T_gt) / model.diameter,
    )


def simulated_depth(frame, registry: ModelRegistry, index: int) -> np.ndarray:
    """(H, W) float32 metres a Kinect-like camera registered to the image would measure of the
    frame's ground truth (0 = missing); seeded by DEPTH_SEED and the frame's index."""
    from gcf_ros.eval.simdepth import simulate_frame_depth

    models = [registry.get(m) for m in frame.model_ids]
    rng = np.random.default_rng([DEPTH_SEED, index])
    return simulate_frame_depth(models, frame.T_gt, frame.K, frame.image_rgb.shape[:2], rng)


def run(out_dir: Path, level: str, seed: int, timeout: float, depth: bool = False) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = load_sequence()
    registry = ModelRegistry.from_yaml(default_models_yaml())
    depths = [simulated_depth(f, registry, k) for k, f in enumerate(frames)] if depth else None
    proc = start_refiner(DEPTH_ARGS if depth else None)
    rclpy.init()
    player = Player(depth=depth)
    executor = SingleThreadedExecutor()
    executor.add_node(player)
    rows, missing = [], []
    try:
        if not spin_until(executor, player.connected, timeout, proc):
            print("gcf-demo: the refiner node did not come up", file=sys.stderr)
            return 1
        spin_until(executor, lambda: False, 1.0)  # let the matching settle on both sides
        for k, frame in enumerate(frames):
            instances = coarse_instances(frame, level, seed=seed + k)
            t0 = time.monotonic()
            key = player.play(frame, instances, lambda: executor.spin_once(timeout_sec=0.05),
                              timeout=timeout, depth_m=depths[k] if depths else None)  # fmt: skip
            got = key is not None
            if got:
                spin_until(executor, lambda key=key: key in player.collected.overlays, 5.0, proc)
            wall_ms = 1e3 * (time.monotonic() - t0)
            if not got:
                missing.append(frame.name)
                continue
            by_id = {inst.instance_id: inst for inst in instances}
            tf_children = {
                t.child_frame_id for t in getattr(player.collected.tf.get(key), "transforms", [])
            }
            for p in player.collected.poses[key].poses:
                inst = by_id[p.instance_id]
                T = pose_to_matrix(p.pose).T
                T0 = pose_to_matrix(p.initial_pose).T
                before = _errors(registry, p.model_id, frame.K, T0, inst.T_gt)
                after = _errors(registry, p.model_id, frame.K, T, inst.T_gt)
                child = f"{p.model_id}_{p.instance_id}"
                rows.append({
                    "frame": frame.name, "model_id": p.model_id, "instance_id": p.instance_id,
                    "status": STATUS.get(p.status, str(p.status)), "reason": p.status_reason,
                    "confidence": round(float(p.confidence), 3), "iterations": int(p.iterations),
                    "tf": child in tf_children, "frame_ms": round(wall_ms, 1),
                    "before": [round(v, 3) for v in before], "after": [round(v, 3) for v in after],
                })  # fmt: skip
            overlay = player.collected.overlays.get(key)
            if overlay is not None:
                cv2.imwrite(str(out_dir / f"{frame.name}_overlay.png"), overlay[..., ::-1])
    finally:
        executor.shutdown()
        player.destroy_node()
        rclpy.try_shutdown()
        stop_process(proc)
    _print_table(rows, level, depth)
    (out_dir / "results.json").write_text(json.dumps({"level": level, "seed": seed, "depth": depth,
                                                       "instances": rows}, indent=1))  # fmt: skip
    print(f"gcf-demo: overlays and results.json in {out_dir}")
    if missing:
        print(f"gcf-demo: no refined poses for {missing}", file=sys.stderr)
        return 1
    return 0


def _print_table(rows: list[dict], level: str, depth: bool = False) -> None:
    inputs = "RGB + simulated depth" if depth else "RGB"
    print(f"\nper-instance errors ({inputs}), coarse ({level} noise) -> refined: rotation deg, "
          "translation cm, 2D px, ADD(-S) / diameter")  # fmt: skip
    head = f"{'frame':<18} {'model':<11} {'status':<9} {'conf':>5} {'it':>3} {'tf':>3}"
    print(f"{head}  {'rot':>13}  {'trans':>13}  {'2D':>13}  {'ADD/d':>13}")
    for r in rows:
        pairs = zip(r["before"], r["after"], strict=True)
        cells = "  ".join(f"{b:6.2f}->{a:6.2f}" for b, a in pairs)
        print(
            f"{r['frame']:<18} {r['model_id']:<11} {r['status']:<9} {r['confidence']:5.2f} "
            f"{r['iterations']:3d} {'yes' if r['tf'] else 'no':>3}  {cells}"
        )
    if rows:
        b = np.median([r["before"] for r in rows], axis=0)
        a = np.median([r["after"] for r in rows], axis=0)
        print(
            f"median over {len(rows)} instances: rotation {b[0]:.2f} -> {a[0]:.2f} deg, "
            f"translation {b[1]:.2f} -> {a[1]:.2f} cm, 2D {b[2]:.2f} -> {a[2]:.2f} px, "
            f"ADD(-S) {b[3]:.3f} -> {a[3]:.3f} d"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="gcf-demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, help="output folder (out/demo, out/demo_depth)")
    p.add_argument("--level", choices=("small", "medium", "large"), default="medium")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per step")
    p.add_argument(
        "--depth", action="store_true", help="simulated registered depth in; node use_depth"
    )
    args = p.parse_args(argv)
    out = args.out or Path("out/demo_depth" if args.depth else "out/demo")
    with large_messages_env():  # the player sends images: give it (and the node) the profile
        return run(out, args.level, args.seed, args.timeout, args.depth)


if __name__ == "__main__":
    sys.exit(main())
