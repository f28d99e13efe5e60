"""Test-wide settings. ROS isolation happens here, before any test imports rclpy."""

import os
from pathlib import Path

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
