"""Solver terms: each turns the current renderings and the image into weighted residuals with
Jacobians in the one pose-update convention (``gcf_ros.core.pose_update``); the solver sums them
(``gcf_ros.gcf.solver.solve_terms``). Adding a term: one module here and one line in ``TERMS``.

- ``field``: the learned correspondence field (``FieldTerm``; needs a trained network).
- ``region``: training-free silhouette from per-frame colour statistics (``RegionTerm``).
- ``contour``: silhouette from a given visible mask per detection (``ContourTerm``).
- ``mask``: silhouette from the network's visible-mask head (``MaskTerm``).
- ``depth``: point-to-plane residuals against an aligned depth image (``DepthTerm``); the refiner
  adds it when ``refine`` is given depth.
"""

from gcf_ros.gcf.terms.base import NetworkEvidence, Residuals, Term, TermInputs
from gcf_ros.gcf.terms.depth import DepthConfig, DepthTerm
from gcf_ros.gcf.terms.field import FieldTerm
from gcf_ros.gcf.terms.silhouette import (
    ContourTerm,
    LineConfig,
    MaskTerm,
    RegionConfig,
    RegionTerm,
)  # fmt: skip

TERMS = {
    "field": FieldTerm, "region": RegionTerm, "contour": ContourTerm, "mask": MaskTerm,
    "depth": DepthTerm,
}  # fmt: skip

__all__ = [
    "TERMS", "ContourTerm", "DepthConfig", "DepthTerm", "FieldTerm", "LineConfig", "MaskTerm",
    "NetworkEvidence", "RegionConfig", "RegionTerm", "Residuals", "Term", "TermInputs",
]  # fmt: skip
