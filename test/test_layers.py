"""The layers of gcf_ros point one way, and ROS stays inside gcf_ros/ros.

``LAYERS`` ranks each part of the package; a module imports gcf_ros modules of its own rank or
below, lazy (function-level) imports included. Outside gcf_ros/ros no source file imports rclpy or
a ROS message package (an AST scan), and every module there imports with them blocked (at run time,
so no module-level path into gcf_ros.ros either).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gcf_ros

PACKAGE = Path(gcf_ros.__file__).parent
LAYERS = {
    "": 0,  # gcf_ros/__init__.py
    "resources": 0,  # where the packaged files live
    "core": 0,
    "gcf": 1,
    "baselines": 1,
    "eval": 2,
    "train": 2,
    "pipeline": 2,  # the ROS-free frame pipeline that the node, the demo and the bench drive
    # entry points: the node and its demo, gcf-render, gcf-bench (which also times the node)
    "ros": 3,
    "tools": 3,
    "bench": 3,
}
ROS = ("rclpy", "rosidl", "rmw", "std_msgs", "sensor_msgs", "geometry_msgs", "tf2_msgs",
       "vision_msgs", "visualization_msgs", "diagnostic_msgs", "gcf_ros_msgs",
       "builtin_interfaces", "cv_bridge", "tf2_ros", "message_filters", "launch_ros")  # fmt: skip
# (ament_index_python is not ROS at run time: resources.py tries it last, inside a try)


def _part(module: str) -> str:
    """ "gcf_ros.core.camera" -> "core", "gcf_ros.resources" -> "resources", "gcf_ros" -> ""."""
    return module.split(".")[1] if "." in module else ""


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file, at any depth; a name imported from
    the top package counts as that submodule when one exists."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import, use gcf_ros.<...>"
            if node.module == root.name:
                for alias in node.names:
                    sub = root / alias.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    name = f"{root.name}.{alias.name}" if is_module else root.name
                    found.append((node.lineno, name))
            else:
                found.append((node.lineno, node.module))
    return found


def _modules(root: Path) -> list[tuple[Path, str]]:
    """(file, module name) of every source file of the package at ``root``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return out


def layer_violations(root: Path, layers: dict[str, int]) -> list[str]:
    """Imports of a higher layer than the importing module's, and parts with no layer."""
    bad = []
    for path, module in _modules(root):
        here = _part(module)
        if here not in layers:
            bad.append(f"{module}: {here!r} has no layer in LAYERS")
            continue
        for line, target in _imports(path, root):
            if target.split(".")[0] != root.name:
                continue
            there = _part(target)
            if layers.get(there, float("inf")) > layers[here]:
                bad.append(f"{path}:{line}: {here} (layer {layers[here]}) imports {target}")
    return bad


def ros_imports_outside_ros(root: Path) -> list[str]:
    """Imports of rclpy or a ROS message package by files outside ``root``/ros."""
    return [
        f"{path}:{line}: imports {target}"
        for path, module in _modules(root)
        if _part(module) != "ros"
        for line, target in _imports(path, root)
        if target.split(".")[0] in ROS
    ]


def test_the_package_points_one_way():
    assert layer_violations(PACKAGE, LAYERS) == []


def test_no_ros_import_outside_gcf_ros_ros():
    assert ros_imports_outside_ros(PACKAGE) == []


def test_the_checks_catch_a_planted_violation(tmp_path):
    root = tmp_path / "gcf_ros"
    (root / "core").mkdir(parents=True)
    (root / "gcf").mkdir()
    (root / "__init__.py").write_text("")
    (root / "gcf" / "__init__.py").write_text("")
    (root / "core" / "__init__.py").write_text("from gcf_ros import gcf, __version__\n")
    (root / "core" / "bad.py").write_text(
        "def f():\n    import rclpy\n    from gcf_ros.gcf.refiner import Refiner\n"
    )
    (root / "gcf" / "ok.py").write_text(
        "import gcf_ros.core.bad\nfrom sensor_msgs.msg import Image\n"
    )
    assert [v.split(": ", 1)[1] for v in layer_violations(root, LAYERS)] == [
        "core (layer 0) imports gcf_ros.gcf",
        "core (layer 0) imports gcf_ros.gcf.refiner",
    ]
    assert [v.split(": ", 1)[1] for v in ros_imports_outside_ros(root)] == [
        "imports rclpy",
        "imports sensor_msgs.msg",
    ]
    (root / "extra.py").write_text("")
    assert "gcf_ros.extra: 'extra' has no layer in LAYERS" in layer_violations(root, LAYERS)


_PROBE = r"""
import importlib, pkgutil, sys

class _BlockRos:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ROS:
            raise ImportError(f"ROS module {name} imported outside gcf_ros.ros")
        return None

sys.meta_path.insert(0, _BlockRos())
import gcf_ros
names = [m.name for m in pkgutil.walk_packages(gcf_ros.__path__, "gcf_ros.")
         if not m.name.startswith("gcf_ros.ros")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_everything_outside_gcf_ros_ros_imports_with_ros_blocked():
    probe = f"ROS = {ROS!r}\n{_PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) >= 50
