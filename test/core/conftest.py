"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcf_ros.core.models import ModelRegistry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def registry() -> ModelRegistry:
    """The packaged registry of the eight LM-O models (config/models.yaml)."""
    return ModelRegistry.from_yaml(REPO / "config" / "models.yaml")
