"""The frame pipeline, between the refiner (gcf_ros.gcf) and its drivers (the ROS node, gcf-bench):
an Observation in, tracks and seeds, one batched refinement, a FrameResult out. No ROS here."""
