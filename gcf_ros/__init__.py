"""gcf_ros: RGB-only 6-DoF pose refinement with Geometric Correspondence Fields (ECCV 2020).

Layers: core, resources <- gcf, baselines <- eval, train <- ros, tools, bench (the entry points:
the node and its demo, gcf-render, gcf-bench, which also times the node). A module imports only its
own layer or lower ones, and only gcf_ros.ros imports ROS: test/test_layers.py holds the table.

Conventions, everywhere: column vectors; ``T_cam_obj`` maps object-frame points into the camera
frame (X_cam = R X_obj + t); the camera frame is the OpenCV / REP 103 optical frame (x right, y
down, z forward); metres; quaternions in ROS order (x, y, z, w).
"""

__version__ = "0.1.0"
