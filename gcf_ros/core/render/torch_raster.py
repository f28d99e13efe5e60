"""Hard triangle rasterization in plain torch: the GPU renderer that needs no extension.

``TorchRasterizer`` renders ``RenderOutput`` windows on any torch device with nothing but torch:
no open3d, no PyTorch3D, no compiled code. It is the renderer of the GPU placement
(``gcf_ros.gcf.placement.Placement.gpu``): on a GPU machine where neither open3d nor a PyTorch3D
build for the installed torch exists, the whole refinement loop still runs there.

Per call, for all B windows at once (faces of the frame's models packed into one list):

1. project every vertex with its window's pose and matrix (pixel *centres* at integer
   coordinates, as everywhere in this package);
2. expand every face into the pixel centres of its bounding box (faces whose box holds no pixel
   centre are dropped: at S = 128 most faces of a 25 k-face model cover less than a pixel);
3. keep the centres inside the triangle (edge functions, either winding: no culling), compute
   their depth by perspective-correct interpolation (1 / z is affine in screen space);
4. z-buffer with one ``scatter_reduce(amin)`` over int64 keys: the float32 depth's bit pattern
   (monotonic for positive floats) in the high 32 bits, the face index in the low 32 bits, so
   the nearest face wins and ties go to the lower face index;
5. at each covered pixel, recompute the winning face's perspective-correct barycentrics and
   interpolate [xyz_obj | normal_obj | colour], then shade as the other renderers do.

Candidates are processed in chunks of at most ``max_candidates`` (bounding-box pixels), so a
model close to the camera costs time, not unbounded memory. Faces with a vertex closer than
``near`` (default 1 mm) are dropped, not clipped: objects refined by this package are tens of
centimetres away. Matches open3d's ray caster (``RaycastRenderer``) up to pixels whose centre
lies on a silhouette edge (test/core/test_render_torch.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gcf_ros.core.render.shading import shade
from gcf_ros.core.render.types import RenderOutput, Shading, checked_inputs

if TYPE_CHECKING:
    from gcf_ros.core.models import ObjectModel

__all__ = ["TorchRasterizer"]

_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = (1 << 32) - 1


@dataclass(frozen=True)
class _Packed:
    """The meshes of one batch of models, concatenated on the device.

    ``verts`` (V, 3) object frame; ``faces`` (F, 3) int64 into ``verts``; ``attrs`` (V, 9) =
    [xyz_obj | normal_obj | colour]; ``vert_window`` (V,) and ``face_window`` (F,) the window
    index of each vertex / face.
    """

    models: tuple  # keeps the ids of the cache key valid while cached
    verts: torch.Tensor
    faces: torch.Tensor
    attrs: torch.Tensor
    vert_window: torch.Tensor
    face_window: torch.Tensor


class TorchRasterizer:
    """Renders ``RenderOutput`` windows by rasterizing triangles with torch operations.

    Args:
        device: where meshes are cached, rasterization runs and outputs live.
        near: faces with a vertex at camera z below this (metres) are dropped.
        max_candidates: bounding-box pixels per chunk (memory bound: ~60 bytes each).
        cache_batches: how many packed batches (a tuple of models) to keep; the refiner renders
            the same models every iteration, so one is enough for a frame.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        near: float = 1e-3,
        max_candidates: int = 1 << 22,
        cache_batches: int = 4,
    ) -> None:
        if not near > 0:
            raise ValueError(f"near must be > 0, got {near}")
        if max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1, got {max_candidates}")
        self.device = torch.device(device)
        self.near = float(near)
        self.max_candidates = int(max_candidates)
        self.cache_batches = int(cache_batches)
        self._meshes: dict[int, tuple] = {}
        self._batches: dict[tuple[int, ...], _Packed] = {}

    def render(
        self,
        models: Sequence[ObjectModel],
        T_cam_obj: torch.Tensor,
        K_window: torch.Tensor,
        size: int,
        shading: Shading | None = None,
    ) -> RenderOutput:
        """See ``Renderer.render``. Not differentiable; outputs are float32 (mask bool) on
        ``self.device``."""
        T, K, S = checked_inputs(models, T_cam_obj, K_window, size, self.device)
        B = len(models)
        if B == 0:
            return RenderOutput.empty(0, S, self.device)
        with torch.no_grad():
            packed = self._packed(models)
            uvz = _project(packed.verts, packed.vert_window, T, K)  # (V, 3)
            key = torch.full((B * S * S,), _EMPTY, dtype=torch.int64, device=self.device)
            faces, windows = self._front_faces(packed, uvz)
            box_lo, box_hi = _boxes(uvz, faces, S)
            counts = (box_hi - box_lo + 1).clamp_min(0).prod(dim=1)
            for a, b in _chunks(counts, self.max_candidates):
                _zbuffer(key, uvz, faces[a:b], windows[a:b], box_lo[a:b], box_hi[a:b], a, S)
            return self._outputs(key, packed, faces, uvz, T, B, S, shading or Shading())

    # ------------------------------------------------------------------------------ internals

    def _mesh(self, model: ObjectModel) -> tuple:
        """(model, verts (V, 3), faces (F, 3), attrs (V, 9)) on the device, cached by id."""
        cached = self._meshes.get(id(model))
        if cached is None or cached[0] is not model:
            dev = self.device
            verts = torch.tensor(model.verts_obj, dtype=torch.float32, device=dev)
            normals = torch.tensor(model.vert_normals_obj, dtype=torch.float32, device=dev)
            colors = torch.tensor(model.vert_colors, dtype=torch.float32, device=dev)
            faces = torch.tensor(model.faces, dtype=torch.int64, device=dev)
            cached = (model, verts, faces, torch.cat([verts, normals, colors], dim=1))
            self._meshes[id(model)] = cached
        return cached

    def _packed(self, models: Sequence[ObjectModel]) -> _Packed:
        """The batch's meshes concatenated (cached for the last ``cache_batches`` model tuples)."""
        key = tuple(id(m) for m in models)
        hit = self._batches.get(key)
        if hit is not None and all(a is b for a, b in zip(hit.models, models, strict=True)):
            return hit
        parts = [self._mesh(m) for m in models]
        offsets = [0]
        for _, verts, _, _ in parts[:-1]:
            offsets.append(offsets[-1] + len(verts))
        dev = self.device
        nv = torch.tensor([len(p[1]) for p in parts], device=dev)
        nf = torch.tensor([len(p[2]) for p in parts], device=dev)
        windows = torch.arange(len(parts), device=dev)
        packed = _Packed(
            models=tuple(models),
            verts=torch.cat([p[1] for p in parts]),
            faces=torch.cat([p[2] + off for p, off in zip(parts, offsets, strict=True)]),
            attrs=torch.cat([p[3] for p in parts]),
            vert_window=windows.repeat_interleave(nv),
            face_window=windows.repeat_interleave(nf),
        )
        if len(self._batches) >= self.cache_batches:
            self._batches.pop(next(iter(self._batches)))
        self._batches[key] = packed
        return packed

    def _front_faces(self, packed: _Packed, uvz: torch.Tensor):
        """Faces (F', 3) whose three vertices are in front of ``near``, and their windows."""
        in_front = (uvz[:, 2] >= self.near)[packed.faces].all(dim=1)
        return packed.faces[in_front], packed.face_window[in_front]

    def _outputs(self, key, packed, faces, uvz, T, B, S, shading) -> RenderOutput:
        """Interpolate and shade the winning face of every covered pixel."""
        covered = torch.nonzero(key != _EMPTY).squeeze(1)  # (N,) flat pixel index b*S*S + i*S + j
        face = (key[covered] & _LOW32).long()
        tri = faces[face]  # (N, 3) vertex ids
        b, rem = covered // (S * S), covered % (S * S)
        px = torch.stack([rem % S, rem // S], dim=1).to(torch.float32)  # (u, v) = (j, i)
        w = _edge_weights(uvz[tri][..., :2], px).clamp_min(0.0)  # (N, 3) screen barycentrics
        inv_z = w / uvz[tri][..., 2]
        depth = 1.0 / inv_z.sum(1)
        bary = inv_z * depth[:, None]  # perspective-correct
        attrs = torch.einsum("nk,nkc->nc", bary, packed.attrs[tri])  # (N, 9)
        rgb, normals = shade(attrs[:, None], T[b], shading)
        out = RenderOutput.empty(B, S, self.device)
        out.mask.view(-1)[covered] = True
        out.depth.view(-1)[covered] = depth
        out.xyz_obj.view(-1, 3)[covered] = attrs[:, :3]
        out.normals_cam.view(-1, 3)[covered] = normals[:, 0]
        out.rgb.view(-1, 3)[covered] = rgb[:, 0]
        return out


def _project(verts: torch.Tensor, window: torch.Tensor, T: torch.Tensor, K: torch.Tensor):
    """(V, 3) = (u, v, z_cam) of object-frame vertices ``verts`` (V, 3) seen in their windows."""
    X = torch.einsum("vij,vj->vi", T[window, :3, :3], verts) + T[window, :3, 3]
    p = torch.einsum("vij,vj->vi", K[window], X)
    z = X[:, 2]
    return torch.stack([p[:, 0] / p[:, 2], p[:, 1] / p[:, 2], z], dim=1)


def _boxes(uvz: torch.Tensor, faces: torch.Tensor, S: int):
    """Integer pixel ranges [lo, hi] (F, 2) in (u, v) of each face's bounding box."""
    uv = uvz[faces][..., :2]  # (F, 3, 2)
    lo = torch.ceil(uv.amin(dim=1)).clamp(0, S - 1).long()
    hi = torch.floor(uv.amax(dim=1)).clamp(-1, S - 1).long()
    outside = (uv.amax(dim=1) < 0) | (uv.amin(dim=1) > S - 1)
    hi = torch.where(outside, lo - 1, hi)
    return lo, hi


def _chunks(counts: torch.Tensor, limit: int) -> list[tuple[int, int]]:
    """Face ranges [lo, hi) whose bounding-box pixels add up to at most ``limit`` each (a single
    face over the limit gets a range of its own)."""
    total = int(counts.sum())
    if total <= limit:
        return [(0, len(counts))]
    cum = torch.cumsum(counts, 0).cpu()
    ranges, lo, base = [], 0, 0
    while lo < len(counts):
        hi = int(torch.searchsorted(cum, base + limit, right=True))
        hi = max(hi, lo + 1)
        ranges.append((lo, hi))
        base, lo = int(cum[hi - 1]), hi
    return ranges


def _zbuffer(key, uvz, faces, windows, lo, hi, face_offset: int, S: int) -> None:
    """Scatter the nearest (depth, face index) of ``faces`` into ``key`` (B*S*S,) in place;
    ``lo``, ``hi`` (F, 2): their bounding boxes (``_boxes``)."""
    if len(faces) == 0:
        return
    width = (hi[:, 0] - lo[:, 0] + 1).clamp_min(0)
    counts = width * (hi[:, 1] - lo[:, 1] + 1).clamp_min(0)
    face = torch.repeat_interleave(torch.arange(len(faces), device=key.device), counts)
    if len(face) == 0:
        return
    start = torch.cumsum(counts, 0) - counts
    offset = torch.arange(len(face), device=key.device) - start[face]
    w_f = width[face]
    u = lo[face, 0] + offset % w_f
    v = lo[face, 1] + offset // w_f
    tri = uvz[faces[face]]  # (N, 3, 3)
    px = torch.stack([u, v], dim=1).to(uvz.dtype)
    w = _edge_weights(tri[..., :2], px)
    inside = (w >= 0).all(dim=1)
    face, u, v, w, tri = face[inside], u[inside], v[inside], w[inside], tri[inside]
    depth = 1.0 / (w / tri[..., 2]).sum(1)
    bits = depth.to(torch.float32).view(torch.int32).to(torch.int64)
    packed = (bits << 32) | (face + face_offset)
    pixel = windows[face] * (S * S) + v * S + u
    key.scatter_reduce_(0, pixel, packed, reduce="amin")


def _edge_weights(tri_uv: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics (N, 3) of points ``px`` (N, 2) in triangles ``tri_uv``
    (N, 3, 2), either winding; degenerate triangles give -1 (outside)."""
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]

    def cross(p, q, r):  # z of (q - p) x (r - p)
        return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])

    area = cross(a, b, c)
    w = torch.stack([cross(b, c, px), cross(c, a, px), cross(a, b, px)], dim=1)
    ok = area.abs() > 1e-12
    return torch.where(ok[:, None], w / torch.where(ok, area, 1.0)[:, None], -1.0)
