"""Launch gcf_refiner with the packaged parameters; topics remappable from the command line.

    ros2 launch gcf_ros gcf.launch.py image:=/camera/color/image_rect \
        camera_info:=/camera/color/camera_info detections:=/detector/poses
    ros2 launch gcf_ros gcf.launch.py params_file:=/path/to/my_gcf.yaml device:=cuda

Arguments: params_file (default: the package's config/gcf.yaml), namespace, device, rviz (true:
also open RViz 2 with the package's config/gcf.rviz: TF, mesh markers, the overlay image),
fastdds_profile (the node's FASTRTPS_DEFAULT_PROFILES_FILE: the user's, else the package's
config/fastdds_large_messages.xml, for the overlay images it sends), and the remappings image,
camera_info, detections, depth (read only with use_depth: true in the params_file),
refined_poses, markers, overlay.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # read by Fast DDS 2.x when the process starts
REMAPS = {
    "image": "image",
    "camera_info": "camera_info",
    "detections": "detections",
    "depth": "depth",
    "refined_poses": "refined_poses",
    "markers": "markers",
    "overlay": "debug/overlay",
}


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("gcf_ros"))
    profile = share / "config" / "fastdds_large_messages.xml"
    args = [
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "gcf.yaml"),
                              description="parameter file of gcf_refiner"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu or cuda"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="also open RViz 2 with config/gcf.rviz"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_ENV, default_value=str(profile)),
            description="Fast DDS profile of the node (default: the user's, else the package's "
                        "large-message profile)",
        ),
    ] + [
        DeclareLaunchArgument(name, default_value=topic, description=f"remap '{topic}'")
        for name, topic in REMAPS.items()
    ]  # fmt: skip
    node = Node(
        package="gcf_ros",
        executable="gcf_refiner",
        name="gcf_refiner",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), {"device": LaunchConfiguration("device")}],
        remappings=[(topic, LaunchConfiguration(name)) for name, topic in REMAPS.items()],
        additional_env={PROFILE_ENV: LaunchConfiguration("fastdds_profile")},
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", str(share / "config" / "gcf.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="log",
    )
    return LaunchDescription([*args, node, rviz])
