"""Test-wide settings. ROS isolation happens here, before any test imports rclpy."""

import os
from pathlib import Path

import pytest

# Every test session talks on its own DDS domain and only over loopback, so that CI, a developer's
# run and a demo on the same machine never see each other's nodes. Derived from the PID: two
# concurrent sessions collide with probability ~1/90.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("GCF_TEST_ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
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
    if message is None or ALLOW_MISSING_DATA:
        return
    if any("lmo_root" in getattr(item, "fixturenames", ()) for item in items):
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
