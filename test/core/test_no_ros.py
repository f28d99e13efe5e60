"""The core never imports ROS: every gcf_ros.core module imports with rclpy and messages blocked."""

import subprocess
import sys

_PROBE = r"""
import importlib, pkgutil, sys

class _BlockRos:
    BLOCKED = ("rclpy", "rosidl", "rmw", "std_msgs", "sensor_msgs", "geometry_msgs",
               "tf2_msgs", "vision_msgs", "visualization_msgs", "diagnostic_msgs",
               "gcf_ros_msgs", "builtin_interfaces")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"ROS module {name} imported by the core")
        return None

sys.meta_path.insert(0, _BlockRos())
import gcf_ros.core
names = [m.name for m in pkgutil.walk_packages(gcf_ros.core.__path__, "gcf_ros.core.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_core_imports_without_ros():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) >= 5
