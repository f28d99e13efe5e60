"""Scene pieces of the synthetic training data: cameras, true poses, primitives, occluders, layers.

Poses are ``T_cam_obj`` (4, 4) float64 in metres, cameras (3, 3) float64 ``K`` matrices, in the
conventions of :mod:`gcf_ros.core`. Every random draw comes from the caller's
``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from gcf_ros.core import _mesh_utils as mu
from gcf_ros.core.models import ObjectModel
from gcf_ros.core.render.types import Renderer, Shading
from gcf_ros.train import primitives as prim
from gcf_ros.train.synth_config import AUTO, SynthConfig

_PRIMITIVE_SEED = 2020  # the primitive bank is fixed, so every worker holds the same one
_NEAR = 0.05  # metres: nothing is placed closer to the camera than this


@dataclass(frozen=True)
class Layer:
    """One object rendered into the supersampled window (numpy, size x size)."""

    mask: np.ndarray  # (H, W) bool
    depth: np.ndarray  # (H, W) float32, metres (0 off-mask)
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]


def sample_intrinsics(
    rng: np.random.Generator, fx_range: tuple[float, float], width: int, height: int
) -> np.ndarray:
    """(3, 3) K: fx ~ U(fx_range), fy = fx · U(0.98, 1.02), principal point = centre ± 10 px."""
    fx = rng.uniform(*fx_range)
    fy = fx * rng.uniform(0.98, 1.02)
    cx = (width - 1) / 2 + rng.uniform(-10.0, 10.0)
    cy = (height - 1) / 2 + rng.uniform(-10.0, 10.0)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rotation uniform on SO(3) (normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    return Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()


def _rotation_z_to(direction: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the optical axis (0, 0, 1) to the unit ``direction``."""
    axis = np.cross((0.0, 0.0, 1.0), direction)
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    return Rotation.from_rotvec(axis / s * math.atan2(s, float(direction[2]))).as_matrix()


def _rotation_up_to_z(up_obj: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the unit ``up_obj`` to +z (a half turn about x for -z)."""
    if up_obj[2] < -1.0 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    return _rotation_z_to(up_obj).T


def upper_hemisphere_rotation(
    rng: np.random.Generator, up_obj: np.ndarray | None = None
) -> np.ndarray:
    """R_cam_obj (3, 3) of a camera on the optical axis looking at the model from above.

    ``up_obj``: the model's up direction in its own frame (``ObjectModel.up_axis``; default +z).
    The direction from the object to the camera has elevation in [-10°, 90°] over the plane
    normal to it (uniform in area on that band of the sphere) and a uniform azimuth; the model's
    up points up in the image, then the camera rolls by U(-30°, 30°) about its optical axis.
    """
    sin_el = rng.uniform(math.sin(math.radians(-10.0)), 1.0)
    az = rng.uniform(0.0, 2 * math.pi)
    cos_el = math.sqrt(max(0.0, 1.0 - sin_el * sin_el))
    to_camera = np.array([cos_el * math.cos(az), cos_el * math.sin(az), sin_el])
    z_c = -to_camera
    up = np.array([0.0, 0.0, 1.0])
    if abs(z_c @ up) > 0.999:  # straight from above: the azimuth decides what is "up"
        up = np.array([math.cos(az), math.sin(az), 0.0])
    y_c = -(up - (up @ z_c) * z_c)
    y_c /= np.linalg.norm(y_c)
    x_c = np.cross(y_c, z_c)
    R_cam_obj = np.stack([x_c, y_c, z_c])  # rows: camera axes in the object frame
    roll = Rotation.from_rotvec([0.0, 0.0, math.radians(rng.uniform(-30.0, 30.0))]).as_matrix()
    if up_obj is None or np.allclose(up_obj, (0.0, 0.0, 1.0)):  # R_cam_obj is R_cam_up
        return roll @ R_cam_obj
    return roll @ R_cam_obj @ _rotation_up_to_z(np.asarray(up_obj, dtype=np.float64))


def clearance_distance(model: ObjectModel, cfg: SynthConfig) -> float:
    """Metres: the nearest box-centre distance at which the model's box lies wholly beyond _NEAR
    wherever :func:`sample_true_pose` puts it in the image (5 % margin), for every camera of
    ``cfg`` (smallest fx, fy = 0.98 fx, principal point 10 px off centre: a bound)."""
    fx = cfg.fx_range[0]
    du = 0.45 * cfg.image_width + 10.5  # the farthest ray from the principal point, pixels
    dv = 0.45 * cfg.image_height + 10.5
    min_ray_z = 1.0 / math.sqrt(1.0 + (du / fx) ** 2 + (dv / (0.98 * fx)) ** 2)
    return (_box_radius(model) + _NEAR) / min_ray_z


def distance_range(cfg: SynthConfig, model: ObjectModel, K: np.ndarray) -> tuple[float, float]:
    """(near, far) metres of the box-centre distance of ``model`` seen by camera ``K``:
    ``cfg.distance_range``, or with "auto" the distances at which the model's diameter spans
    ``cfg.apparent_size_range`` of the image, its near end moved out to
    :func:`clearance_distance`. An explicit range nearer than that raises ValueError."""
    near, far = cfg.distances_for(model.diameter, float(K[0, 0]))
    clear = clearance_distance(model, cfg)
    if near >= clear:
        return near, far
    if cfg.distance_range != AUTO:
        raise ValueError(
            f"distance_range {list(cfg.distance_range)} m is too near for model "
            f"{model.model_id!r} (diameter {model.diameter:.3g} m): parts of it would be behind "
            f"the camera; its near end must be >= {clear:.3g} m, or use distance_range: auto "
            f"(the distances from the model's size)"
        )
    return clear, max(far, clear)


def sample_true_pose(
    rng: np.random.Generator,
    model: ObjectModel,
    K: np.ndarray,
    width: int,
    height: int,
    distance_range: tuple[float, float],
    upper_hemisphere_prob: float,
) -> np.ndarray:
    """T* (4, 4): the box centre at a distance U(distance_range) on the ray of a pixel uniform in
    the image (5 % margin); rotation from :func:`upper_hemisphere_rotation` with probability
    ``upper_hemisphere_prob`` (about the model's ``up_axis``), else uniform."""
    distance = rng.uniform(*distance_range)
    u = rng.uniform(0.05 * width, 0.95 * width) - 0.5
    v = rng.uniform(0.05 * height, 0.95 * height) - 0.5
    ray = np.linalg.solve(K, np.array([u, v, 1.0]))
    ray /= np.linalg.norm(ray)
    if rng.random() < upper_hemisphere_prob:
        R = _rotation_z_to(ray) @ upper_hemisphere_rotation(rng, model.up_axis)
    else:
        R = random_rotation(rng)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = distance * ray - R @ _box_centre(model)
    return T


def scaled_model(model: ObjectModel, factor: float) -> ObjectModel:
    """``model`` scaled by ``factor`` about its frame's origin (``model`` itself for 1)."""
    if factor == 1.0:
        return model
    return dataclasses.replace(
        model,
        model_id=f"{model.model_id}_x{factor:.3g}",
        verts_obj=model.verts_obj * factor,
        diameter=model.diameter * factor,
        bbox_min=model.bbox_min * factor,
        bbox_max=model.bbox_max * factor,
    )


def primitive_bank(count: int = 16) -> list[ObjectModel]:
    """Fixed white primitives (boxes, UV spheres of resolution 16, cylinders and cones of
    resolution 32), 2-18 cm, centred on their box, flat-shaded except the spheres. Colour them by
    multiplying the rendered rgb by a flat colour. Built in numpy (:mod:`gcf_ros.train.primitives`:
    the meshes of open3d's ``create_*``, bit for bit), so synthesis needs no open3d."""
    rng = np.random.default_rng(_PRIMITIVE_SEED)
    bank = []
    for i in range(count):
        kind = ("box", "sphere", "cylinder", "box", "cone")[i % 5]
        if kind == "box":
            w, h, d = rng.uniform(0.03, 0.15, size=3)
            mesh = prim.box_mesh(w, h, d)
        elif kind == "sphere":
            mesh = prim.sphere_mesh(rng.uniform(0.02, 0.07), resolution=16)
        elif kind == "cylinder":
            radius, height = rng.uniform(0.015, 0.05), rng.uniform(0.04, 0.18)
            mesh = prim.cylinder_mesh(radius, height, resolution=32)
        else:
            radius, height = rng.uniform(0.02, 0.05), rng.uniform(0.04, 0.12)
            mesh = prim.cone_mesh(radius, height, resolution=32)
        bank.append(_primitive_model(*mesh, f"primitive_{i:02d}_{kind}", flat=kind != "sphere"))
    return bank


def _primitive_model(verts: np.ndarray, faces: np.ndarray, name: str, flat: bool) -> ObjectModel:
    """A white ObjectModel of the mesh ``verts`` (V, 3) float64, ``faces`` (F, 3) int64, moved so
    that its box is centred on the origin; ``flat``: one vertex per face corner (each face its
    own normal), else smooth vertex normals (computed before the move, as they always were)."""
    normals = None if flat else mu.unit_rows(prim.vertex_normals(verts, faces))
    verts = verts - (verts.min(0) + verts.max(0)) / 2
    if flat:  # one vertex per face corner, so each face gets its own normal
        tri = verts[faces]
        normals = np.repeat(
            mu.unit_rows(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])), 3, 0
        )
        verts, faces = tri.reshape(-1, 3), np.arange(3 * len(faces)).reshape(-1, 3)
    return ObjectModel(
        model_id=name,
        verts_obj=verts,
        faces=faces,
        vert_colors=np.ones_like(verts),
        vert_normals_obj=normals,
        diameter=mu.diameter(verts),
        bbox_min=verts.min(0),
        bbox_max=verts.max(0),
        symmetric=False,
        tf_name=name,
        source_path=Path(f"<{name}>"),
    )


def render_layer(
    renderer: Renderer,
    model: ObjectModel,
    T: np.ndarray,
    K: np.ndarray,
    size: int,
    shading: Shading,
) -> Layer | None:
    """Render ``model`` at T into a size x size window, rendering only the projection of its
    bounding box (a shifted sub-window: pixel centres are unchanged, so the result equals a
    full-window render). ``renderer`` returns CPU tensors. None when the object misses the
    window or reaches behind _NEAR."""
    corners = model.bbox_corners_obj.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    if (corners[:, 2] <= _NEAR).any():
        return None
    uv = corners @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    u0, v0 = np.clip(np.floor(uv.min(0)).astype(int) - 1, 0, size)
    u1, v1 = np.clip(np.ceil(uv.max(0)).astype(int) + 2, 0, size)
    if u1 <= u0 or v1 <= v0:
        return None
    n = int(max(u1 - u0, v1 - v0))
    K_sub = K.copy()
    K_sub[0, 2] -= u0
    K_sub[1, 2] -= v0
    out = renderer.render([model], T[None], K_sub[None], n, shading)
    h, w = v1 - v0, u1 - u0
    layer = Layer(
        mask=np.zeros((size, size), bool),
        depth=np.zeros((size, size), np.float32),
        rgb=np.zeros((size, size, 3), np.float32),
    )
    layer.mask[v0:v1, u0:u1] = out.mask[0, :h, :w].numpy()
    layer.depth[v0:v1, u0:u1] = out.depth[0, :h, :w].numpy()
    layer.rgb[v0:v1, u0:u1] = out.rgb[0, :h, :w].numpy()
    return layer if layer.mask.any() else None


def pose_at_pixel(
    rng: np.random.Generator, model: ObjectModel, K: np.ndarray, uv: np.ndarray, depth: float
) -> np.ndarray:
    """A uniformly random rotation with the model's box centre at window pixel uv and depth z."""
    R = random_rotation(rng)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.linalg.solve(K, np.array([uv[0], uv[1], 1.0])) * depth - R @ _box_centre(model)
    return T


def composite(canvas: np.ndarray, zbuf: np.ndarray, layer: Layer, tint=None) -> None:
    """Draw ``layer`` over ``canvas`` (H, W, 3) where it is nearer than ``zbuf`` (H, W), in
    place; ``tint`` (3,) multiplies its colour (flat-coloured primitives)."""
    front = layer.mask & (layer.depth < zbuf)
    rgb = layer.rgb[front]
    canvas[front] = rgb if tint is None else rgb * np.asarray(tint, np.float32)
    zbuf[front] = layer.depth[front]


def _box_centre(model: ObjectModel) -> np.ndarray:
    return (model.bbox_min.astype(np.float64) + model.bbox_max) / 2


def _box_radius(model: ObjectModel) -> float:
    """Half the diagonal of the model's box: no point of the model is farther from its centre."""
    return float(np.linalg.norm(model.bbox_max.astype(np.float64) - model.bbox_min) / 2)


def occluder_pose(
    rng: np.random.Generator,
    target: ObjectModel,
    T_target: np.ndarray,
    model: ObjectModel,
    K: np.ndarray,
    size: int,
) -> np.ndarray | None:
    """A random pose of ``model`` between the camera and the target (at T_target), with its
    projection overlapping the target's in the size x size window of camera K; its apparent
    radius is 0.1-0.9 window sides. None when no depth satisfies that."""
    centre = T_target[:3, :3] @ _box_centre(target) + T_target[:3, 3]
    r_t, r_o = target.diameter / 2, _box_radius(model)
    f = float(K[0, 0])
    z_lo = max(_NEAR + r_o + 0.01, f * model.diameter / 2 / (0.9 * size))
    z_hi = min(centre[2] - r_t - 0.3 * r_o, f * model.diameter / 2 / (0.1 * size))
    if z_hi <= z_lo:
        return None
    z = rng.uniform(z_lo, z_hi)
    p = K @ centre
    reach = f * r_t / centre[2] + f * model.diameter / 2 / z  # sum of the apparent radii
    offset = rng.uniform(0.3, 1.0) * reach
    phi = rng.uniform(0.0, 2 * math.pi)
    uv = p[:2] / p[2] + offset * np.array([math.cos(phi), math.sin(phi)])
    return pose_at_pixel(rng, model, K, uv, z)


def clutter_pose(
    rng: np.random.Generator,
    target: ObjectModel,
    T_target: np.ndarray,
    model: ObjectModel,
    K: np.ndarray,
    size: int,
    gap_scale: float = 1.0,
) -> np.ndarray:
    """A random pose of ``model`` behind the target, centred anywhere in (or just beside) the
    window: depth = target depth + radii + U(0, 0.5 · ``gap_scale``) m."""
    centre = T_target[:3, :3] @ _box_centre(target) + T_target[:3, 3]
    z = centre[2] + target.diameter / 2 + _box_radius(model) * rng.uniform(0.5, 1.0)
    z += rng.uniform(0.0, 0.5 * gap_scale)
    uv = rng.uniform(-0.1 * size, 1.1 * size, size=2)
    return pose_at_pixel(rng, model, K, uv, z)
