"""gcf-bench: speed (and accuracy per time) of the GCF refiner and the soft-rasterizer baselines.

One module per job: :mod:`~gcf_ros.bench.timing` (sample statistics, peak RSS, machine description),
:mod:`~gcf_ros.bench.frame` (the benchmark frame, its initial poses, mesh variants),
:mod:`~gcf_ros.bench.cases` (what is measured), :mod:`~gcf_ros.bench.report` (JSON document and
tables), :mod:`~gcf_ros.bench.accuracy` (ADD(-S) reached vs time per object, one plot) and
:mod:`~gcf_ros.bench.cli` (the ``gcf-bench`` entry point). Nothing here imports ROS: the node
benchmark (real rclpy nodes) is :mod:`gcf_ros.ros.bench_node`, imported by the CLI when asked for.

Speed is measured on the packaged real LM-O frame (``data/demo``) with the ground truth perturbed
at the medium level, seed 0 (docs/design.md §4), and compared as ratios within one run: the
machines are shared and noisy, absolute times only mean something on a quiet machine or a GPU.
"""
