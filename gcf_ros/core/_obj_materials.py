"""Private: the diffuse colour (``Kd``) of each material of an OBJ file, by open3d's material id.

open3d's legacy reader (assimp, no post-processing) gives every triangle a material id and every
material a texture slot (``map_Kd``), but drops the ``Kd`` colours. assimp numbers the materials
as its own ``DefaultMaterial`` (id 0), then the ``.mtl`` materials in the order they are first
defined (``mtllib`` files in order; a repeated ``newmtl`` updates the first). Faces before any
``usemtl`` get the last material defined. This module parses the ``.mtl`` files the same way and
checks the result against the reader's texture slots; on a mismatch (e.g. polygon faces, read by
open3d's single-material tensor reader) it warns and returns nothing.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import open3d as o3d

_LOG = logging.getLogger("gcf_ros.core.models")
_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+([^\r\n]+)", re.MULTILINE)


def material_colors(path: Path, mesh: o3d.geometry.TriangleMesh) -> np.ndarray | None:
    """(M, 3) float64 ``Kd`` RGB in [0, 1] by material id of ``mesh`` read from the OBJ ``path``
    (NaN rows: no ``Kd``, e.g. assimp's default material), or None without usable materials."""
    kd = _parse_mtl_libraries(path)
    if not kd:
        return None
    n_slots = len(mesh.textures)
    if n_slots != 1 + len(kd):
        _LOG.warning(
            "%s: .mtl material colours skipped: %d materials in the .mtl file(s), but the mesh "
            "reader loaded %d (polygon faces are read with one material: triangulate the file "
            "to keep per-material colours)",
            path, len(kd), max(n_slots - 1, 0),
        )  # fmt: skip
        return None
    table = np.full((n_slots, 3), np.nan)
    for i, rgb in enumerate(kd.values(), start=1):
        if rgb is not None:
            table[i] = np.clip(rgb, 0.0, 1.0)
    return table


def _parse_mtl_libraries(obj_path: Path) -> dict[str, tuple[float, float, float] | None]:
    """Material name → Kd (None when unset), in assimp's order, over every ``mtllib`` of the OBJ."""
    materials: dict[str, tuple[float, float, float] | None] = {}
    for lib in _mtllib_paths(obj_path):
        try:
            text = lib.read_text(errors="replace")
        except OSError:
            _LOG.warning("%s: material library %s not readable", obj_path, lib)
            continue
        current = None
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "newmtl":
                current = line.split(None, 1)[1].strip()
                materials.setdefault(current, None)
            elif current is not None and len(words) == 4 and words[0] == "Kd":
                try:
                    materials[current] = (float(words[1]), float(words[2]), float(words[3]))
                except ValueError:
                    _LOG.warning("%s: material %r: unreadable Kd %r", lib, current, line.strip())
    return materials


def _mtllib_paths(obj_path: Path) -> list[Path]:
    """The ``.mtl`` files named by ``mtllib`` lines of the OBJ, relative to its folder. The rest
    of the line is one file name (spaces allowed), else whitespace-separated names."""
    paths: list[Path] = []
    for match in _MTLLIB.finditer(obj_path.read_bytes()):
        rest = match.group(1).decode(errors="replace").strip()
        whole = obj_path.parent / rest
        paths += [whole] if whole.is_file() else [obj_path.parent / n for n in rest.split()]
    return paths
