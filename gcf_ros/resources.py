"""Where the packaged files live: the source tree (editable install) or ``share/gcf_ros``."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

PACKAGE = "gcf_ros"


@cache
def share_dir() -> Path:
    """The folder holding ``config/``, ``data/`` and ``launch/``.

    Checked in order: the source tree this module was imported from, ``<sys.prefix>/share/gcf_ros``
    (pip / venv installs) and the ament index (colcon installs).
    """
    source_tree = Path(__file__).resolve().parents[1]
    candidates = [source_tree, Path(sys.prefix) / "share" / PACKAGE]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:
        pass
    for candidate in candidates:
        if (candidate / "config" / "models.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"gcf_ros data not found in any of {[str(c) for c in candidates]}")


def default_models_yaml() -> Path:
    return share_dir() / "config" / "models.yaml"


def demo_frame_json() -> Path:
    return share_dir() / "data" / "demo" / "lmo_000002_000003.json"
