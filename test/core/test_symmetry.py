"""Symmetry: BOP and registry forms, the sampled poses, and every malformed input's message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gcf_ros.core.symmetry import Symmetry, SymmetryError

LMO_INFO = Path(__file__).resolve().parents[2] / "data" / "models" / "lmo" / "models_info.json"
FLIP_Z = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # 180° about z, row-major


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    T = np.eye(4)
    T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    return T


def _contains(poses: np.ndarray, T: np.ndarray, tol: float = 1e-9) -> bool:
    return bool((np.abs(poses - T).reshape(len(poses), -1).max(axis=1) <= tol).any())


def test_none_and_unspecified_have_only_the_identity():
    for sym, symmetric in ((Symmetry(), False), (Symmetry.unspecified(), True)):
        assert sym.symmetric is symmetric
        np.testing.assert_array_equal(sym.poses(), np.eye(4)[None])
    assert Symmetry.from_flag(True).kind == "unspecified"
    assert Symmetry.from_flag(False).kind == "none"


def test_from_bop_discrete_scales_translations_to_metres():
    T = np.reshape(FLIP_Z, (4, 4)).astype(float)
    T[:3, 3] = (0.0, 0.0, 12.0)  # mm
    sym = Symmetry.from_bop(
        {"diameter": 100.0, "symmetries_discrete": [T.reshape(-1).tolist()]}, 1e-3
    )
    assert sym.kind == "discrete" and sym.symmetric
    np.testing.assert_allclose(sym.transforms[0][:3, 3], (0.0, 0.0, 0.012))
    poses = sym.poses()
    assert len(poses) == 2
    np.testing.assert_array_equal(poses[0], np.eye(4))
    assert not sym.transforms.flags.writeable


def test_from_bop_reads_the_shipped_lmo_entries():
    info = {int(k): v for k, v in json.loads(LMO_INFO.read_text()).items()}
    for obj_id, entry in info.items():
        sym = Symmetry.from_bop(entry, 1e-3, where=f"{LMO_INFO}: {obj_id}")
        has = bool(entry.get("symmetries_discrete") or entry.get("symmetries_continuous"))
        assert sym.symmetric is has
        for T in sym.poses():  # rigid after projection
            np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)


def test_continuous_poses_rotate_about_the_axis_through_the_offset():
    sym = Symmetry.from_bop(
        {"symmetries_continuous": [{"axis": [0, 0, 2], "offset": [10, 0, 0]}]}, 1e-3
    )
    assert sym.kind == "continuous"
    np.testing.assert_allclose(sym.axis, (0, 0, 1))
    poses = sym.poses(4)
    assert len(poses) == 4
    np.testing.assert_array_equal(poses[0], np.eye(4))
    # Every pose keeps the axis points fixed: (0.01, 0, z) maps to itself.
    point = np.array([0.01, 0.0, 0.3, 1.0])
    np.testing.assert_allclose(poses @ point, np.tile(point, (4, 1)), atol=1e-12)
    assert _contains(
        poses, np.array([[0, -1, 0, 0.01], [1, 0, 0, -0.01], [0, 0, 1, 0], [0, 0, 0, 1]])
    )
    assert sym.describe() == "continuous z through [0.01, 0.0, 0.0] m"


def test_continuous_combined_with_discrete_gives_every_product():
    flip_x = [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1]
    sym = Symmetry.from_bop(
        {
            "symmetries_discrete": [flip_x],
            "symmetries_continuous": [{"axis": [0, 0, 1], "offset": [0, 0, 0]}],
        },
        1e-3,
    )
    poses = sym.poses(6)
    assert len(poses) == 12
    for k in range(6):
        assert _contains(poses, _rot_z(60 * k))
        assert _contains(poses, _rot_z(60 * k) @ np.reshape(flip_x, (4, 4)))
    assert sym.describe() == "continuous z + discrete(1)"


def test_identity_in_the_input_is_not_repeated():
    sym = Symmetry.from_yaml(
        {"discrete": [np.eye(4).tolist(), FLIP_Z]}, "m.yaml: model 'a': symmetry"
    )
    assert len(sym.poses()) == 2


def test_from_yaml_forms_and_units():
    where = "m.yaml: model 'mug': symmetry"
    assert Symmetry.from_yaml(None, where).kind == "none"
    assert Symmetry.from_yaml("none", where).kind == "none"
    assert Symmetry.from_yaml(False, where).kind == "none"
    assert Symmetry.from_yaml(True, where).kind == "unspecified"
    assert Symmetry.from_yaml("unspecified", where).kind == "unspecified"
    nested = np.reshape(FLIP_Z, (4, 4)).astype(float)
    nested[2, 3] = 5.0
    # Translations: in the given unit, else in the registry's default (the mesh's unit).
    in_cm = Symmetry.from_yaml({"discrete": [nested.tolist()], "unit": "cm"}, where, 1e-3)
    default = Symmetry.from_yaml({"discrete": [nested.reshape(-1).tolist()]}, where, 1e-3)
    assert in_cm.transforms[0, 2, 3] == pytest.approx(0.05)
    assert default.transforms[0, 2, 3] == pytest.approx(0.005)
    cont = Symmetry.from_yaml({"continuous": {"axis": [0, 1, 0]}}, where)
    np.testing.assert_array_equal(cont.offset, np.zeros(3))
    assert cont.describe() == "continuous y"


def test_to_yaml_round_trips():
    where = "x"
    for sym in (
        Symmetry(),
        Symmetry.unspecified(),
        Symmetry.from_yaml({"discrete": [FLIP_Z]}, where),
        Symmetry.from_yaml(
            {
                "continuous": {"axis": [1, 1, 0], "offset": [1, 2, 3]},
                "discrete": [FLIP_Z],
                "unit": "mm",
            },
            where,
        ),
    ):
        back = Symmetry.from_yaml(sym.to_yaml(), where)
        assert back.kind == sym.kind
        np.testing.assert_allclose(back.poses(8), sym.poses(8), atol=1e-12)


def test_near_rigid_transforms_are_projected_onto_rotations():
    T = np.reshape(FLIP_Z, (4, 4)).astype(float)
    T[0, 1] = 5e-4  # BOP files keep a few digits
    sym = Symmetry.from_yaml({"discrete": [T.tolist()]}, "x")
    R = sym.transforms[0, :3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


WHERE = "models.yaml: model 'mug': symmetry"
BAD_YAML = [
    (42, "expected none, unspecified, true/false or a mapping"),
    ("round", "expected none, unspecified"),
    ({"axis": [0, 0, 1]}, "unknown key(s) ['axis']"),
    ({"unit": "mm"}, "give 'discrete' and/or 'continuous'"),
    ({"discrete": [FLIP_Z], "unit": "inch"}, "symmetry.unit: must be one of ['mm', 'cm', 'm']"),
    ({"discrete": FLIP_Z}, "symmetry.discrete[0]: expected 16 numbers"),
    ({"discrete": "flip"}, "symmetry.discrete: expected a list of 4 x 4 transforms"),
    ({"discrete": [[1, 2, 3]]}, "symmetry.discrete[0]: expected 16 numbers (row-major) or 4 rows"),
    ({"discrete": [[0, 0, 0, 0] * 4]}, "symmetry.discrete[0]: not a rigid transform: last row"),
    ({"discrete": [[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]}, "not orthonormal"),
    (
        {"discrete": [[1, 0.1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]},
        "shear are not symmetries",
    ),
    (
        {"discrete": [[-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]},
        "symmetry.discrete[0]: not a rigid transform: rotation part has det -1 (a reflection)",
    ),
    ({"discrete": [[float("nan")] * 16]}, "symmetry.discrete[0]: values must be finite"),
    ({"continuous": {"axis": [0, 0, 0]}}, "symmetry.continuous.axis: must be non-zero"),
    ({"continuous": {"axis": [0, 1]}}, "symmetry.continuous.axis: expected 3 numbers"),
    ({"continuous": {"axis": [0, 0, 1], "offset": "o"}}, "symmetry.continuous.offset: expected 3"),
    (
        {"continuous": {"axis": [0, 0, 1], "angle": 3}},
        "symmetry.continuous: unknown key(s) ['angle']",
    ),
    ({"continuous": [0, 0, 1]}, "symmetry.continuous: expected a mapping with 'axis'"),
]


@pytest.mark.parametrize(("value", "message"), BAD_YAML)
def test_from_yaml_errors_name_the_file_model_and_field(value, message):
    with pytest.raises(SymmetryError) as err:
        Symmetry.from_yaml(value, WHERE)
    assert str(err.value).startswith(WHERE)
    assert message in str(err.value)


def test_from_bop_errors_name_the_entry():
    where = "lmo/models_info.json: 10"
    with pytest.raises(SymmetryError, match=r"10: symmetries_discrete\[1\]: not a rigid"):
        Symmetry.from_bop({"symmetries_discrete": [FLIP_Z, [3] * 16]}, 1e-3, where=where)
    two = [{"axis": [0, 0, 1], "offset": [0, 0, 0]}] * 2
    with pytest.raises(
        SymmetryError, match="10: symmetries_continuous: expected a list of at most"
    ):
        Symmetry.from_bop({"symmetries_continuous": two}, 1e-3, where=where)
    zero = [{"axis": [0, 0, 0], "offset": [0, 0, 0]}]
    with pytest.raises(SymmetryError, match=r"symmetries_continuous\[0\].axis: must be non-zero"):
        Symmetry.from_bop({"symmetries_continuous": zero}, 1e-3, where=where)
    with pytest.raises(SymmetryError, match="unit_to_m must be finite and > 0"):
        Symmetry.from_bop({}, 0.0, where=where)


def test_constructor_checks():
    with pytest.raises(SymmetryError, match="kind must be one of"):
        Symmetry(kind="cyclic")
    with pytest.raises(SymmetryError, match="an axis is given iff kind is 'continuous'"):
        Symmetry(kind="continuous")
    with pytest.raises(SymmetryError, match="needs at least one transform"):
        Symmetry(kind="discrete")
    with pytest.raises(SymmetryError, match="kind 'none' takes no transforms"):
        Symmetry(transforms=np.eye(4)[None])
    with pytest.raises(SymmetryError, match=r"transforms\[0\]: not a rigid transform"):
        Symmetry(kind="discrete", transforms=2 * np.eye(4)[None])
    with pytest.raises(SymmetryError, match="axis must be non-zero"):
        Symmetry(kind="continuous", axis=np.zeros(3))
    with pytest.raises(ValueError, match="n_continuous must be a positive integer"):
        Symmetry().poses(0)
