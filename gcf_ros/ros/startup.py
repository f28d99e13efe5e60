"""Start-up of the ``gcf_refiner`` node: parameter descriptors and checks whose failures are one
line naming what and why.

A bad model registry, mesh or weights file, a network backend or renderer that cannot start here,
or a command-line parameter of the wrong type raise :class:`StartupError`; ``main`` prints its
message (one line, no traceback) and exits with status 2. A CUDA device that this machine lacks
is not an error: the node falls back to the CPU with a warning (:func:`resolve_device`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from gcf_ros.core.models import ModelLoadError, ModelRegistry
from gcf_ros.gcf.checkpoints import resolve_checkpoint, shipped_hint
from gcf_ros.gcf.cuda_graph import warm_up
from gcf_ros.gcf.placement import Placement, build_refiner, check_device_present, place_predictor
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Refiner
from gcf_ros.ros.params import NodeParams

_ROS_TYPES = {
    bool: "a bool",
    int: "an integer",
    float: "a double",
    str: "a string",
}
_EXPECTED = {"str": str, "bool": bool, "int": int, "float": float}
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
NODE_WARM_BUCKETS = (1, 2, 4, 8)  # batches warmed up at start-up (larger ones on first use)


class StartupError(Exception):
    """The node cannot start; the message is one line naming the file or setting and the cause."""


def _one_line(text: str) -> str:
    """A multi-line message (a YAML parser's, with its caret line) joined into one."""
    lines = (line.strip() for line in text.splitlines())
    return " ".join(line for line in lines if line and line != "^")


def _brief(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 160 characters)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a file to read, or None when it looks readable."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "a directory, not a file"
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    return "empty file" if path.stat().st_size == 0 else None


def load_models(path: Path) -> ModelRegistry:
    """The model registry at ``path`` with every mesh loaded (errors now, no first-frame stall)."""
    problem = _file_problem(path)
    if problem:
        raise StartupError(f"models {path}: {problem}")
    try:
        registry = ModelRegistry.from_yaml(path)
    except ModelLoadError as err:  # names the file already
        raise StartupError(f"models: {_one_line(str(err))}") from None
    for model_id in registry.ids:
        mesh = Path(registry.spec(model_id).mesh_path)
        problem = _file_problem(mesh)
        if problem:
            raise StartupError(f"model {model_id!r} (in {path}): mesh {mesh}: {problem}")
        try:
            registry.render_model(model_id)
        except ModelLoadError as err:
            raise StartupError(f"model {model_id!r} (in {path}): {_one_line(str(err))}") from None
        except Exception as err:  # the mesh reader's own (open3d, trimesh): one line
            reason = f"unreadable mesh ({_brief(err)})"
            raise StartupError(f"model {model_id!r} (in {path}): mesh {mesh}: {reason}") from None
    return registry


def load_refiner(
    registry: ModelRegistry, checkpoint: str, placement: Placement, overrides: dict
) -> Refiner:
    """The refiner with the network of ``checkpoint`` ('' = the shipped weights), its renderer,
    solve and network placed by ``placement`` (``gcf_ros.gcf.placement``)."""
    path = resolve_checkpoint(checkpoint or None)  # a path or a shipped name (any folder)
    problem = _file_problem(path)
    if problem == "no such file":
        problem += f"; {shipped_hint()}"
    if problem is None:
        with path.open("rb") as f:
            head = f.read(4)
        if head != ZIP_MAGIC:
            problem = f"not a PyTorch weights file (a zip archive); it starts with {head!r}"
    if problem:
        raise StartupError(f"checkpoint {path}: {problem}")
    try:
        predictor = NetworkPredictor.from_weights(path, placement.network_device, "eager")
    except Exception as err:  # torch.load's, or the weights do not fit: one line
        raise StartupError(f"checkpoint {path}: {_brief(err)}") from None
    try:
        place_predictor(predictor, placement)
        # cuda_graph / compile: capture or compile the small batches now, not on the first frames
        warm_up(predictor.run, NODE_WARM_BUCKETS)
    except Exception as err:  # onnxruntime missing, a capture that fails: one line
        raise StartupError(f"network_backend {placement.network_backend}: {_brief(err)}") from None
    try:
        return build_refiner(registry, placement, overrides=overrides, predictor=predictor)
    except ImportError as err:  # the renderer's package (open3d, PyTorch3D) is missing
        raise StartupError(f"renderer {placement.renderer}: {_brief(err)}") from None


def resolve_device(device: str, warn: Callable[[str], None]) -> str:
    """``device`` (cpu, cuda, cuda:N), or cpu with a warning when that device is missing."""
    try:
        check_device_present(device)
    except ValueError as err:
        warn(f"{err}: falling back to cpu")
        return "cpu"
    return device


def check_cli_types(args: list[str]) -> None:
    """StartupError for a ``-p name:=value`` whose value does not have the parameter's type.

    rcl merges ``-p`` overrides with a ``--params-file`` (``main`` always passes the packaged one)
    and silently keeps the file's value when the types differ: ``-p iterations:=abc`` would be
    ignored. Values are parsed as rcl does (YAML: ``3`` an integer, ``3.0`` a double).
    """
    fields = {f.name: f for f in NodeParams.fields()}
    for k, arg in enumerate(args[:-1]):
        if arg not in ("-p", "--param") or ":=" not in args[k + 1]:
            continue
        name, _, text = args[k + 1].partition(":=")
        name = name.rpartition(":")[2]  # node-specific form: -p gcf_refiner:iterations:=8
        if name not in fields:
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        expected = _EXPECTED[str(fields[name].type).split(" | ")[0]]
        if type(value) not in _ROS_TYPES:  # '' or a YAML list/mapping: rcl's to judge
            continue
        if type(value) is not expected:
            got = _ROS_TYPES.get(type(value), type(value).__name__)
            hint = f" (write {value}.0)" if expected is float and type(value) is int else ""
            raise StartupError(
                f"parameter {name}: {text!r} is {got}, {_ROS_TYPES[expected]} is expected{hint}"
            )


def parameter_error_line(err: Exception) -> str:
    """rclpy's ParameterException as one line: its reason, without the parameter name repeated."""
    text = str(err).rsplit(": ", 1)[0]  # rclpy appends ": <names>"
    return text.split("Reason: ", 1)[-1]


def parameter_descriptor(f: dataclasses.Field) -> ParameterDescriptor:
    """The ROS descriptor of a NodeParams field: description, read-only, range, choices."""
    meta = f.metadata
    d = ParameterDescriptor(description=meta["description"], read_only=not meta["dynamic"])
    if meta["bounds"] is not None:
        lo, hi = meta["bounds"]
        if str(f.type).startswith("float"):
            d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=1)]
    if meta["choices"] is not None:
        d.additional_constraints = "one of: " + ", ".join(meta["choices"])
    return d


def other_nodes_named_alike(node: Node) -> int:
    """How many other nodes on the graph have ``node``'s fully-qualified name."""
    me = (node.get_name(), node.get_namespace())
    return sum(1 for n in node.get_node_names_and_namespaces() if tuple(n) == me) - 1
