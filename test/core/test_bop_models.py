"""BOP models folders as registries: ids, unit, symmetries (gcf_ros.core.bop_models)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from gcf_ros.core.bop_models import LMO_OBJ_IDS, bop_model_registry, bop_symmetries


def _lmo_models_copy(lmo_root: Path, dst: Path, info: dict | None) -> Path:
    """LM-O's meshes (symlinked) with ``info`` as models_info.json (None: no such file)."""
    dst.mkdir()
    for mesh in (lmo_root / "models").glob("obj_*.ply"):
        (dst / mesh.name).symlink_to(mesh)
    if info is not None:
        (dst / "models_info.json").write_text(json.dumps(info))
    return dst


def test_lmo_eggbox_and_glue_have_their_models_info_symmetries(lmo_root: Path):
    """LM-O's models_info.json gives obj 10 and 11 one discrete symmetry each (a half turn about
    the model's z axis, translations of < 1 mm): read in metres, not the LM-O fallback."""
    sym = bop_symmetries(lmo_root / "models", 0.001)
    assert tuple(sym) == LMO_OBJ_IDS
    assert {k for k, s in sym.items() if s.symmetric} == {10, 11}
    for obj_id in (10, 11):
        assert sym[obj_id].kind == "discrete" and sym[obj_id].transforms.shape == (1, 4, 4)
        R, t = sym[obj_id].transforms[0, :3, :3], sym[obj_id].transforms[0, :3, 3]
        assert np.degrees(np.arccos((np.trace(R) - 1) / 2)) > 178.0
        assert np.abs(t).max() < 1e-3  # metres (the file has < 1 mm)
    registry = bop_model_registry(lmo_root / "models", 0.001)
    assert registry.spec("obj_000010").symmetry.kind == "discrete"
    assert not registry.spec("obj_000001").symmetric


def test_lmo_without_symmetries_falls_back_to_eggbox_and_glue(
    lmo_root: Path, tmp_path: Path, caplog
):
    """An LM-O models folder whose models_info.json has no symmetry keys, or none at all: obj 10
    and 11 are symmetric with unknown transforms (ADD-S), with a warning; the others are not."""
    raw = json.loads((lmo_root / "models/models_info.json").read_text())
    stripped = {k: {f: v for f, v in e.items() if not f.startswith("symm")} for k, e in raw.items()}
    for name, info in (("stripped", stripped), ("no_info", None)):
        folder = _lmo_models_copy(lmo_root, tmp_path / name, info)
        with caplog.at_level(logging.WARNING, logger="gcf_ros.core.bop_models"):
            sym = bop_symmetries(folder, 0.001)
        assert {k: s.kind for k, s in sym.items() if s.symmetric} == {
            10: "unspecified",
            11: "unspecified",
        }
        assert "eggbox, glue" in caplog.text
        caplog.clear()
    # Not LM-O's objects: no fallback
    del stripped["12"]
    assert not any(s.symmetric for s in bop_symmetries(
        _lmo_models_copy(lmo_root, tmp_path / "seven", stripped), 0.001).values())  # fmt: skip


def test_tiny_symmetries_and_units(tiny_bop: Path, tiny_bop_mm: Path):
    for root, unit_to_m in ((tiny_bop, 1.0), (tiny_bop_mm, 0.001)):
        sym = bop_symmetries(root / "models" / "models_info.json", unit_to_m)
        assert sym[1].kind == "discrete" and len(sym[1].transforms) == 3
        assert sym[2].kind == "continuous" and len(sym[2].transforms) == 1
        np.testing.assert_allclose(sym[2].axis, (0.0, 0.0, 1.0))


def test_folder_without_models_info_lists_its_meshes(tiny_bop: Path, tmp_path: Path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_bop / "models", folder)
    (folder / "models_info.json").unlink()
    registry = bop_model_registry(folder, 1.0, model_id=lambda i: f"m{i}")
    assert registry.ids == ("m1", "m2")
    assert not any(registry.spec(i).symmetric for i in registry.ids)
    for mesh in folder.glob("*.ply"):
        mesh.unlink()
    with pytest.raises(FileNotFoundError, match=r"no models_info\.json and no obj_NNNNNN\.ply"):
        bop_model_registry(folder, 1.0)


def test_errors_name_the_file(tiny_bop: Path, tmp_path: Path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_bop / "models", folder)
    (folder / "obj_000002.ply").unlink()
    with pytest.raises(FileNotFoundError, match=r"obj_000002\.ply: model file not found"):
        bop_model_registry(folder, 1.0)
    with pytest.raises(ValueError, match="two objects map to the registry id 'same'"):
        bop_model_registry(tiny_bop / "models", 1.0, model_id=lambda i: "same")
    with pytest.raises(FileNotFoundError, match=r"nothing\.json: models_info file not found"):
        bop_model_registry(tmp_path / "nothing.json", 1.0)
    info = json.loads((folder / "models_info.json").read_text())
    info["1"]["symmetries_discrete"] = [[2.0] * 16]
    (folder / "models_info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"models_info\.json: object 1: symmetries_discrete\[0\]"):
        bop_symmetries(folder, 1.0)
