"""The ROS 2 layer of gcf_ros: the ``gcf_refiner`` node and the demo player.

Everything numerical lives in ``gcf_ros.core`` and ``gcf_ros.gcf`` (no ROS import); the modules
here convert messages, synchronise inputs, queue work and publish results.
"""
