"""Private: open3d, imported where it is used, with an error that says what needed it.

open3d is optional at import time: a machine without it (e.g. a GPU machine with torch only) can
still import the models, the refiner and the evaluation harness, and serve models from a registry
snapshot (:meth:`gcf_ros.core.models.ModelRegistry.load_snapshot`). Only the functions that read,
clean, decimate or ray-cast meshes need it; they call :func:`require_open3d` first.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["SNAPSHOT_HINT", "require_open3d"]

SNAPSHOT_HINT = (
    "on a machine without it, load a snapshot written where open3d is installed: "
    "ModelRegistry.load_snapshot (written by ModelRegistry.save_snapshot or "
    "`gcf-models snapshot`)"
)


def require_open3d(what: str, hint: str = "") -> ModuleType:
    """The ``open3d`` module, or an ImportError saying that ``what`` needs it (plus ``hint``).

    E.g. ``require_open3d("loading mesh files", SNAPSHOT_HINT)``.
    """
    try:
        import open3d
    except ImportError as err:
        message = f"{what} needs open3d, which does not import here ({err})"
        raise ImportError(f"{message}; {hint}" if hint else message, name="open3d") from err
    return open3d
