"""CAD models: the eight shipped LM-O meshes through config/models.yaml, plus hand-written meshes
for the other formats and for every error case."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest

from gcf_ros.core.models import (
    DEFAULT_MAX_FACES,
    ModelLoadError,
    ModelRegistry,
    ModelSpec,
    ObjectModel,
    Symmetry,
    load_model,
)

ROOT = Path(__file__).resolve().parents[2]
MODELS_YAML = ROOT / "config" / "models.yaml"
LMO_MODELS = ROOT / "data" / "models" / "lmo"
TF_NAMES = {
    1: "ape", 5: "can", 6: "cat", 8: "driller", 9: "duck", 10: "eggbox", 11: "glue",
    12: "holepuncher",
}  # fmt: skip
PLY_HEADER = (
    "ply\nformat ascii 1.0\nelement vertex {nv}\nproperty float x\nproperty float y\n"
    "property float z\nelement face {nf}\nproperty list uchar int vertex_indices\nend_header\n"
)
# Today's diameters, metres: they set the ADD(-S) thresholds and must not drift by a bit.
LMO_DIAMETERS = {
    1: 0.10209865754580173, 5: 0.20140358550687637, 6: 0.1545455188028307,
    8: 0.2614717857804696, 9: 0.10899920120785483, 10: 0.1646275878389147,
    11: 0.1758893320422593, 12: 0.14554287508439118,
}  # fmt: skip
CUBE_V = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
CUBE_F = [  # outward, counter-clockwise, 1-based like OBJ
    (1, 2, 4), (1, 4, 3), (5, 7, 8), (5, 8, 6), (1, 5, 6), (1, 6, 2),
    (3, 4, 8), (3, 8, 7), (1, 3, 7), (1, 7, 5), (2, 6, 8), (2, 8, 4),
]  # fmt: skip


@pytest.fixture(scope="module")
def lmo_registry() -> ModelRegistry:
    return ModelRegistry.from_yaml(MODELS_YAML)


@pytest.fixture(scope="module")
def models_info() -> dict[int, dict[str, float]]:
    return {int(k): v for k, v in json.loads((LMO_MODELS / "models_info.json").read_text()).items()}


def _write_ply(path: Path, verts: list, faces: list) -> Path:
    body = "".join(" ".join(str(c) for c in v) + "\n" for v in verts)
    body += "".join(f"3 {a} {b} {c}\n" for a, b, c in faces)
    path.write_text(PLY_HEADER.format(nv=len(verts), nf=len(faces)) + body)
    return path


def _write_cube_obj(path: Path, quads: bool = False) -> Path:
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_V]
    if quads:  # pairs of triangles (a, b, c) + (a, c, d) -> quad (a, b, c, d)
        lines += [
            f"f {a} {b} {c} {d[2]}" for (a, b, c), d in zip(CUBE_F[::2], CUBE_F[1::2], strict=True)
        ]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in CUBE_F]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_cube_obj_quads(path: Path) -> Path:
    return _write_cube_obj(path, quads=True)


def _write_cube_stl(path: Path) -> Path:
    verts = np.array(CUBE_V, dtype=float)
    out = ["solid cube"]
    for face in CUBE_F:
        tri = verts[np.array(face) - 1]
        n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
        out += [f"facet normal {n[0]} {n[1]} {n[2]}", "outer loop"]
        out += [f"vertex {p[0]} {p[1]} {p[2]}" for p in tri]
        out += ["endloop", "endfacet"]
    path.write_text("\n".join([*out, "endsolid cube"]) + "\n")
    return path


def test_registry_lists_the_eight_lmo_models(lmo_registry: ModelRegistry):
    assert lmo_registry.ids == tuple(f"obj_{i:06d}" for i in sorted(TF_NAMES))
    assert len(lmo_registry) == 8 and list(lmo_registry) == list(lmo_registry.ids)
    assert "obj_000001" in lmo_registry and "obj_000002" not in lmo_registry
    for obj_id, name in TF_NAMES.items():
        spec = lmo_registry.spec(f"obj_{obj_id:06d}")
        assert spec.scale == 0.001 and spec.tf_name == name and spec.face_budget is None
        assert spec.max_faces == DEFAULT_MAX_FACES
        assert spec.mesh_path == LMO_MODELS / f"obj_{obj_id:06d}.ply"
        assert spec.symmetric == (obj_id in (10, 11))


def test_shipped_models_load_with_exact_geometry(lmo_registry: ModelRegistry, models_info):
    for obj_id, info in models_info.items():
        model = lmo_registry.get(f"obj_{obj_id:06d}")
        assert model is lmo_registry.get(model.model_id)  # cached
        assert model.tf_name == TF_NAMES[obj_id] and model.symmetric == (obj_id in (10, 11))
        assert model.verts_obj.dtype == np.float32 and np.isfinite(model.verts_obj).all()
        assert model.faces.dtype == np.int32 and model.faces.max() < len(model.verts_obj)
        assert model.diameter == pytest.approx(info["diameter"] * 1e-3, rel=5e-3)
        assert model.diameter == LMO_DIAMETERS[obj_id]
        bbox_min_mm = np.array([info["min_x"], info["min_y"], info["min_z"]])
        size_mm = np.array([info["size_x"], info["size_y"], info["size_z"]])
        np.testing.assert_allclose(model.bbox_min * 1e3, bbox_min_mm, atol=0.5)
        np.testing.assert_allclose((model.bbox_max - model.bbox_min) * 1e3, size_mm, atol=0.5)
        colors = model.vert_colors
        assert colors.dtype == np.float32 and colors.min() >= 0.0 and colors.max() <= 1.0
        assert np.ptp(colors, axis=0).max() > 0.1  # real vertex colour, not a flat fallback
        np.testing.assert_allclose(np.linalg.norm(model.vert_normals_obj, axis=1), 1.0, atol=1e-5)
        assert not model.verts_obj.flags.writeable


def test_shipped_binary_models_equal_the_bop_originals(lmo_root: Path):
    for src in sorted((lmo_root / "models").glob("obj_*.ply"))[:3]:
        a = o3d.io.read_triangle_mesh(str(src))
        b = o3d.io.read_triangle_mesh(str(LMO_MODELS / src.name))
        for attr in ("vertices", "vertex_normals"):
            x, y = np.asarray(getattr(a, attr)), np.asarray(getattr(b, attr))
            np.testing.assert_array_equal(x.astype(np.float32), y.astype(np.float32))
        np.testing.assert_array_equal(np.asarray(a.vertex_colors), np.asarray(b.vertex_colors))
        np.testing.assert_array_equal(np.asarray(a.triangles), np.asarray(b.triangles))


def test_simplified_keeps_budget_colours_and_bbox(lmo_registry: ModelRegistry):
    for model_id in lmo_registry.ids:
        full = lmo_registry.get(model_id)
        small = full.simplified(2000)
        assert small.num_faces <= 2000 and small.num_faces > 1000
        assert small.model_id == full.model_id and small.symmetric == full.symmetric
        np.testing.assert_allclose(small.bbox_min, full.bbox_min, atol=2e-3)
        np.testing.assert_allclose(small.bbox_max, full.bbox_max, atol=2e-3)
        np.testing.assert_allclose(
            small.vert_colors.mean(axis=0), full.vert_colors.mean(axis=0), atol=0.05
        )
        assert np.ptp(small.vert_colors, axis=0).max() > 0.1
        np.testing.assert_allclose(np.linalg.norm(small.vert_normals_obj, axis=1), 1.0, atol=1e-5)
        assert small.diameter == pytest.approx(full.diameter, rel=0.02)
    ape = lmo_registry.get("obj_000001")
    assert ape.simplified(ape.num_faces) is ape
    with pytest.raises(ValueError, match="max_faces"):
        ape.simplified(0)


def test_render_model_applies_face_budget():
    spec = ModelSpec("obj_000009", LMO_MODELS / "obj_000009.ply", scale=0.001, face_budget=1500)
    registry = ModelRegistry({"obj_000009": spec})
    render = registry.render_model("obj_000009")
    assert render.num_faces <= 1500 and registry.get("obj_000009").num_faces == 15820
    assert registry.render_model("obj_000009") is render
    assert registry.get("obj_000009").tf_name == "obj_000009"  # tf_name defaults to the id


def test_meshes_above_max_faces_are_decimated_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=50.0, resolution=100)  # 39 600 faces
    z = np.asarray(sphere.vertices)[:, 2] / 100.0 + 0.5
    sphere.vertex_colors = o3d.utility.Vector3dVector(np.c_[z, 1.0 - z, np.full_like(z, 0.5)])
    path = tmp_path / "sphere.ply"
    o3d.io.write_triangle_mesh(str(path), sphere)
    full = load_model(ModelSpec("ball", path, scale=0.001))
    with caplog.at_level(logging.WARNING, logger="gcf_ros.core.models"):
        small = load_model(ModelSpec("ball", path, scale=0.001, max_faces=5_000))
    assert full.num_faces == 39_600 and 2_000 < small.num_faces <= 5_000
    assert "39600 faces > max_faces 5000: decimated to" in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert small.diameter == pytest.approx(full.diameter, rel=1e-3)  # stated: < 2 sqrt(3) cells
    np.testing.assert_allclose(small.bbox_min, full.bbox_min, atol=1e-4)
    np.testing.assert_allclose(small.bbox_max, full.bbox_max, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(small.vert_normals_obj, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(small.vert_colors[:, 0], small.verts_obj[:, 2] * 10 + 0.5, atol=0.05)
    assert (np.einsum("ij,ij->i", small.vert_normals_obj, small.verts_obj) > 0).all()


def test_open3d_conversions_and_bbox_corners(lmo_registry: ModelRegistry):
    model = lmo_registry.get("obj_000011")
    legacy = model.to_open3d_legacy()
    assert len(legacy.triangles) == model.num_faces and legacy.has_vertex_colors()
    corners = model.bbox_corners_obj
    assert corners.shape == (8, 3) and corners.dtype == np.float32
    np.testing.assert_array_equal(corners[0], model.bbox_min)
    np.testing.assert_array_equal(corners[7], model.bbox_max)
    np.testing.assert_array_equal(corners[4], [*model.bbox_max[:1], *model.bbox_min[1:]])


@pytest.mark.parametrize(
    ("writer", "name"),
    [
        (_write_cube_obj, "cube.obj"),
        (_write_cube_obj_quads, "quads.obj"),
        (_write_cube_stl, "c.stl"),
    ],
    ids=["obj", "obj-quads", "stl"],
)
def test_cube_obj_and_stl_use_flat_colour(tmp_path: Path, writer, name: str):
    path = writer(tmp_path / name)
    spec = ModelSpec("cube", path, scale=0.1, color=(0.2, 0.4, 0.6), tf_name="box")
    model = load_model(spec)
    assert len(model.verts_obj) == 8 and model.num_faces == 12  # STL corners merged, quads split
    np.testing.assert_allclose(model.vert_colors, np.tile([0.2, 0.4, 0.6], (8, 1)), atol=1e-6)
    assert model.diameter == pytest.approx(0.1 * np.sqrt(3), rel=1e-6)
    np.testing.assert_allclose(model.bbox_max - model.bbox_min, [0.1, 0.1, 0.1], atol=1e-7)
    outward = np.sum(model.vert_normals_obj * (model.verts_obj - 0.05), axis=1)
    assert (outward > 0).all() and model.tf_name == "box"
    default = load_model(ModelSpec("cube", path))
    np.testing.assert_allclose(default.vert_colors, 0.7, atol=1e-6)


@pytest.mark.parametrize("quad", [False, True], ids=["triangles", "quad"])
def test_textured_obj_colours_sampled_per_vertex(tmp_path: Path, quad: bool):
    texture = np.zeros((32, 32, 3), np.uint8)
    texture[:16] = (0, 0, 255)  # BGR red: top half of the image file
    texture[16:] = (0, 255, 0)  # green: bottom half
    cv2.imwrite(str(tmp_path / "tex.png"), texture)
    (tmp_path / "m.mtl").write_text("newmtl mat0\nKd 1 1 1\nmap_Kd tex.png\n")
    obj = "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 1\nv 0 1 0\nvt 0.2 0.9\nvt 0.8 0.1\nusemtl mat0\n"
    if quad:  # one quad: corner 1 at v = 0.9 (top), corner 3 at v = 0.1 (bottom)
        obj += "f 1/1 2/1 3/2 4/1\n"
    else:  # triangle 1: v = 0.9 (top), triangle 2: v = 0.1 (bottom)
        obj += "f 1/1 2/1 4/1\nf 2/2 3/2 4/2\n"
    (tmp_path / "m.obj").write_text(obj)
    model = load_model(ModelSpec("textured", tmp_path / "m.obj"))
    by_pos = {tuple(v): c for v, c in zip(model.verts_obj.tolist(), model.vert_colors, strict=True)}
    np.testing.assert_allclose(by_pos[(0.0, 0.0, 0.0)], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(by_pos[(1.0, 1.0, 1.0)], [0.0, 1.0, 0.0], atol=1e-6)


def test_relative_and_absolute_yaml_paths(tmp_path: Path):
    (tmp_path / "meshes").mkdir()
    _write_cube_obj(tmp_path / "meshes" / "cube.obj")
    config = tmp_path / "config"
    config.mkdir()
    yaml_path = config / "models.yaml"
    yaml_path.write_text(
        "models:\n  rel:\n    mesh: ../meshes/cube.obj\n    scale: 0.5\n    face_budget: 6\n"
        "    max_faces: 12\n"
        f"  abs:\n    mesh: {tmp_path / 'meshes' / 'cube.obj'}\n    unit: m\n    color: [1, 0, 0]\n"
    )
    registry = ModelRegistry.from_yaml(yaml_path)
    assert registry.ids == ("abs", "rel")
    assert registry.spec("rel").mesh_path.resolve() == (tmp_path / "meshes" / "cube.obj")
    assert registry.get("rel").diameter == pytest.approx(0.5 * np.sqrt(3))
    assert registry.render_model("rel").num_faces <= 6
    assert registry.spec("rel").max_faces == 12 and registry.get("rel").num_faces == 12
    np.testing.assert_allclose(registry.get("abs").vert_colors[0], [1, 0, 0])


def test_yaml_errors_name_key_and_model(tmp_path: Path, lmo_registry: ModelRegistry):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  cube:\n    mesh: cube.obj\n    scael: 0.001\n")
    with pytest.raises(ModelLoadError, match=r"'cube'.*unknown key.*scael"):
        ModelRegistry.from_yaml(path)
    path.write_text("models:\n  cube:\n    scale: 0.001\n")
    with pytest.raises(ModelLoadError, match=r"'cube'.*missing 'mesh'"):
        ModelRegistry.from_yaml(path)
    path.write_text("models:\n  cube:\n    mesh: cube.obj\n    scale: -1\n")
    with pytest.raises(ModelLoadError, match="scale"):
        ModelRegistry.from_yaml(path)
    for bad in ("0", "1.5e6", "true", "null"):
        path.write_text(
            f"models:\n  cube:\n    mesh: cube.obj\n    unit: m\n    max_faces: {bad}\n"
        )
        with pytest.raises(ModelLoadError, match=r"'cube'.*max_faces"):
            ModelRegistry.from_yaml(path)
    with pytest.raises(ModelLoadError, match="not found"):
        ModelRegistry.from_yaml(tmp_path / "absent.yaml")
    with pytest.raises(KeyError, match=r"obj_000099.*obj_000001"):
        lmo_registry.get("obj_000099")


def test_load_errors_name_the_file(tmp_path: Path):
    cases = {
        "missing.ply": (None, "not found"),
        "cube.fbx": ("x", "unsupported mesh extension"),
        "empty.ply": (([], []), "no vertices or no faces"),
        "nan.ply": (([(0, 0, 0), (1, "nan", 0), (0, 1, 0)], [(0, 1, 2)]), "NaN/inf"),
        "range.ply": (([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1, 7)]), "out of range"),
        "flat.ply": (([(1, 1, 1)] * 3, [(0, 1, 2)]), "zero diameter"),
        "degenerate.ply": (([(0, 0, 0), (1, 0, 0)], [(0, 1, 1)]), "degenerate"),
        "cube.stl": (_write_cube_stl, "12 faces cannot be clustered to max_faces 10"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif callable(content):
            content(path)
        elif content is not None:
            _write_ply(path, *content)
        with pytest.raises(ModelLoadError, match=message) as info:
            load_model(ModelSpec("m", path, max_faces=10))
        assert name in str(info.value)
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ModelLoadError, match=r"nan\.obj.*NaN"):
        load_model(ModelSpec("m", tmp_path / "nan.obj"))


def test_cleaning_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    verts = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, -1, 0), (5, 5, 5)]  # 5: unreferenced
    faces = [(0, 1, 2), (0, 1, 2), (0, 1, 3), (0, 1, 4)]  # duplicate; edge 0-1 has 3 triangles
    path = _write_ply(tmp_path / "messy.ply", verts, faces)
    with caplog.at_level(logging.INFO, logger="gcf_ros.core.models"):
        model = load_model(ModelSpec("messy", path))
    assert model.num_faces == 3 and len(model.verts_obj) == 5
    text = caplog.text
    assert "removed 1 duplicated triangles" in text and "removed 1 unreferenced vertices" in text
    assert "1 non-manifold edges" in text


def test_object_model_checks_shapes():
    with pytest.raises(ValueError, match="vert_colors"):
        ObjectModel(
            "bad", np.zeros((3, 3)), np.zeros((1, 3)), np.zeros((2, 3)), np.zeros((3, 3)), 1.0,
            np.zeros(3), np.ones(3), False, "bad", Path("x.ply"),
        )  # fmt: skip


FLIP_Z = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 10, 0, 0, 0, 1]  # 180° about z, 10 mesh units up


def _registry_yaml(tmp_path: Path, body: str) -> Path:
    _write_cube_obj(tmp_path / "cube.obj")
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  cube:\n    mesh: cube.obj\n" + body)
    return path


def test_yaml_unit_up_axis_and_symmetry(tmp_path: Path):
    path = _registry_yaml(
        tmp_path,
        f"    unit: cm\n    up_axis: -y\n    tf_name: box\n    symmetry: {{discrete: [{FLIP_Z}]}}\n"
        "  can:\n    mesh: cube.obj\n    unit: mm\n"
        "    symmetry: {continuous: {axis: [0, 0, 1], offset: [500, 500, 0]}}\n"
        "  legacy:\n    mesh: cube.obj\n    scale: 0.001\n    symmetric: true\n",
    )
    registry = ModelRegistry.from_yaml(path)
    spec = registry.spec("cube")
    assert spec.unit == "cm" and spec.scale == 0.01 and spec.up_axis == "-y"
    model = registry.get("cube")
    assert model.diameter == pytest.approx(0.01 * np.sqrt(3))  # cm → m
    np.testing.assert_array_equal(model.up_axis, [0.0, -1.0, 0.0])
    np.testing.assert_allclose(model.verts_obj.min(0), 0.0)  # the CAD frame is kept: not rotated
    assert model.symmetric and model.symmetry.kind == "discrete" and model.tf_name == "box"
    assert model.symmetry.transforms[0, 2, 3] == pytest.approx(0.1)  # in the mesh's unit: cm
    can = registry.get("can")
    assert can.symmetry.kind == "continuous" and can.symmetric
    np.testing.assert_allclose(can.symmetry.offset, [0.5, 0.5, 0.0])  # mm → m
    legacy = registry.get("legacy")
    assert legacy.symmetric and legacy.symmetry.kind == "unspecified"
    np.testing.assert_array_equal(legacy.up_axis, [0.0, 0.0, 1.0])  # default +z
    assert registry.render_model("cube").symmetry == model.symmetry  # kept by simplified()
    assert model.simplified(6).symmetry == model.symmetry
    np.testing.assert_array_equal(model.simplified(6).up_axis, model.up_axis)


YAML_ERRORS = [
    ("", "model 'cube': missing 'unit' (the mesh file's length unit: mm, cm or m) or 'scale'"),
    ("    unit: mm\n    scale: 0.001\n", "model 'cube': give 'unit' or 'scale', not both"),
    ("    unit: inch\n", "model 'cube': unit must be one of ['mm', 'cm', 'm'], got 'inch'"),
    ("    unit: m\n    up_axis: up\n", "model 'cube': up_axis must be one of ['+x', '-x'"),
    ("    unit: m\n    symmetric: yes please\n", "model 'cube': symmetric must be true or false"),
    (
        "    unit: m\n    symmetric: true\n    symmetry: none\n",
        "model 'cube': give 'symmetry' or 'symmetric', not both",
    ),
    (
        "    unit: m\n    symmetry: {discrete: [[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]}"
        "\n",
        "model 'cube': symmetry.discrete[0]: not a rigid transform",
    ),
    (
        "    unit: m\n    symmetry: {continuous: {axis: [0, 0, 0]}}\n",
        "model 'cube': symmetry.continuous.axis: must be non-zero",
    ),
    ("    unit: m\n    symmetry: round\n", "model 'cube': symmetry: expected none, unspecified"),
    ("    unit: m\n    tf_name: ''\n", "model 'cube': tf_name must be a non-empty string"),
    ("    unit: m\n    color: [2, 0, 0]\n", "model 'cube': color must be 3 numbers in [0, 1]"),
    ("    scale: 0\n", "model 'cube': scale must be finite and > 0"),
]


@pytest.mark.parametrize(("body", "message"), YAML_ERRORS)
def test_yaml_errors_name_file_model_and_field(tmp_path: Path, body: str, message: str):
    path = _registry_yaml(tmp_path, body)
    with pytest.raises(ModelLoadError) as err:
        ModelRegistry.from_yaml(path)
    assert str(err.value).startswith(f"{path}: "), str(err.value)
    assert message in str(err.value)


def test_model_spec_unit_scale_symmetry_rules(tmp_path: Path):
    path = tmp_path / "m.ply"
    assert ModelSpec("m", path).scale == 1.0  # the Python default stays metres
    assert ModelSpec("m", path, unit="mm").scale == 0.001
    assert (
        ModelSpec("m", path, unit="mm", scale=0.001).scale == 0.001
    )  # agreeing: dataclass replace
    with pytest.raises(ModelLoadError, match="model 'm': give 'unit' or 'scale', not both"):
        ModelSpec("m", path, unit="mm", scale=1.0)
    assert ModelSpec("m", path, up_axis="y").up_axis == "+y"
    spec = ModelSpec("m", path, symmetric=True)
    assert spec.symmetry.kind == "unspecified" and spec.symmetric is True
    assert ModelSpec("m", path).symmetric is False and ModelSpec("m", path).symmetry.kind == "none"
    sym = Symmetry(kind="continuous", axis=np.array([0.0, 0.0, 1.0]))
    assert ModelSpec("m", path, symmetry=sym).symmetric is True
    assert ModelSpec("m", path, symmetry=sym) == ModelSpec("m", path, symmetry=sym)
    with pytest.raises(ModelLoadError, match="model 'm': symmetric False contradicts symmetry"):
        ModelSpec("m", path, symmetric=False, symmetry=sym)
    with pytest.raises(ModelLoadError, match="model 'm': symmetry must be a Symmetry"):
        ModelSpec("m", path, symmetry="none")


def test_object_model_symmetry_and_up_axis_checks():
    args = (np.zeros((3, 3)), np.zeros((1, 3)), np.zeros((3, 3)), np.zeros((3, 3)), 1.0)
    args += (np.zeros(3), np.ones(3))
    legacy = ObjectModel("m", *args, True, "m", Path("x.ply"))
    assert legacy.symmetry.kind == "unspecified" and legacy.color_source == "vertex"
    sym = Symmetry.from_yaml({"discrete": [FLIP_Z]}, "x")
    model = ObjectModel("m", *args, True, "m", Path("x.ply"), symmetry=sym, up_axis=(0, 2, 0))
    np.testing.assert_array_equal(model.up_axis, [0, 1, 0])
    with pytest.raises(ValueError, match="symmetric=False contradicts symmetry 'discrete"):
        ObjectModel("m", *args, False, "m", Path("x.ply"), symmetry=sym)
    with pytest.raises(ValueError, match="up_axis"):
        ObjectModel("m", *args, False, "m", Path("x.ply"), up_axis=(0, 0, 0))


@pytest.mark.parametrize(
    ("unit", "size", "shown"), [("mm", 100.0, "173 m"), ("m", 0.1, "0.173 mm")]
)
def test_implausible_size_warns_with_the_likely_unit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unit: str, size: float, shown: str
):
    """A 10 cm box in mm read as metres (and the reverse) warns, naming the right unit."""
    mesh = o3d.geometry.TriangleMesh.create_box(size, size, size)
    path = tmp_path / "box.ply"
    o3d.io.write_triangle_mesh(str(path), mesh)
    wrong = "m" if unit == "mm" else "mm"
    with caplog.at_level(logging.WARNING, logger="gcf_ros.core.models"):
        load_model(ModelSpec("box", path, unit=wrong))
    assert (
        f"box.ply: model 'box' (unit {wrong}): diameter {shown}: a {shown} object?" in caplog.text
    )
    assert f"object? the mesh looks like it is in {unit}; check its unit" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gcf_ros.core.models"):
        load_model(ModelSpec("box", path, unit=unit))
    assert caplog.text == ""


def _write_two_material_obj(tmp_path: Path, uvs_everywhere: bool, quad: bool = False) -> Path:
    """A unit square (two triangles: red Kd, green Kd) and a textured triangle (blue texture,
    Kd white) above it. Materials defined in an order that is neither alphabetical nor use order."""
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:] = (255, 0, 0)  # BGR blue
    cv2.imwrite(str(tmp_path / "blue.png"), texture)
    (tmp_path / "m.mtl").write_text(
        "newmtl zgreen\nKd 0 1 0\n\nnewmtl textured\nKd 1 1 1\nmap_Kd blue.png\n\n"
        "newmtl red\nKa 0 0 0\nKd 1 0 0\n"
    )
    uv = "/1" if uvs_everywhere else ""
    lines = ["mtllib m.mtl", "v 0 0 0", "v 1 0 0", "v 1 1 0", "v 0 1 0"]
    lines += ["v 0 0 1", "v 1 0 1", "v 1 1 1", "v 0 1 1", "vt 0.5 0.5"]
    if quad:
        lines += [f"usemtl red\nf 1{uv} 2{uv} 3{uv} 4{uv}"]
    else:
        lines += [f"usemtl red\nf 1{uv} 2{uv} 3{uv}", f"usemtl zgreen\nf 1{uv} 3{uv} 4{uv}"]
    lines += ["usemtl textured\nf 5/1 6/1 7/1"]
    path = tmp_path / "m.obj"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("uvs_everywhere", [True, False], ids=["all-uvs", "textured-face-uvs"])
def test_obj_material_colours_and_texture(tmp_path: Path, uvs_everywhere: bool):
    model = load_model(ModelSpec("bed", _write_two_material_obj(tmp_path, uvs_everywhere)))
    assert model.color_source == "texture+material"
    centres = model.verts_obj[model.faces].astype(np.float64).mean(axis=1)
    face_rgb = model.vert_colors[model.faces].mean(axis=1)

    def rgb_at(centre: tuple[float, float, float]) -> np.ndarray:
        return face_rgb[np.argmin(np.linalg.norm(centres - centre, axis=1))]

    by_centre = {c: rgb_at(c) for c in ((2 / 3, 1 / 3, 0.0), (1 / 3, 2 / 3, 0.0))}
    by_centre[(2 / 3, 1 / 3, 1.0)] = rgb_at((2 / 3, 1 / 3, 1.0))
    np.testing.assert_allclose(by_centre[(2 / 3, 1 / 3, 0.0)], [1, 0, 0], atol=1e-6)  # red Kd
    np.testing.assert_allclose(by_centre[(1 / 3, 2 / 3, 0.0)], [0, 1, 0], atol=1e-6)  # green Kd
    np.testing.assert_allclose(by_centre[(2 / 3, 1 / 3, 1.0)], [0, 0, 1], atol=1e-6)  # texture


def test_obj_polygon_faces_with_several_materials_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = _write_two_material_obj(tmp_path, uvs_everywhere=True, quad=True)
    with caplog.at_level(logging.WARNING, logger="gcf_ros.core.models"):
        model = load_model(ModelSpec("bed", path, color=(0.2, 0.2, 0.2)))
    assert model.num_faces == 3  # the quad is triangulated
    assert "m.obj: .mtl material colours skipped: 3 materials in the .mtl file(s)" in caplog.text
    assert "triangulate the file to keep per-material colours" in caplog.text


def test_obj_without_mtl_and_glb_keep_working(tmp_path: Path):
    obj = _write_cube_obj(tmp_path / "plain.obj")
    obj.write_text("mtllib absent.mtl\n" + obj.read_text())
    plain = load_model(ModelSpec("plain", obj))
    assert plain.color_source == "flat" and plain.num_faces == 12
    mesh = o3d.geometry.TriangleMesh.create_box(0.1, 0.2, 0.3)
    mesh.compute_vertex_normals()
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.tile([0.1, 0.5, 0.9], (8, 1)))
    for name in ("box.glb", "box.gltf"):  # the tensor writer: open3d 0.20's legacy .glb is corrupt
        path = tmp_path / name
        assert o3d.t.io.write_triangle_mesh(
            str(path), o3d.t.geometry.TriangleMesh.from_legacy(mesh)
        )
        model = load_model(ModelSpec("box", path))
        np.testing.assert_allclose(model.bbox_max - model.bbox_min, [0.1, 0.2, 0.3], atol=1e-6)
        assert model.color_source == "vertex"
        np.testing.assert_allclose(model.vert_colors.mean(0), [0.1, 0.5, 0.9], atol=0.01)
    assert o3d.io.write_triangle_mesh(str(tmp_path / "broken.glb"), mesh)
    with pytest.raises(ModelLoadError, match=r"broken\.glb: no vertices or no faces"):
        load_model(ModelSpec("box", tmp_path / "broken.glb"))


def test_include_adds_other_registries_and_refuses_twins_and_cycles(tmp_path: Path):
    _write_cube_obj(tmp_path / "cube.obj")
    (tmp_path / "mine").mkdir()
    mine = tmp_path / "mine" / "models.yaml"
    mine.write_text(
        f"include: [{MODELS_YAML}, ../other.yaml]\n"
        "models:\n  cube: {mesh: ../cube.obj, unit: cm, tf_name: my_cube}\n"
    )
    (tmp_path / "other.yaml").write_text("models:\n  cube2: {mesh: cube.obj, unit: mm}\n")
    registry = ModelRegistry.from_yaml(mine)
    assert registry.ids == tuple(
        sorted([*ModelRegistry.from_yaml(MODELS_YAML).ids, "cube", "cube2"])
    )
    assert registry.spec("obj_000010").symmetry.kind == "discrete"  # as the included file says
    assert registry.spec("obj_000001").mesh_path == (LMO_MODELS / "obj_000001.ply").resolve()
    assert registry.spec("cube2").mesh_path == (tmp_path / "cube.obj").resolve()
    assert registry.get("cube").diameter == pytest.approx(0.01 * np.sqrt(3))
    (tmp_path / "other.yaml").write_text("models:\n  obj_000005: {mesh: cube.obj, unit: mm}\n")
    with pytest.raises(ModelLoadError, match="'obj_000005' is defined twice"):
        ModelRegistry.from_yaml(mine)
    (tmp_path / "other.yaml").write_text("include: mine/models.yaml\nmodels: {}\n")
    with pytest.raises(ModelLoadError, match="includes itself"):
        ModelRegistry.from_yaml(mine)
    (tmp_path / "other.yaml").write_text("include: [3]\nmodels: {}\n")
    with pytest.raises(ModelLoadError, match="'include:' must be a file name"):
        ModelRegistry.from_yaml(mine)


def test_the_example_registry_includes_the_lmo_models():
    registry = ModelRegistry.from_yaml(ROOT / "data" / "models" / "example" / "models.yaml")
    assert set(registry.ids) == {*ModelRegistry.from_yaml(MODELS_YAML).ids, "hammer"}
    hammer = registry.get("hammer")
    assert hammer.color_source == "material" and not hammer.symmetric
    np.testing.assert_array_equal(hammer.up_axis, [0, 1, 0])
    np.testing.assert_allclose(hammer.bbox_max - hammer.bbox_min, [0.07, 0.146, 0.026], atol=1e-6)
