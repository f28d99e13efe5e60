"""Command-line tools of gcf_ros (console scripts), thin wrappers over gcf_ros.core."""
