"""The package imports, and its ament metadata is consistent with setup.py."""

from __future__ import annotations

import re
from pathlib import Path

from catkin_pkg.package import parse_package

import gcf_ros

ROOT = Path(__file__).resolve().parents[1]


def test_import_and_version():
    pkg = parse_package(str(ROOT / "package.xml"))
    assert gcf_ros.__version__ == pkg.version


def test_package_xml_is_format3_ament_python():
    pkg = parse_package(str(ROOT / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == "gcf_ros"
    assert pkg.get_build_type() == "ament_python"
    exec_deps = {d.name for d in pkg.exec_depends}
    for dep in ("rclpy", "sensor_msgs", "tf2_msgs", "vision_msgs", "gcf_ros_msgs"):
        assert dep in exec_deps


def test_interface_package_is_ament_cmake():
    pkg = parse_package(str(ROOT / "msg" / "gcf_ros_msgs" / "package.xml"))
    pkg.validate()
    assert pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}


def test_setup_py_version_matches_and_installs_launch_and_config():
    text = (ROOT / "setup.py").read_text()
    assert re.search(r'version="0\.1\.0"', text)
    assert '"launch/*.py"' in text and '"config/*.yaml"' in text


def test_rviz_config_shows_what_the_node_publishes():
    """config/gcf.rviz (opened by the launch file's rviz:=true) is installed, is valid YAML and
    watches the node's own output topics, in the demo player's optical frame."""
    import yaml

    from gcf_ros.ros.player import OPTICAL_FRAME

    assert '"config/*.rviz"' in (ROOT / "setup.py").read_text()
    doc = yaml.safe_load((ROOT / "config" / "gcf.rviz").read_text())
    manager = doc["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/markers"
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "/debug/overlay"
    assert "rviz_default_plugins/TF" in displays
    assert manager["Global Options"]["Fixed Frame"] == OPTICAL_FRAME
    node = (ROOT / "gcf_ros" / "ros" / "refiner_node.py").read_text()
    assert '"markers"' in node and '"debug/overlay"' in node
    launch = (ROOT / "launch" / "gcf.launch.py").read_text()
    assert '"gcf.rviz"' in launch and 'DeclareLaunchArgument("rviz"' in launch
