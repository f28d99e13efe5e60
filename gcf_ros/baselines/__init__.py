"""Baselines the GCF refiner is measured against.

Differentiable rendering with PyTorch3D's soft rasterizer and its hand-made backward pass, compared
in mask space or RGB space, optimised by Adam.
"""

from gcf_ros.baselines.soft_render import SoftRenderConfig, SoftRenderRefiner

__all__ = ["SoftRenderConfig", "SoftRenderRefiner"]
