"""gcf-models: add / check / show on hand-written meshes and on the shipped registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import yaml

from gcf_ros.core.models import ModelRegistry
from gcf_ros.tools import models_cli

ROOT = Path(__file__).resolve().parents[2]


def _box(path: Path, size: float) -> Path:
    """A box of side ``size`` file units (e.g. 80 for an 8 cm box in mm), one corner at 0."""
    mesh = o3d.geometry.TriangleMesh.create_box(size, size, size)
    o3d.io.write_triangle_mesh(str(path), mesh)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gcf_ros.tools.models_cli", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


def test_add_creates_the_registry_with_a_relative_mesh_path(tmp_path: Path, capsys):
    (tmp_path / "meshes").mkdir()
    mesh = _box(tmp_path / "meshes" / "mug.ply", 80.0)
    registry = tmp_path / "config" / "models.yaml"
    argv = ["add", str(registry), "--id", "mug", "--mesh", str(mesh), "--unit", "mm"]
    argv += ["--up", "+y", "--symmetry", "continuous:y", "--tf-name", "my_mug"]
    assert models_cli.main(argv) == 0
    out = capsys.readouterr()
    assert "added model 'mug'" in out.out
    assert "size x/y/z: 80 x 80 x 80 mm = 0.08 x 0.08 x 0.08 m" in out.out
    assert "diameter: 138.6 mm = 0.1386 m" in out.out
    assert "warning" not in out.err
    entry = yaml.safe_load(registry.read_text())["models"]["mug"]
    assert entry["mesh"] == "../meshes/mug.ply" and entry["unit"] == "mm"
    assert entry["up_axis"] == "+y" and entry["tf_name"] == "my_mug"
    model = ModelRegistry.from_yaml(registry).get("mug")
    assert model.symmetry.kind == "continuous" and model.tf_name == "my_mug"
    np.testing.assert_array_equal(model.symmetry.axis, [0, 1, 0])
    np.testing.assert_array_equal(model.up_axis, [0, 1, 0])
    assert model.diameter == pytest.approx(0.08 * np.sqrt(3))


def test_add_updates_keeps_the_header_and_other_models(tmp_path: Path, capsys):
    registry = tmp_path / "models.yaml"
    _box(tmp_path / "a.ply", 0.1)
    registry.write_text(
        "# my robot's objects\n\nmodels:\n  a:\n    mesh: a.ply\n    scale: 1.0\n"
        "    face_budget: 10\n    symmetric: true\n"
    )
    argv = ["add", str(registry), "--id", "a", "--mesh", str(tmp_path / "a.ply"), "--unit", "m"]
    assert models_cli.main(argv) == 0
    argv = ["add", str(registry), "--id", "b", "--mesh", str(tmp_path / "a.ply"), "--unit", "cm"]
    argv += ["--symmetry", "discrete:z:4+continuous:x"]
    assert models_cli.main(argv) == 0
    assert "updated model 'a'" in capsys.readouterr().out
    text = registry.read_text()
    assert text.startswith("# my robot's objects\n\nmodels:")
    doc = yaml.safe_load(text)["models"]
    assert doc["a"] == {"mesh": "a.ply", "face_budget": 10, "symmetric": True, "unit": "m"}
    loaded = ModelRegistry.from_yaml(registry)
    assert loaded.get("a").symmetry.kind == "unspecified"
    b = loaded.get("b").symmetry
    assert (
        b.kind == "continuous"
        and len(b.transforms) == 3
        and b.describe().startswith("continuous x + discrete(3)")
    )


@pytest.mark.parametrize(
    ("size", "unit", "message"),
    [
        (2000.0, "mm", None),  # a 2 m box in mm: plausible, no warning
        (2000.0, "m", "diameter 3.46 km: a 3.46 km object? the mesh looks like it is in mm"),
        (0.1, "mm", "diameter 0.173 mm: a 0.173 mm object? the mesh looks like it is in m"),
        (0.002, "m", "diameter 3.46 mm: a 3.46 mm object? no unit (mm, cm, m) gives 5 mm - 5 m"),
    ],
    ids=["plausible", "mm-as-m", "m-as-mm", "tiny"],
)
def test_add_warns_when_the_size_suggests_the_wrong_unit(
    tmp_path: Path, capsys, size: float, unit: str, message: str | None
):
    mesh = _box(tmp_path / "mug.ply", size)
    argv = ["add", str(tmp_path / "r.yaml"), "--id", "mug", "--mesh", str(mesh), "--unit", unit]
    assert models_cli.main(argv) == 0  # written anyway: a warning
    err = capsys.readouterr().err
    if message is None:
        assert "warning" not in err
    else:
        assert err.count("warning") == 1, err  # the loader's own warning is not repeated
        assert f"gcf-models: warning: model 'mug': {message}; check --unit" in err


def test_add_refuses_what_cannot_load(tmp_path: Path, capsys):
    registry = tmp_path / "r.yaml"
    argv = ["add", str(registry), "--id", "x", "--mesh", str(tmp_path / "absent.ply")]
    assert models_cli.main([*argv, "--unit", "mm"]) == 1
    assert "absent.ply: mesh file not found" in capsys.readouterr().err
    assert not registry.exists()
    with pytest.raises(SystemExit):
        models_cli.main([*argv, "--unit", "inch"])
    with pytest.raises(SystemExit):
        models_cli.main([*argv, "--unit", "mm", "--symmetry", "spherical"])
    assert "cannot read 'spherical'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        models_cli.main([*argv, "--unit", "mm", "--symmetry", "discrete:z:1"])
    assert "want N >= 2" in capsys.readouterr().err


def test_parse_symmetry():
    sym = models_cli.parse_symmetry("discrete:z:2")
    assert sym.kind == "discrete"
    np.testing.assert_allclose(sym.transforms[0], np.diag([-1.0, -1.0, 1.0, 1.0]), atol=1e-12)
    assert models_cli.parse_symmetry("none").kind == "none"
    assert models_cli.parse_symmetry("unspecified").kind == "unspecified"
    np.testing.assert_allclose(models_cli.parse_symmetry("continuous:-x").axis, [-1, 0, 0])
    np.testing.assert_allclose(
        models_cli.parse_symmetry("continuous:1,1,0").axis, np.array([1, 1, 0]) / np.sqrt(2)
    )


def test_check_reports_one_line_per_problem(tmp_path: Path):
    _box(tmp_path / "ok.ply", 0.1)
    _box(tmp_path / "mm.ply", 100.0)
    registry = tmp_path / "models.yaml"
    registry.write_text(
        "models:\n"
        "  ok: {mesh: ok.ply, unit: m, tf_name: shared}\n"
        "  gone: {mesh: gone.ply, unit: m}\n"
        "  both: {mesh: ok.ply, unit: m, scale: 1.0}\n"
        "  twin: {mesh: ok.ply, unit: m, tf_name: shared}\n"
        "  big: {mesh: mm.ply, unit: m}\n"
    )
    result = _run("check", str(registry))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(errors) == 3 and len(warnings) == 1, result.stdout
    assert (
        f"error: {registry}: model 'gone': " in errors[0]
        and "gone.ply: mesh file not found" in errors[0]
    )
    assert errors[1] == f"error: {registry}: model 'both': give 'unit' or 'scale', not both"
    assert errors[2] == f"error: {registry}: models 'ok' and 'twin' share tf_name 'shared'"
    assert "model 'big' (unit m): diameter 173 m" in warnings[0]
    assert lines[-1] == f"gcf-models: {registry}: 3 model(s) loaded, 3 error(s), 1 warning(s)"


def test_check_passes_the_shipped_registry_and_strict_fails_on_warnings(tmp_path: Path):
    shipped = _run("check", str(ROOT / "config" / "models.yaml"))
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "8 model(s) loaded, 0 error(s), 0 warning(s)" in shipped.stdout
    _box(tmp_path / "mm.ply", 100.0)
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  big: {mesh: mm.ply, unit: m}\n")
    assert models_cli.main(["check", str(registry)]) == 0
    assert models_cli.main(["check", "--strict", str(registry)]) == 1
    (tmp_path / "bad.yaml").write_text("models: [1, 2]\n")
    assert models_cli.main(["check", str(tmp_path / "bad.yaml")]) == 1
    assert models_cli.main(["check", str(tmp_path / "absent.yaml")]) == 1


def test_show_prints_a_table(tmp_path: Path, capsys):
    assert models_cli.main(["show", str(ROOT / "config" / "models.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id", "file", "faces", "diameter", "unit", "up", "symmetry", "tf", "name", "colour",
    ]  # fmt: skip
    eggbox = next(line for line in lines if line.startswith("obj_000010")).split()
    assert eggbox[1:] == [
        "../data/models/lmo/obj_000010.ply", "36942", "0.165", "m", "mm", "+z", "discrete(1)",
        "eggbox", "vertex",
    ]  # fmt: skip
    assert len(lines) == 9
    result = _run("show", str(ROOT / "config" / "models.yaml"))
    assert result.returncode == 0 and result.stdout.splitlines() == lines


def test_check_show_and_add_follow_include(tmp_path: Path, capsys):
    _box(tmp_path / "mug.ply", 80.0)
    registry = tmp_path / "mine" / "models.yaml"
    shipped = ROOT / "config" / "models.yaml"
    argv = ["add", str(registry), "--id", "mug", "--mesh", str(tmp_path / "mug.ply"), "--unit"]
    assert models_cli.main([*argv, "mm", "--include", str(shipped)]) == 0
    doc = yaml.safe_load(registry.read_text())
    assert list(doc) == ["include", "models"] and list(doc["models"]) == ["mug"]
    assert (registry.parent / doc["include"][0]).resolve() == shipped.resolve()
    assert models_cli.main([*argv, "cm", "--include", str(shipped)]) == 0  # listed once
    assert yaml.safe_load(registry.read_text())["include"] == doc["include"]
    capsys.readouterr()
    assert models_cli.main(["show", str(registry)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[-1].split()[0] == "mug"
    result = _run("check", str(registry))
    assert result.returncode == 0 and "9 model(s) loaded, 0 error(s)" in result.stdout
    before = registry.read_text()
    other = tmp_path / "other.yaml"
    other.write_text("models:\n  mug: {mesh: mug.ply, unit: mm}\n")
    assert models_cli.main([*argv, "mm", "--include", str(other)]) == 1
    assert "'mug' is defined twice" in capsys.readouterr().err
    assert registry.read_text() == before  # refused before writing
    argv = ["add", str(registry), "--id", "obj_000001", "--mesh", str(tmp_path / "mug.ply")]
    assert models_cli.main([*argv, "--unit", "mm", "--tf-name", "ape"]) == 0
    result = _run("check", str(registry))
    assert result.returncode == 1
    assert f"error: {registry}: model 'obj_000001' is defined twice" in result.stdout
    assert f"error: {registry}: models 'obj_000001' and 'obj_000001' share tf_name 'ape'" in (
        result.stdout
    )


def test_snapshot_writes_the_registries_named(tmp_path: Path, capsys):
    registry = tmp_path / "models.yaml"
    _box(tmp_path / "box.ply", 80.0)
    registry.write_text("models:\n  box:\n    mesh: box.ply\n    unit: mm\n    tf_name: crate\n")
    bop = tmp_path / "mini_bop"
    (bop / "models").mkdir(parents=True)
    _box(bop / "models" / "obj_000003.ply", 50.0)
    out = tmp_path / "snap.npz"
    argv = ["snapshot", "--out", str(out), "--registry", str(registry), "--bop-root", str(bop)]
    assert models_cli.main(argv) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "mini_bop: 1 model(s) ['obj_000003']" in text
    box = ModelRegistry.load_snapshot(out, "default").get("box")
    assert box.tf_name == "crate" and box.diameter == pytest.approx(0.08 * np.sqrt(3))
    bop_model = ModelRegistry.load_snapshot(out, "mini_bop").get("obj_000003")
    assert bop_model.diameter == pytest.approx(0.05 * np.sqrt(3))
    argv = ["snapshot", "--out", str(out), "--registry", str(tmp_path / "none.yaml")]
    assert models_cli.main(argv) == 1
    assert "model registry file not found" in capsys.readouterr().err
