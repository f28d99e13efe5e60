"""The learned correspondence field as a solver term (the GCF method, docs/design.md §2 steps 3-5).

Every rendered pixel contributes a 2D residual: its field vector F_p (where that surface point is in
the image, minus where it is rendered, window pixels) with the network's weight w_p; with mutual
occlusion, none where another instance of the call lies in front of it.
"""

from __future__ import annotations

import torch

from gcf_ros.gcf.terms.base import Residuals, TermInputs, point_residuals, take_rows


class FieldTerm:
    """Residuals from the field predictor's output (``TermInputs.network``: the trained network,
    or the exact field for oracles)."""

    name = "field"
    phase = "field"
    needs_network = True

    def __init__(self, mutual_occlusion: bool = False) -> None:
        # Rendered pixels that another instance of the call covers in front get no row
        # (TermInputs.occluder_depth): the network cannot see where they went.
        self.uses_occluders = mutual_occlusion

    @classmethod
    def from_config(cls, config) -> FieldTerm:
        return cls(config.mutual_occlusion)

    def residuals(self, inputs: TermInputs) -> Residuals:
        render = inputs.render
        if inputs.network is None:
            raise ValueError("the field term needs a field predictor (trained weights)")
        evidence = inputs.network()
        weight = evidence.weight
        if self.uses_occluders and inputs.occluder_depth is not None:
            hidden = inputs.occluder_depth.to(render.depth.device) < render.depth
            weight = weight * ~hidden.to(weight.device)
        return field_residuals(inputs.K_window, inputs.T_cam_obj, render, evidence.field, weight)


def field_residuals(
    K_window: torch.Tensor,
    T_cam_obj: torch.Tensor,
    render,
    field_px: torch.Tensor,
    weight: torch.Tensor,
) -> Residuals:
    """Rows for the rendered pixels of ``render`` (foreground first, padded to the batch's largest
    count, about 10 % of the window): field (B, S, S, 2), weight (B, S, S). The solver scales
    the term by its weights alone (confidence 1): the weight's scale is the network's own.

    The rows are computed on the rendering's device (``field_px`` and ``weight`` are moved there:
    the predictor may return them on the CPU)."""
    B, S = render.batch_size, render.size
    field_px, weight = field_px.to(render.mask.device), weight.to(render.mask.device)
    fg = render.mask.reshape(B, S * S)
    n = max(int(fg.sum(1).max()), 1)
    idx = torch.argsort(fg.to(torch.int8), dim=1, descending=True, stable=True)[:, :n]
    X_obj = take_rows(render.xyz_obj.reshape(B, S * S, 3), idx)
    w = take_rows((weight * render.mask).reshape(B, S * S), idx)
    F = take_rows(field_px.reshape(B, S * S, 2), idx)
    return point_residuals(K_window, T_cam_obj, X_obj, F, w)
