"""Renderers with one interface (``Renderer``) and swappable backends.

``RaycastRenderer`` (open3d, CPU) is the renderer of the GCF refinement loop;
``PyTorch3DRenderer`` (hard rasterizer plus soft silhouette / soft Phong for the differentiable
baselines) runs on CPU and CUDA; ``TorchRasterizer`` (hard rasterization in plain torch, no
extension) is the renderer of the GPU placement. All return a ``RenderOutput``.
``DeviceRenderer`` wraps any of them and moves its output to another device (where the refiner's
field term and solve then run).
"""

from gcf_ros.core.render.device import DeviceRenderer
from gcf_ros.core.render.types import Renderer, RenderOutput, Shading

__all__ = ["DeviceRenderer", "RenderOutput", "Renderer", "Shading", "make_renderer"]


def make_renderer(backend: str, **kwargs) -> Renderer:
    """Build a renderer by name: ``raycast``, ``pytorch3d`` or ``torch``."""
    if backend == "raycast":
        from gcf_ros.core.render.raycast import RaycastRenderer

        return RaycastRenderer(**kwargs)
    if backend == "pytorch3d":
        from gcf_ros.core.render.pytorch3d_backend import PyTorch3DRenderer

        return PyTorch3DRenderer(**kwargs)
    if backend == "torch":
        from gcf_ros.core.render.torch_raster import TorchRasterizer

        return TorchRasterizer(**kwargs)
    raise ValueError(
        f"unknown renderer backend {backend!r}; choose 'raycast', 'pytorch3d' or 'torch'"
    )
