"""Command-line tools of gcf_ros without ROS (``gcf-render``), thin wrappers over gcf_ros.core."""
