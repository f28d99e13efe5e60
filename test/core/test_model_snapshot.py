"""Registry snapshots (gcf_ros.core.model_snapshot): written here (open3d), read anywhere, also in a
process where open3d does not import; and the modules of the refinement path import without it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcf_ros.core.model_snapshot import snapshot_names, write_snapshot
from gcf_ros.core.models import ModelLoadError, ModelRegistry, ObjectModel
from gcf_ros.resources import default_models_yaml

ROOT = Path(__file__).resolve().parents[2]
IDS = ("obj_000001", "obj_000011")  # the two smallest meshes; obj_000011 has a discrete symmetry
ARRAYS = ("verts_obj", "faces", "vert_colors", "vert_normals_obj", "bbox_min", "bbox_max",
          "up_axis")  # fmt: skip
FIELDS = ("model_id", "diameter", "symmetric", "tf_name", "source_path", "color_source")
NO_OPEN3D_MODULES = (
    "gcf_ros.core.models", "gcf_ros.gcf.refiner", "gcf_ros.gcf.placement", "gcf_ros.eval.harness",
    "gcf_ros.eval.models_input", "gcf_ros.core.bop", "gcf_ros.bench.frame", "gcf_ros.bench.cases",
    "gcf_ros.train.synth", "gcf_ros.train.synth_cli",
)  # fmt: skip


@pytest.fixture(scope="module")
def original() -> ModelRegistry:
    """The packaged registry, obj_000001's render mesh decimated (render model != full model)."""
    base = ModelRegistry.from_yaml(default_models_yaml())
    specs = {i: base.spec(i) for i in base.ids}
    specs["obj_000001"] = dataclasses.replace(specs["obj_000001"], face_budget=2000)
    return ModelRegistry(specs)


@pytest.fixture(scope="module")
def snapshot(original: ModelRegistry, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "models.snap"
    assert original.save_snapshot(path, IDS) == path  # no suffix added
    return path


def _digest(model: ObjectModel) -> dict:
    """Everything an ObjectModel holds, arrays by dtype, shape and content hash."""
    out = {n: [a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest()]
           for n in ARRAYS for a in [getattr(model, n)]}  # fmt: skip
    out.update({n: str(getattr(model, n)) for n in FIELDS})
    sym = model.symmetry
    out["symmetry"] = [sym.kind, sym.transforms.tobytes().hex(), sym.offset.tobytes().hex(),
                       None if sym.axis is None else sym.axis.tobytes().hex()]  # fmt: skip
    return json.loads(json.dumps(out))


def _registry_digest(registry: ModelRegistry) -> dict:
    return {
        i: {"spec": repr(registry.spec(i)), "full": _digest(registry.get(i)),
            "render": _digest(registry.render_model(i)),
            "render_is_full": registry.render_model(i) is registry.get(i)}
        for i in registry.ids
    }  # fmt: skip


def test_a_snapshot_serves_the_same_models(original: ModelRegistry, snapshot: Path):
    loaded = ModelRegistry.load_snapshot(snapshot)
    assert loaded.ids == IDS and len(loaded) == 2 and list(loaded) == list(IDS)
    assert "obj_000001" in loaded and "obj_000005" not in loaded
    for model_id in IDS:
        assert loaded.spec(model_id) == original.spec(model_id)
        for get in ("get", "render_model"):
            a, b = getattr(original, get)(model_id), getattr(loaded, get)(model_id)
            for name in ARRAYS:
                x, y = getattr(a, name), getattr(b, name)
                assert x.dtype == y.dtype and np.array_equal(x, y), (model_id, get, name)
                assert not y.flags.writeable
            assert a.symmetry == b.symmetry and a.symmetry.symmetric == b.symmetric
            assert all(getattr(a, n) == getattr(b, n) for n in FIELDS)
    assert loaded.render_model("obj_000001").num_faces <= 2000 < loaded.get("obj_000001").num_faces
    assert loaded.render_model("obj_000011") is loaded.get("obj_000011")
    assert loaded.get("obj_000011").symmetry.kind == "discrete"
    assert _registry_digest(loaded) == {
        i: d for i, d in _registry_digest(original).items() if i in IDS
    }
    with pytest.raises(KeyError, match="known ids"):
        loaded.get("obj_000005")


def test_several_registries_in_one_file(original: ModelRegistry, tmp_path: Path):
    other = ModelRegistry({"obj_000011": original.spec("obj_000011")})
    path = write_snapshot(tmp_path / "two.npz", {"default": original, "lmo": other}, ["obj_000011"])
    assert snapshot_names(path) == ("default", "lmo")
    assert ModelRegistry.load_snapshot(path, "lmo").ids == ("obj_000011",)
    with pytest.raises(ModelLoadError, match=r"holds registries \['default', 'lmo'\]: name one"):
        ModelRegistry.load_snapshot(path)
    with pytest.raises(ModelLoadError, match="no registry 'nope'"):
        ModelRegistry.load_snapshot(path, "nope")
    one = write_snapshot(tmp_path / "one.npz", {"default": original}, ["obj_000011"])
    assert path.stat().st_size < 1.2 * one.stat().st_size  # identical arrays are stored once


def test_not_a_snapshot(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="snapshot file not found"):
        ModelRegistry.load_snapshot(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a model snapshot"):
        ModelRegistry.load_snapshot(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ModelLoadError, match="not a model snapshot"):
        ModelRegistry.load_snapshot(tmp_path / "other.npz")


CHILD = """
import importlib, importlib.util, json, sys
sys.modules["open3d"] = None  # import open3d raises ModuleNotFoundError from here on
out = {"imported": []}
for name in sys.argv[2].split(","):
    importlib.import_module(name)
    out["imported"].append(name)
spec = importlib.util.spec_from_file_location("snapshot_test", sys.argv[3])
this_test = importlib.util.module_from_spec(spec)
spec.loader.exec_module(this_test)
from gcf_ros.core.models import ModelRegistry
from gcf_ros.gcf.refiner import Refiner, RefinerConfig
from gcf_ros.resources import default_models_yaml

registry = ModelRegistry.load_snapshot(sys.argv[1])
out["digest"] = this_test._registry_digest(registry)
config = RefinerConfig.resolve(None, terms=("region",))
Refiner(registry, None, config, renderer=object())  # a renderer given: no open3d needed
errors = {}
for what, call in {
    "mesh": lambda: ModelRegistry.from_yaml(default_models_yaml()).get("obj_000001"),
    "default_renderer": lambda: Refiner(registry, None, config),
    "simplify": lambda: registry.get("obj_000011").simplified(100),
}.items():
    try:
        call()
        errors[what] = None
    except ImportError as err:
        errors[what] = str(err)
out["errors"] = errors
print(json.dumps(out))
"""


def test_without_open3d(original: ModelRegistry, snapshot: Path):
    """A process where open3d does not import: the refinement path imports, the snapshot serves
    the same models, and what needs open3d says so."""
    cmd = [sys.executable, "-c", CHILD, str(snapshot), ",".join(NO_OPEN3D_MODULES), __file__]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["imported"] == list(NO_OPEN3D_MODULES)
    expected = {i: d for i, d in _registry_digest(original).items() if i in IDS}
    assert out["digest"] == expected
    errors = out["errors"]
    assert errors["mesh"].startswith("loading mesh files needs open3d")
    assert "ModelRegistry.load_snapshot" in errors["mesh"]
    assert "ray casting (RaycastRenderer" in errors["default_renderer"]
    assert "renderer" in errors["default_renderer"].split("needs open3d")[1]
    assert "simplifying model 'obj_000011'" in errors["simplify"]
