"""Test-wide settings. ROS isolation happens here, before any test imports rclpy."""

import os

# Every test session talks on its own DDS domain and only over loopback, so that CI, a developer's
# run and a demo on the same machine never see each other's nodes. Derived from the PID: two
# concurrent sessions collide with probability ~1/90.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("GCF_TEST_ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
