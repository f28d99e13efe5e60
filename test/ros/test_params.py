"""The node's parameters are validated (types, ranges, choices) and its start-up errors are one line
naming the file or setting and the cause (gcf_ros.ros.params, gcf_ros.ros.startup)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from gcf_ros.core.models import ModelRegistry
from gcf_ros.gcf.placement import Placement
from gcf_ros.ros.params import NodeParams
from gcf_ros.ros.startup import (
    StartupError,
    check_cli_types,
    load_models,
    load_refiner,
    parameter_descriptor,
    parameter_error_line,
)

FIELDS = {f.name: f for f in NodeParams.fields()}


def test_every_parameter_has_a_range_or_a_choice_list_and_the_defaults_pass():
    NodeParams()
    for f in FIELDS.values():
        kind = str(f.type).split(" | ")[0]
        if kind in ("int", "float"):
            lo, hi = f.metadata["bounds"]
            assert lo < hi and type(lo) is type(hi) is (float if kind == "float" else int), f.name
    assert FIELDS["solver"].metadata["choices"] == ("gauss_newton", "gradient")
    assert FIELDS["detections_type"].metadata["choices"] == ("gcf", "vision_msgs")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("diagnostics_period", 0.0, r"diagnostics_period must be in \[0.05, 3600.0\], got 0.0"),
        ("min_confidence", 5.0, r"min_confidence must be in \[0.0, 1.0\]"),
        ("min_confidence", -0.1, r"min_confidence must be in"),
        ("min_confidence", math.nan, "min_confidence must be a finite number"),
        ("max_latency", 0.0, "max_latency must be in"),
        ("max_latency", math.inf, "max_latency must be a finite number"),
        ("sync_slop", -0.01, "sync_slop must be in"),
        ("track_timeout", 0.0, "track_timeout must be in"),
        ("iterations", "abc", "iterations must be an integer, got 'abc'"),
        ("iterations", 3.0, "iterations must be an integer"),
        ("iterations", True, "iterations must be an integer"),
        ("iterations", 0, r"iterations must be in \[1, 1000\]"),
        ("window_size", 8, "window_size must be in"),
        ("threads", -1, "threads must be in"),
        ("work_queue_size", 0, "work_queue_size must be in"),
        ("image_buffer_size", 0, "image_buffer_size must be in"),
        ("tracking", 1, "tracking must be true or false"),
        ("tracking_iterations", 0, r"tracking_iterations must be in \[1, 1000\], got 0"),
        ("tracking_iterations", 1001, r"tracking_iterations must be in \[1, 1000\]"),
        ("tracking_iterations", 2.0, "tracking_iterations must be an integer"),
        ("models", 3, "models must be a string"),
        ("device", "foo", "device must be cpu, cuda or cuda:N"),
        ("device", "cuda:x", "device must be cpu, cuda or cuda:N"),
        ("device", "CPU", "device must be cpu, cuda or cuda:N"),
        ("solver", "newton", "solver must be one of gauss_newton, gradient"),
        ("renderer", "opengl", "renderer must be one of auto, raycast, pytorch3d, torch; got"),
        ("renderer", "", "renderer must be one of auto, raycast"),
        ("network_backend", "tensorrt", "network_backend must be one of auto, eager, fused"),
        ("network_backend", "cuda_graph", "network_backend cuda_graph needs device cuda"),
        ("device", "gpu", "device must be cpu, cuda or cuda:N"),
        ("detections_type", "yolo", "detections_type must be one of gcf, vision_msgs"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(name, value, message):
    with pytest.raises(ValueError, match=message):
        NodeParams(**{name: value})


def test_good_values_pass():
    for device in ("cpu", "cuda", "cuda:0", "cuda:12"):
        assert NodeParams(device=device).device == device
    # a GPU's options pass on any machine: a missing device falls back to the CPU at start-up
    NodeParams(device="cuda:3", renderer="pytorch3d", network_backend="compile")
    NodeParams(device="cuda", renderer="raycast", network_backend="fused")
    p = NodeParams(min_confidence=0.0, sync_slop=0, max_latency=0.25, window_size=None)
    assert (p.min_confidence, p.sync_slop, p.max_latency) == (0.0, 0, 0.25)
    NodeParams(min_confidence=1.0, iterations=1000, diagnostics_period=0.05, threads=0)


def test_device_and_renderer_place_the_refiner():
    """device, renderer and network_backend go through Placement.from_options: the defaults are
    the CPU path as before (ray casting, fused), a CUDA device that fell back to the CPU too;
    impossible combinations are refused naming the options."""
    assert NodeParams().placement("cpu") == Placement()
    assert NodeParams(device="cuda").placement("cpu") == Placement()  # the node's fallback
    torch_cpu = NodeParams(renderer="torch").placement("cpu")
    assert (torch_cpu.renderer, torch_cpu.render_device, torch_cpu.network_backend) == (
        "torch", "cpu", "fused",
    )  # fmt: skip
    gpu = NodeParams(device="cuda:1").placement("cuda:1", check_device=False)
    assert gpu == Placement.gpu("cuda:1")  # torch rasterizer, solve and CUDA-graph network there
    with pytest.raises(ValueError, match="network_backend onnxruntime runs on the CPU only"):
        NodeParams(device="cuda", network_backend="onnxruntime")
    with pytest.raises(ValueError, match="network_backend cuda_graph needs device cuda"):
        NodeParams(device="cuda", network_backend="cuda_graph").placement("cpu")  # fell back
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            NodeParams(device="cuda").placement("cuda")


def test_descriptors_carry_the_ranges_and_choices():
    iterations = parameter_descriptor(FIELDS["iterations"])
    (ints,) = iterations.integer_range
    assert (ints.from_value, ints.to_value) == (1, 1000)
    assert not iterations.read_only and not iterations.floating_point_range
    (floats,) = parameter_descriptor(FIELDS["min_confidence"]).floating_point_range
    assert (floats.from_value, floats.to_value, floats.step) == (0.0, 1.0, 0.0)
    solver = parameter_descriptor(FIELDS["solver"])
    assert solver.read_only and solver.additional_constraints == "one of: gauss_newton, gradient"
    assert isinstance(parameter_descriptor(FIELDS["models"]), ParameterDescriptor)


def test_rclpy_errors_become_one_line():
    err = InvalidParameterTypeException(Parameter("iterations", value="abc"), "INTEGER")
    assert parameter_error_line(err) == (
        "Trying to set parameter 'iterations' to 'abc' of type 'STRING', expecting type 'INTEGER'"
    )
    err = InvalidParameterValueException("iterations", 0, "Parameter iterations out of range")
    assert parameter_error_line(err) == "Parameter iterations out of range"


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("iterations:=abc", "parameter iterations: 'abc' is a string, an integer is expected"),
        ("iterations:=3.0", "'3.0' is a double, an integer is expected"),
        ("sync_slop:=1", r"'1' is an integer, a double is expected \(write 1.0\)"),
        ("tracking:=1", "'1' is an integer, a bool is expected"),
        ("gcf_refiner:iterations:=abc", "parameter iterations: 'abc' is a string"),
        ("models:=3", "parameter models: '3' is an integer, a string is expected"),
    ],
)
def test_command_line_values_of_the_wrong_type_are_refused(arg, message):
    """rcl would silently keep the packaged file's value for these (-p merged with it)."""
    with pytest.raises(StartupError, match=message):
        check_cli_types(["gcf-refiner", "--ros-args", "-p", "sync_slop:=0.5", "-p", arg])


def test_command_line_values_of_the_right_type_pass():
    args = ["-p", "iterations:=3", "--param", "min_confidence:=0.1", "-p", "tracking:=true",
            "-p", "models:=/x.yaml", "-p", "terms:=", "-p", "other:=abc", "-r", "a:=b"]  # fmt: skip
    check_cli_types(["gcf-refiner", "--ros-args", *args])


@pytest.fixture
def bad_files(tmp_path):
    """A text file, an empty file, a PNG, a directory and a zip that is not GCF weights."""
    (tmp_path / "text.pt").write_text("hello\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    PILImage.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "image.png")
    (tmp_path / "folder.pt").mkdir()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("text.pt", r"not a PyTorch weights file \(a zip archive\); it starts with b'hell'"),
        ("empty.pt", "empty file"),
        ("image.png", r"not a PyTorch weights file \(a zip archive\); it starts with b'\\x89PNG'"),
        ("folder.pt", "a directory, not a file"),
        ("missing.pt", "no such file"),
        ("other.pt", "is not a GCF weights file: expected keys"),
    ],
)
def test_a_bad_checkpoint_is_one_line_with_the_path_and_the_reason(bad_files, name, reason):
    path = bad_files / name
    with pytest.raises(StartupError, match=reason) as info:
        load_refiner(None, str(path), Placement(), {})
    message = str(info.value)
    assert message.startswith(f"checkpoint {path}: ") and "\n" not in message


def test_a_shipped_checkpoint_name_loads_from_any_folder(tmp_path, monkeypatch):
    """``checkpoint:=gcf_lmo_s64.pt`` resolves to the shipped file whatever the current folder;
    a name that is not shipped lists the shipped ones."""
    monkeypatch.chdir(tmp_path)
    assert load_refiner(None, "gcf_lmo_s64.pt", Placement(), {}).predictor.window_size == 64
    with pytest.raises(StartupError, match=r"gcf_lmo_s65\.pt: no such file; shipped weights") as e:
        load_refiner(None, "gcf_lmo_s65.pt", Placement(), {})
    assert "gcf_lmo.pt, gcf_lmo_s64.pt" in str(e.value) and "\n" not in str(e.value)


def test_a_renderer_that_cannot_import_is_one_line(monkeypatch):
    """renderer:=pytorch3d without a PyTorch3D build: a start-up error naming the renderer."""
    monkeypatch.setitem(sys.modules, "gcf_ros.core.render.pytorch3d_backend", None)
    with pytest.raises(StartupError, match=r"^renderer pytorch3d: ModuleNotFoundError: ") as info:
        load_refiner(None, "gcf_lmo_s64.pt", Placement(renderer="pytorch3d"), {})
    assert "\n" not in str(info.value)


def test_a_bad_model_registry_or_mesh_is_one_line(tmp_path):
    mesh = tmp_path / "bad.obj"
    mesh.write_text("hello\n")
    cases = {
        "missing.yaml": (None, "models .*missing.yaml: no such file"),
        "nomesh.yaml": (f"models:\n  obj_x:\n    mesh: {tmp_path}/none.ply\n    unit: m\n",
                        r"model 'obj_x' \(in .*nomesh.yaml\): mesh .*none.ply: no such file"),
        "badmesh.yaml": (f"models:\n  obj_x:\n    mesh: {mesh}\n    unit: m\n",
                         r"model 'obj_x' \(in .*badmesh.yaml\): .*bad.obj"),
        "notyaml.yaml": ("models: [\n", "models: .*notyaml.yaml: invalid YAML"),
    }  # fmt: skip
    for name, (text, message) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(StartupError, match=message) as info:
            load_models(tmp_path / name)
        assert "\n" not in str(info.value), name


def test_the_packaged_models_load(registry):
    from gcf_ros.resources import default_models_yaml

    loaded = load_models(default_models_yaml())
    assert isinstance(loaded, ModelRegistry) and loaded.ids == registry.ids


def test_the_process_prints_one_line_and_exits_2(bad_files):
    """The real entry point, three bad starts side by side: a wrong type on the command line
    (before anything loads), an unknown renderer (the parameters' checks) and a PNG as checkpoint
    (after the meshes)."""
    cmd = [sys.executable, "-m", "gcf_ros.ros.refiner_node", "--ros-args", "-p"]
    runs = {
        "type": subprocess.Popen([*cmd, "iterations:=abc"], stderr=subprocess.PIPE, text=True),
        "renderer": subprocess.Popen([*cmd, "renderer:=opengl"], stderr=subprocess.PIPE, text=True),
        "png": subprocess.Popen(
            [*cmd, f"checkpoint:={bad_files / 'image.png'}"], stderr=subprocess.PIPE, text=True
        ),
    }
    out = {k: p.communicate(timeout=120) for k, p in runs.items()}
    assert {k: p.returncode for k, p in runs.items()} == {"type": 2, "renderer": 2, "png": 2}
    assert out["type"][1] == (
        "gcf_refiner: parameter iterations: 'abc' is a string, an integer is expected\n"
    )
    assert out["renderer"][1] == (
        "gcf_refiner: renderer must be one of auto, raycast, pytorch3d, torch; got 'opengl'\n"
    )
    lines = out["png"][1].splitlines()
    png = bad_files / "image.png"
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"gcf_refiner: checkpoint {png}: not a PyTorch weights file")
