"""Test-wide settings. ROS isolation happens here, before any test imports rclpy."""

import json
import os
from pathlib import Path

import numpy as np
import pytest


def _domain_id() -> int:
    """Every test session talks on its own DDS domain and only over loopback, so that CI, a
    developer's run and a demo on the same machine never see each other's nodes. Derived from the
    PID (two concurrent sessions collide with probability ~1/90); the workers of one pytest-xdist
    run (``-n N``) get consecutive domains from their controller's PID, so they never collide."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and workers > 1:
        return 10 + (os.getppid() % (90 // workers)) * workers + int(worker[2:])
    return 10 + os.getpid() % 90


os.environ["ROS_DOMAIN_ID"] = os.environ.get("GCF_TEST_ROS_DOMAIN_ID", str(_domain_id()))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# The real LM-O subset lives beside the repository (<parent of repo>/shared/data/lmo) unless
# GCF_LMO_ROOT says otherwise.
LMO_ROOT = Path(
    os.environ.get("GCF_LMO_ROOT", Path(__file__).resolve().parents[1].parent / "shared/data/lmo")
)


ALLOW_MISSING_DATA = os.environ.get("GCF_ALLOW_MISSING_DATA") == "1"


def _missing_data_message() -> str | None:
    """One line naming where the test data should be, or None when it is there."""
    if not (LMO_ROOT / "camera.json").is_file():
        return (
            f"LM-O test data not found at {LMO_ROOT}: put the LM-O subset at <repo>/../shared/"
            "data/lmo or point GCF_LMO_ROOT at it (GCF_ALLOW_MISSING_DATA=1 skips those tests)"
        )
    return None


def pytest_collection_modifyitems(session, config, items) -> None:
    """The real-frame data is required: a session that collected a test needing it, without the
    data, stops before running anything with one clear line (exit status 4), instead of turning
    those tests into silent skips. ``GCF_ALLOW_MISSING_DATA=1`` skips them instead."""
    message = _missing_data_message()
    if message is None or ALLOW_MISSING_DATA or os.environ.get("PYTEST_XDIST_WORKER"):
        return  # pytest-xdist workers: their controller checked (pytest_sessionstart)
    if any("lmo_root" in getattr(item, "fixturenames", ()) for item in items):
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_sessionstart(session) -> None:
    """With pytest-xdist (``-n N``) the controller does not collect, so it checks here: a
    parallel run without the data stops at once, with the same line and exit status."""
    parallel = getattr(session.config.option, "numprocesses", None)
    if parallel and not os.environ.get("PYTEST_XDIST_WORKER") and not ALLOW_MISSING_DATA:
        message = _missing_data_message()
        if message is not None:
            pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def lmo_root() -> Path:
    """The LM-O BOP folder (required: see ``pytest_collection_modifyitems``)."""
    message = _missing_data_message()
    if message is not None:
        if not ALLOW_MISSING_DATA:
            pytest.fail(message)
        pytest.skip(message)
    return LMO_ROOT


@pytest.fixture(scope="session")
def registry():
    """The packaged registry of the eight LM-O models (config/models.yaml)."""
    from gcf_ros.core.models import ModelRegistry

    return ModelRegistry.from_yaml(Path(__file__).resolve().parents[1] / "config" / "models.yaml")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: threads only add synchronisation (and stall on a shared machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A tiny BOP folder written by the tests (test/core/test_bop.py, test/eval/test_eval_any_bop.py):
# a box (discrete symmetries: half turns about x, y, z) and a cylinder (continuous symmetry about
# z, and a half turn about x), both centred, two frames of different sizes and intrinsics.
TINY_FRAMES = {  # im_id: ((width, height), (fx, fy, cx, cy), {obj_id: (rotvec, t_m)})
    0: ((160, 120), (200.0, 200.0, 80.0, 60.0),
        {1: ((0.3, -0.2, 0.1), (-0.04, 0.0, 0.5)), 2: ((1.2, 0.1, 0.0), (0.045, 0.01, 0.55))}),
    3: ((200, 150), (250.0, 250.0, 101.0, 74.0),
        {1: ((-0.5, 0.4, 0.9), (0.03, -0.02, 0.6)), 2: ((0.4, 0.6, -0.2), (-0.04, 0.02, 0.5))}),
}  # fmt: skip
TINY_BOX_M = (0.06, 0.04, 0.03)
TINY_CYLINDER_M = (0.02, 0.06)  # radius, height


def _half_turn_rows(axis: int) -> list[float]:
    T = -np.eye(4)
    T[axis, axis], T[3, 3] = 1.0, 1.0
    return T.reshape(-1).tolist()


def write_tiny_bop(root: Path, unit: str = "m") -> Path:
    """Write the tiny BOP folder at ``root`` with every length in ``unit`` (mm or m)."""
    import cv2
    import open3d as o3d
    from scipy.spatial.distance import pdist
    from scipy.spatial.transform import Rotation

    from gcf_ros.core.models import ModelSpec, load_model
    from gcf_ros.core.render.scene import render_scene_depth

    per_m = {"m": 1.0, "mm": 1000.0}[unit]
    (root / "models").mkdir(parents=True)
    box = o3d.geometry.TriangleMesh.create_box(*TINY_BOX_M)
    box.translate(-np.array(TINY_BOX_M) / 2)
    cylinder = o3d.geometry.TriangleMesh.create_cylinder(*TINY_CYLINDER_M, resolution=48)
    info, models = {}, {}
    for obj_id, mesh in ((1, box), (2, cylinder)):
        verts = np.array(mesh.vertices)  # a copy, metres
        lo, size, diameter = verts.min(axis=0), np.ptp(verts, axis=0), float(pdist(verts).max())
        mesh.vertices = o3d.utility.Vector3dVector(verts * per_m)
        mesh.compute_vertex_normals()
        path = root / "models" / f"obj_{obj_id:06d}.ply"
        o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=True)
        models[obj_id] = load_model(ModelSpec(f"obj_{obj_id:06d}", path, scale=1.0 / per_m))
        info[str(obj_id)] = {"diameter": diameter * per_m}
        for i, a in enumerate("xyz"):
            info[str(obj_id)].update({f"min_{a}": lo[i] * per_m, f"size_{a}": size[i] * per_m})
    info["1"]["symmetries_discrete"] = [_half_turn_rows(a) for a in range(3)]
    info["2"]["symmetries_discrete"] = [_half_turn_rows(0)]
    info["2"]["symmetries_continuous"] = [{"axis": [0, 0, 1], "offset": [0, 0, 0]}]
    (root / "models" / "models_info.json").write_text(json.dumps(info))
    (size0, (fx, fy, cx, cy), _) = TINY_FRAMES[0]
    camera = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": size0[0], "height": size0[1]}
    (root / "camera.json").write_text(json.dumps({**camera, "depth_scale": 1.0}))
    scene = root / "test" / "000001"
    (scene / "rgb").mkdir(parents=True)
    gt, cams = {}, {}
    for im_id, ((w, h), (fx, fy, cx, cy), poses) in TINY_FRAMES.items():
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        T = np.tile(np.eye(4), (len(poses), 1, 1))
        for n, (rotvec, t) in enumerate(poses.values()):
            T[n, :3, :3], T[n, :3, 3] = Rotation.from_rotvec(rotvec).as_matrix(), t
        gt[str(im_id)] = [
            {"obj_id": obj_id, "cam_R_m2c": T[n, :3, :3].reshape(-1).tolist(),
             "cam_t_m2c": (T[n, :3, 3] * per_m).tolist()}
            for n, obj_id in enumerate(poses)
        ]  # fmt: skip
        cams[str(im_id)] = {"cam_K": K.reshape(-1).tolist(), "depth_scale": 1.0}
        seen = render_scene_depth([models[i] for i in poses], T, K, (h, w)).instance
        colours = np.array([[200, 60, 40], [40, 90, 210], [128, 128, 128]], np.uint8)  # BGR
        cv2.imwrite(str(scene / "rgb" / f"{im_id:06d}.png"), colours[seen])  # -1: background
    (scene / "scene_gt.json").write_text(json.dumps(gt))
    (scene / "scene_camera.json").write_text(json.dumps(cams))
    return root


@pytest.fixture(scope="session")
def tiny_bop(tmp_path_factory) -> Path:
    """The tiny BOP folder, lengths in metres (read with --dataset-unit m)."""
    return write_tiny_bop(tmp_path_factory.mktemp("tiny_bop_m") / "bop", "m")


@pytest.fixture(scope="session")
def tiny_bop_mm(tmp_path_factory) -> Path:
    """The same folder with every length in millimetres (BOP's default unit)."""
    return write_tiny_bop(tmp_path_factory.mktemp("tiny_bop_mm") / "bop", "mm")
