"""The pure-Python core of gcf_ros: geometry, cameras, CAD models, renderers, datasets.

Nothing in this package imports rclpy or a ROS message package (test/test_layers.py keeps
that line honest). Conventions, stated once: column vectors; ``T_a_b`` maps points from frame b to
frame a (``X_a = R X_b + t``); cameras use the OpenCV / REP 103 optical frame (x right, y down,
z forward) with pixel centres at integer coordinates; metres; quaternions in ROS order (x, y, z, w).
"""
