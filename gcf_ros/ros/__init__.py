"""The ROS 2 layer of gcf_ros: the ``gcf_refiner`` node, the demo player and ``gcf-demo``, and the
node benchmark of ``gcf-bench``. The only part of gcf_ros that imports rclpy or ROS messages.

Everything numerical lives in ``gcf_ros.core`` and ``gcf_ros.gcf`` (no ROS import); the modules
here convert messages, synchronise inputs, queue work and publish results.
"""
