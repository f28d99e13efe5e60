"""Private mesh helpers for :mod:`gcf_ros.core.models`: reading, checks, colours, normals.

All functions work on open3d legacy meshes or numpy arrays in the mesh's own units unless stated.
open3d is imported where it is called (:func:`read_mesh`, :func:`ensure_normals`), so the checks
and :class:`ModelLoadError` import without it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gcf_ros.core._diameter import diameter  # noqa: F401 (re-exported for callers)
from gcf_ros.core._open3d import SNAPSHOT_HINT, require_open3d

if TYPE_CHECKING:
    import open3d as o3d

_LOG = logging.getLogger("gcf_ros.core.models")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".ply", ".obj", ".stl", ".glb", ".gltf")
# Formats open3d reads through assimp (see read_mesh for their quirks).
_ASSIMP = frozenset({".obj", ".glb", ".gltf"})


class ModelLoadError(ValueError):
    """A CAD model or a registry entry could not be loaded; the message names the file."""


def check_scale(model_id: str, scale: object) -> float:
    """``scale`` as a float, or ModelLoadError unless it is a finite number > 0."""
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ModelLoadError(f"model {model_id!r}: scale must be a number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ModelLoadError(f"model {model_id!r}: scale must be finite and > 0, got {scale!r}")
    return float(scale)


def check_color(model_id: str, color: object) -> tuple[float, float, float]:
    """``color`` as an RGB float triple, or ModelLoadError unless it is 3 numbers in [0, 1]."""
    try:
        rgb = tuple(float(c) for c in color)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ModelLoadError(
            f"model {model_id!r}: color must be 3 numbers in [0, 1], got {color!r}"
        )
    return rgb  # type: ignore[return-value]


def check_path(path: Path) -> Path:
    """The path if it is an existing file with a supported extension, else ModelLoadError."""
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise ModelLoadError(
            f"{path}: unsupported mesh extension {path.suffix!r}; use one of {SUPPORTED_EXTENSIONS}"
        )
    if not path.is_file():
        raise ModelLoadError(f"{path}: mesh file not found")
    return path


def read_mesh(path: Path) -> o3d.geometry.TriangleMesh:
    """Read with open3d (its own warnings silenced: failures surface as an empty mesh).

    open3d 0.20 quirks for the assimp formats (.obj/.glb/.gltf): the legacy reader silently drops
    polygon (non-triangle) faces, and with ``enable_post_processing`` it drops whole meshes that
    hold polygons and splits every vertex by face normal. So read without post-processing (the
    textures load anyway) and, when the tensor reader (which triangulates polygons) finds more
    triangles, use its mesh instead. ImportError without open3d.
    """
    o3d = require_open3d("loading mesh files", SNAPSHOT_HINT)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False)
        if path.suffix.lower() not in _ASSIMP:
            return mesh
        try:
            tmesh = o3d.t.io.read_triangle_mesh(str(path), enable_post_processing=False)
        except Exception:  # a second opinion only (IndexError on a corrupt .glb)
            return mesh
    n_tensor = len(tmesh.triangle.indices) if "indices" in tmesh.triangle else 0
    if n_tensor <= len(mesh.triangles):
        return mesh
    _LOG.info("%s: polygon faces triangulated (%d triangles)", path, n_tensor)
    return _legacy_from_tensor(tmesh)


def _legacy_from_tensor(tmesh: o3d.t.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    """Legacy copy of a tensor mesh, keeping its single albedo texture and triangle UVs."""
    o3d = require_open3d("loading mesh files", SNAPSHOT_HINT)
    mesh = tmesh.to_legacy()
    material = tmesh.material if tmesh.has_valid_material() else None
    if material is None or "albedo" not in material.texture_maps:
        return mesh
    if "texture_uvs" not in tmesh.triangle:
        return mesh
    albedo = material.texture_maps["albedo"].as_tensor().numpy()
    # The legacy reader stores textures bottom row first; the tensor reader does not.
    mesh.textures = [o3d.geometry.Image(np.ascontiguousarray(albedo[::-1]))]
    uvs = tmesh.triangle.texture_uvs.numpy().reshape(-1, 2).astype(np.float64)
    mesh.triangle_uvs = o3d.utility.Vector2dVector(uvs)
    mesh.triangle_material_ids = o3d.utility.IntVector(np.zeros(len(mesh.triangles), np.int32))
    return mesh


def check_arrays(mesh: o3d.geometry.TriangleMesh, path: Path) -> None:
    """ModelLoadError for no vertices/faces, non-finite vertices or out-of-range face indices."""
    verts = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.triangles)
    if len(verts) == 0 or len(faces) == 0:
        raise ModelLoadError(
            f"{path}: no vertices or no faces ({len(verts)} vertices, {len(faces)} faces); "
            "is it an empty, corrupt or point-only file?"
        )
    bad = ~np.isfinite(verts).all(axis=1)
    if bad.any():
        raise ModelLoadError(
            f"{path}: {int(bad.sum())} vertices have NaN/inf coordinates "
            f"(first at index {int(np.argmax(bad))})"
        )
    if faces.min() < 0 or faces.max() >= len(verts):
        raise ModelLoadError(
            f"{path}: face indices out of range [{faces.min()}, {faces.max()}] "
            f"for {len(verts)} vertices"
        )


def vertex_colors(
    mesh: o3d.geometry.TriangleMesh,
    flat: tuple[float, float, float],
    material_rgb: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """(V, 3) float64 RGB in [0, 1] and where it came from.

    The file's vertex colours (source ``"vertex"``); else, per triangle corner, the texture of the
    triangle's material sampled at the corner's UV (``"texture"``) or the material's colour
    ``material_rgb[material id]`` ((M, 3), NaN rows: none; ``"material"``), averaged per vertex;
    ``flat`` for vertices with neither (``"flat"``). The source is the ``"+"``-joined list of the
    sources used, in that order.
    """
    n_verts = len(mesh.vertices)
    if mesh.has_vertex_colors():
        return np.clip(np.asarray(mesh.vertex_colors, dtype=np.float64), 0.0, 1.0), "vertex"
    colors = np.tile(np.asarray(flat, dtype=np.float64), (n_verts, 1))
    corner_rgb, corner_source = _corner_colors(mesh, material_rgb)
    faces = np.asarray(mesh.triangles).reshape(-1)
    ok = np.isfinite(corner_rgb[:, 0])
    sums = np.zeros((n_verts, 3))
    np.add.at(sums, faces[ok], corner_rgb[ok])
    counts = np.bincount(faces[ok], minlength=n_verts)
    has_sample = counts > 0
    colors[has_sample] = sums[has_sample] / counts[has_sample, None]
    _LOG.debug("texture/material colours for %d of %d vertices", has_sample.sum(), n_verts)
    used = [name for name in ("texture", "material") if (corner_source[ok] == name).any()]
    return colors, "+".join(used + (["flat"] if not has_sample.all() else []))


def _corner_colors(
    mesh: o3d.geometry.TriangleMesh, material_rgb: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(3F, 3) RGB per triangle corner (NaN: none) and (3F,) its source name ("" when none).

    open3d stores textures bottom row first, so the texel of (u, v) is at row v * H (OBJ/OpenGL
    convention: v = 0 at the bottom of the image file).
    """
    faces = np.asarray(mesh.triangles)
    corner_rgb = np.full((3 * len(faces), 3), np.nan)
    source = np.full(3 * len(faces), "", dtype=object)
    mat_ids = np.asarray(mesh.triangle_material_ids)
    if len(mat_ids) != len(faces):
        mat_ids = np.zeros(len(faces), dtype=np.int64)
    corner_mat = np.repeat(mat_ids, 3)
    images = [_texture_rgb(texture) for texture in mesh.textures]
    corner_uv = _corner_uvs(mesh, corner_mat, [image is not None for image in images])
    for mat_id, image in enumerate(images):
        sel = (corner_mat == mat_id) & np.isfinite(corner_uv[:, 0])
        if image is not None and sel.any():
            corner_rgb[sel] = _sample_nearest(image, corner_uv[sel])
            source[sel] = "texture"
    if material_rgb is not None:
        known = (corner_mat >= 0) & (corner_mat < len(material_rgb))
        rgb = np.full_like(corner_rgb, np.nan)
        rgb[known] = material_rgb[corner_mat[known]]
        fill = ~np.isfinite(corner_rgb[:, 0]) & np.isfinite(rgb[:, 0])
        corner_rgb[fill] = rgb[fill]
        source[fill] = "material"
    return corner_rgb, source


def _corner_uvs(
    mesh: o3d.geometry.TriangleMesh, corner_mat: np.ndarray, textured: list[bool]
) -> np.ndarray:
    """(3F, 2) UV per triangle corner, NaN where unknown.

    open3d stores UVs only for the sub-meshes that have them, so with fewer than 3F UVs they are
    assigned, in order, to the corners whose material has a texture, when the counts agree.
    """
    uvs = np.asarray(mesh.triangle_uvs, dtype=np.float64)
    out = np.full((len(corner_mat), 2), np.nan)
    if len(uvs) == len(corner_mat):
        return uvs
    lookup = np.array([*textured, False], dtype=bool)
    wants = lookup[np.where((corner_mat >= 0) & (corner_mat < len(textured)), corner_mat, -1)]
    if len(uvs) and wants.sum() == len(uvs):
        out[wants] = uvs
    elif len(uvs):
        _LOG.warning(
            "texture skipped: %d UVs for %d triangle corners, %d of them textured",
            len(uvs), len(corner_mat), int(wants.sum()),
        )  # fmt: skip
    return out


def _texture_rgb(texture: o3d.geometry.Image) -> np.ndarray | None:
    """(H, W, 3) float64 RGB in [0, 1], or None for an empty texture slot."""
    image = np.asarray(texture)
    if image.ndim < 2 or image.size == 0:  # an empty slot reads as a 0-d array
        return None
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _sample_nearest(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, 3) nearest texels of ``image`` (H, W, 3) at ``uv`` (N, 2), wrapping (repeat mode)."""
    height, width = image.shape[:2]
    uv = np.mod(uv, 1.0)
    cols = np.clip((uv[:, 0] * width).astype(np.int64), 0, width - 1)
    rows = np.clip((uv[:, 1] * height).astype(np.int64), 0, height - 1)
    return image[rows, cols]


def clean(mesh: o3d.geometry.TriangleMesh, path: Path, merge_vertices: bool) -> None:
    """Remove (and log) duplicated vertices (if asked), duplicated/degenerate triangles and
    unreferenced vertices, in place."""
    counts: dict[str, int] = {}
    if merge_vertices:
        counts["duplicated vertices"] = _removed(mesh, "vertices", mesh.remove_duplicated_vertices)
    counts["duplicated triangles"] = _removed(mesh, "triangles", mesh.remove_duplicated_triangles)
    counts["degenerate triangles"] = _removed(mesh, "triangles", mesh.remove_degenerate_triangles)
    counts["unreferenced vertices"] = _removed(mesh, "vertices", mesh.remove_unreferenced_vertices)
    for what, count in counts.items():
        if count:
            _LOG.info("%s: removed %d %s", path, count, what)


def _removed(mesh: o3d.geometry.TriangleMesh, attr: str, operation: Callable[[], object]) -> int:
    before = len(getattr(mesh, attr))
    operation()
    return before - len(getattr(mesh, attr))


def warn_non_manifold(mesh: o3d.geometry.TriangleMesh, path: Path) -> None:
    """Log a warning when some edges are shared by more than two triangles.

    Counted with numpy (sorting the edges), not open3d's ``get_non_manifold_edges``: the same
    count, 0.8 s instead of 3.5 s and 290 MB for 2 M faces.
    """
    faces = np.asarray(mesh.triangles, dtype=np.int64)
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, uses = np.unique(edges[:, 0] * len(mesh.vertices) + edges[:, 1], return_counts=True)
    count = int((uses > 2).sum())
    if count:
        _LOG.warning("%s: %d non-manifold edges (kept as is)", path, count)


def ensure_normals(mesh: o3d.geometry.TriangleMesh, recompute: bool) -> None:
    """Unit vertex normals in place: the file's when usable, else area-weighted face normals."""
    normals = np.asarray(mesh.vertex_normals)
    usable = (
        not recompute
        and len(normals) == len(mesh.vertices)
        and np.isfinite(normals).all()
        and (np.linalg.norm(normals, axis=1) > 1e-12).all()
    )
    if usable:
        o3d = require_open3d("mesh normals", SNAPSHOT_HINT)
        mesh.vertex_normals = o3d.utility.Vector3dVector(unit_rows(normals).astype(np.float64))
    else:
        mesh.compute_vertex_normals(normalized=True)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, 3) rows scaled to unit length; zero rows become (0, 0, 1)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)
    out[norms[:, 0] <= 1e-12] = (0.0, 0.0, 1.0)
    return out
