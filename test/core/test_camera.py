"""Projection, its Jacobians (finite differences), the camera-info check and crop windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcf_ros.core import geometry as g
from gcf_ros.core.camera import (
    CropWindow,
    checked_camera_matrix,
    crop_window_around,
    crop_window_for_box,
    project,
    projection_jacobian,
)
from gcf_ros.core.pose_update import apply_update, update_jacobian

K_LMO = np.array([[572.4114, 0, 325.2611], [0, 573.57043, 242.04899], [0, 0, 1]])  # 640 x 480


def _points(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    z = 0.4 + torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return torch.cat([xy, z], -1)


def test_projection_jacobian_matches_finite_differences():
    K = torch.as_tensor(K_LMO)
    X = _points(20, 1)
    J = projection_jacobian(K, X)
    eps = 1e-7
    for k in range(3):
        dX = torch.zeros(3, dtype=torch.float64)
        dX[k] = eps
        fd = (project(K, X + dX) - project(K, X - dX)) / (2 * eps)
        torch.testing.assert_close(J[..., k], fd, atol=1e-4, rtol=1e-6)


def test_update_jacobian_matches_finite_differences_of_apply_update():
    """The pose parametrisation every refiner uses (core/pose_update.py): d(u, v)/dxi of the
    projected points under ``apply_update`` (rotation about the object's origin), against central
    differences of ``apply_update`` itself -- so a sign or axis error in either shows here."""
    K = torch.as_tensor(K_LMO)
    X_obj = _points(20, 5) - torch.tensor([0.0, 0.0, 0.7], dtype=torch.float64)
    T = g.make_se3(g.so3_exp(torch.tensor([-0.3, 0.5, 0.2], dtype=torch.float64)),
                   torch.tensor([0.05, 0.02, 0.75], dtype=torch.float64))  # fmt: skip
    J = update_jacobian(K, g.se3_apply(T, X_obj), T[:3, 3])
    assert J.shape == (20, 2, 6)
    eps = 1e-6
    for k in range(6):
        xi = torch.zeros(6, dtype=torch.float64)
        xi[k] = eps
        plus = project(K, g.se3_apply(apply_update(T, xi), X_obj))
        minus = project(K, g.se3_apply(apply_update(T, -xi), X_obj))
        torch.testing.assert_close(J[..., k], (plus - minus) / (2 * eps), atol=1e-3, rtol=1e-5)
    # apply_update: R <- Exp(omega) R about the object's origin, t <- t + dt.
    xi = torch.tensor([0.01, -0.02, 0.03, 0.1, -0.2, 0.05], dtype=torch.float64)
    T2 = apply_update(T, xi)
    torch.testing.assert_close(T2[:3, 3], T[:3, 3] + xi[:3])
    torch.testing.assert_close(T2[:3, :3], g.so3_exp(xi[3:]) @ T[:3, :3])


def test_window_K_equals_cropping_the_full_projection():
    X = _points(50, 3)
    uv_full = project(torch.as_tensor(K_LMO), X).numpy()
    window = crop_window_around(uv_full, size=128, padding=1.4)
    uv_via_window_K = project(torch.as_tensor(window.K_window(K_LMO)), X).numpy()
    np.testing.assert_allclose(uv_via_window_K, window.to_window(uv_full), atol=1e-9)
    np.testing.assert_allclose(window.to_image(window.to_window(uv_full)), uv_full, atol=1e-9)
    # The window covers the points with the requested padding.
    assert (uv_via_window_K > -0.5).all() and (uv_via_window_K < 127.5).all()


def test_resample_puts_a_pixel_where_K_window_says():
    image = np.zeros((480, 640, 3), np.uint8)
    image[200:203, 300:303] = 255  # a 3x3 blob centred on pixel (u, v) = (301, 201)
    window = CropWindow(x0=260.5, y0=160.5, side=96.0, size=48)  # scale 0.5
    crop = window.resample(image)
    assert crop.shape == (48, 48, 3)
    rows, cols = np.nonzero(crop[..., 0] > 0)
    weights = crop[rows, cols, 0].astype(float)
    centroid = np.array([np.average(cols, weights=weights), np.average(rows, weights=weights)])
    np.testing.assert_allclose(centroid, window.to_window(np.array([301.0, 201.0])), atol=0.15)


def test_resample_of_a_window_leaving_the_image_pads_with_zeros():
    image = np.full((100, 100), 7, np.uint8)
    crop = CropWindow(x0=-50.5, y0=-50.5, side=100.0, size=50).resample(image)
    assert crop[:20, :20].max() == 0 and crop[-10:, -10:].min() == 7


def test_crop_window_for_box_rejects_points_behind_the_camera():
    corners = np.array(
        [[x, y, z] for x in (-0.05, 0.05) for y in (-0.05, 0.05) for z in (-0.05, 0.05)]
    )
    T = np.eye(4)
    T[2, 3] = 0.02  # box straddles the camera plane
    with pytest.raises(ValueError, match="behind the camera"):
        crop_window_for_box(K_LMO, T, corners, size=64)
    T[2, 3] = 0.8
    window = crop_window_for_box(K_LMO, T, corners, size=64, padding=1.5)
    assert window.side == pytest.approx(1.5 * 2 * 0.05 / 0.75 * K_LMO[1, 1], rel=1e-6)


def test_camera_matrix_check_accepts_real_cameras_and_names_each_broken_rule():
    k = K_LMO.ravel().tolist()
    np.testing.assert_array_equal(checked_camera_matrix(k, 640, 480), K_LMO)
    checked_camera_matrix(k, 320, 240)  # principal point outside, less than half the image
    bad = {
        "9 values": (k[:8], 640, 480),
        "NaN": ([float("nan"), *k[1:]], 640, 480),
        "focal": ([0.0] * 9, 640, 480),
        "focal length": ([572.4, 0, 325.3, 0, -573.6, 242.0, 0, 0, 1], 640, 480),
        r"must be \[\[fx, 0, cx\]": ([572.4, 2.0, 325.3, 0, 573.6, 242.0, 0, 0, 1], 640, 480),
        r"\[0, 0, 1\]\]": ([572.4, 0, 325.3, 0, 573.6, 242.0, 0, 0, 0.5], 640, 480),
        "size 640 x 0 missing": (k, 640, 0),
        "size 0 x 0 missing": (k, 0, 0),
        "far outside": (k, 160, 120),
        "far outside the 640": ([572.4, 0, 325.3, 0, 573.6, -300.0, 0, 0, 1], 640, 480),
    }
    for message, args in bad.items():
        with pytest.raises(ValueError, match=message):
            checked_camera_matrix(*args)
