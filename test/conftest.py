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


@pytest.fixture(scope="session")
def lmo_root() -> Path:
    """The LM-O BOP folder. Absent data skips the test on a developer machine and fails it in CI
    (CI=true), so that a moved data folder cannot turn the real-data tests into silent skips."""
    if not (LMO_ROOT / "camera.json").is_file():
        message = f"LM-O data not found at {LMO_ROOT} (../shared/data/lmo or $GCF_LMO_ROOT)"
        if os.environ.get("CI"):
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
