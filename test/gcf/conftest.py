"""Fixtures of the solver-term tests (test/gcf/scenes.py)."""

import pytest
from scenes import make_novel_registry

from gcf_ros.core.models import ModelRegistry


@pytest.fixture(scope="module")
def novel_registry(tmp_path_factory) -> ModelRegistry:
    """An asymmetric mesh that no shipped network saw: a box with an arrow and a cylinder."""
    return make_novel_registry(tmp_path_factory.mktemp("mesh"))
