"""gcf_ros: RGB-only 6-DoF pose refinement with Geometric Correspondence Fields (ECCV 2020).

Layers:
    gcf_ros.core   pure torch/numpy: geometry, cameras, models, renderers (no ROS import)
    gcf_ros.ros    the thin ROS 2 layer (nodes, message conversion)

Conventions, everywhere: column vectors; ``T_cam_obj`` maps object-frame points into the camera
frame (X_cam = R X_obj + t); the camera frame is the OpenCV / REP 103 optical frame (x right, y
down, z forward); metres; quaternions in ROS order (x, y, z, w).
"""

__version__ = "0.1.0"
