"""The two renderer backends agree on the real LM-O meshes at real ground-truth poses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.render import make_renderer

S = 96


@pytest.fixture(scope="module")
def both(lmo_root, registry):
    frame = next(iter(BopDataset(lmo_root).frames()))
    models, Ts, Ks = [], [], []
    for inst in frame.instances[:4]:
        model = registry.get(inst.model_id).simplified(3000)  # PyTorch3D on CPU is slow
        window = crop_window_for_box(frame.K, inst.T_cam_obj, model.bbox_corners_obj, S)
        models.append(model)
        Ts.append(inst.T_cam_obj)
        Ks.append(window.K_window(frame.K))
    T, K = torch.as_tensor(np.stack(Ts)), torch.as_tensor(np.stack(Ks))
    raycast = make_renderer("raycast").render(models, T, K, S)
    p3d = make_renderer("pytorch3d").render(models, T, K, S)
    return models, raycast, p3d


def test_masks_agree(both):
    models, a, b = both
    for i, model in enumerate(models):
        inter = (a.mask[i] & b.mask[i]).sum().item()
        union = (a.mask[i] | b.mask[i]).sum().item()
        assert inter / union > 0.98, f"{model.model_id}: IoU {inter / union:.4f}"


def test_depth_location_field_and_normals_agree(both):
    models, a, b = both
    for i, model in enumerate(models):
        m = a.mask[i] & b.mask[i]
        depth_err = (a.depth[i][m] - b.depth[i][m]).abs()
        assert torch.quantile(depth_err, 0.99) < 1e-3, f"{model.model_id}: depth differs > 1 mm"
        xyz_err = (a.xyz_obj[i][m] - b.xyz_obj[i][m]).norm(dim=-1)
        assert torch.quantile(xyz_err, 0.99) < 1e-3
        cos = (a.normals_cam[i][m] * b.normals_cam[i][m]).sum(-1)
        assert torch.quantile(cos, 0.05) > 0.99
        rgb_err = (a.rgb[i][m] - b.rgb[i][m]).abs().max(-1).values
        assert torch.quantile(rgb_err, 0.95) < 0.02
