"""The pose loss: one damped Gauss–Newton step on a field, differentiable, on exact geometry.

Samples are built from first principles: a curved surface patch of a 0.2 m object seen 0.6 m away
through a 32 x 32 window camera, the rendering's location field at T0, and the exact field to T*.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from gcf_ros.core.camera import project
from gcf_ros.core.geometry import make_se3, rotation_angle, se3_apply, so3_exp
from gcf_ros.gcf.field import pixel_grid
from gcf_ros.gcf.network import NetConfig
from gcf_ros.train.pose_loss import one_step_error, saturate
from gcf_ros.train.shards import ShardDataset
from gcf_ros.train.train import TrainConfig, Trainer

S = 32
DIAMETER = 0.2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _samples(n: int, seed: int, deg: float = 5.0, cm: float = 1.0) -> dict[str, np.ndarray]:
    """n samples: render (location field / diameter in channels 0-2, mask in 9), the exact
    field to T*, poses, K. T0 = T* perturbed by ``deg`` degrees and ``cm`` centimetres."""
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor(
        [[150.0, 0, S / 2 - 0.5], [0, 150.0, S / 2 - 0.5], [0, 0, 1]], dtype=torch.float64
    )
    uv = pixel_grid(S, torch.float64).reshape(-1, 2)
    out = {k: [] for k in ("render", "field", "mask", "T_true", "T_init", "K_window")}
    for _ in range(n):
        axis = torch.randn(3, generator=g, dtype=torch.float64)
        R_true = so3_exp(0.5 * axis)
        T_true = make_se3(R_true, torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64))
        d = torch.randn(3, generator=g, dtype=torch.float64)
        w = torch.randn(3, generator=g, dtype=torch.float64)
        T_init = make_se3(
            so3_exp(torch.deg2rad(torch.tensor(deg)) * w / w.norm()) @ R_true,
            T_true[:3, 3] + 0.01 * cm * d / d.norm(),
        )
        # The T0 rendering: a paraboloid cap z = 0.6 - 0.5 (x² + y²) in the camera frame at T0
        # (a real 3D shape, so out-of-plane rotation is observable), cut to a disc.
        x = (uv[:, 0] - K[0, 2]) / K[0, 0]
        y = (uv[:, 1] - K[1, 2]) / K[1, 1]
        z = 0.55 + 0.5 * ((x * 0.55) ** 2 + (y * 0.55) ** 2)
        X_cam0 = torch.stack([x * z, y * z, z], -1)
        mask = ((x * 0.55) ** 2 + (y * 0.55) ** 2) < 0.05**2
        X_obj = se3_apply(torch.linalg.inv(T_init), X_cam0) * mask[:, None]
        field = (project(K, se3_apply(T_true, X_obj)) - uv) * mask[:, None]
        render = torch.zeros(10, S * S, dtype=torch.float64)
        render[:3] = (X_obj / DIAMETER).T
        render[9] = mask
        out["render"].append(render.reshape(10, S, S).numpy())
        out["field"].append(field.T.reshape(2, S, S).numpy())
        out["mask"].append(mask.reshape(S, S).numpy())
        out["T_true"].append(T_true.numpy())
        out["T_init"].append(T_init.numpy())
        out["K_window"].append(K.numpy())
    rng = np.random.default_rng(seed)
    arrays = {k: np.stack(v) for k, v in out.items()}
    return {
        "image": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "render": arrays["render"].astype(np.float16),
        "field": arrays["field"].astype(np.float16),
        "mask": arrays["mask"],
        "model_idx": np.zeros(n, np.int16),
        "model_ids": np.array(["obj_000001"]),
        "T_true": arrays["T_true"].astype(np.float32),
        "T_init": arrays["T_init"].astype(np.float32),
        "K_window": arrays["K_window"].astype(np.float32),
        "level": np.zeros(n, np.int8),
    }


def _batch(n=4, seed=0, **kw):
    a = {k: torch.from_numpy(np.asarray(v)) for k, v in _samples(n, seed, **kw).items()
         if k != "model_ids"}  # fmt: skip
    return a


def _step(a, field, weight=None, **kw):
    weight = torch.ones_like(a["mask"], dtype=torch.float32) if weight is None else weight
    return one_step_error(
        field, weight, a["render"].float(), a["mask"], a["T_init"], a["T_true"], a["K_window"],
        torch.full((len(field),), DIAMETER), **kw,
    )  # fmt: skip


def test_true_field_step_lands_on_the_true_pose():
    a = _batch()
    r = _step(a, a["field"].float(), damping=0.0)
    zero = _step(a, torch.zeros_like(a["field"].float()), damping=0.0)
    assert (zero.error0_px > 1.0).all()  # 5 deg, 1 cm: pixels
    assert torch.allclose(zero.error_px, zero.error0_px)  # no field, no step
    assert (r.error_px < 0.1 * r.error0_px).all(), (r.error_px, r.error0_px)
    assert (r.rotation_deg < 0.5).all(), r.rotation_deg  # from 5 degrees
    rot0 = torch.rad2deg(rotation_angle(a["T_init"][:, :3, :3].double(),
                                        a["T_true"][:, :3, :3].double()))  # fmt: skip
    assert torch.allclose(zero.rotation_deg, rot0, atol=1e-3)


def test_pixel_subset_gives_the_same_step():
    a = _batch()
    full = _step(a, a["field"].float(), damping=0.1)
    sub = _step(a, a["field"].float(), damping=0.1, max_pixels=64,
                generator=torch.Generator().manual_seed(0))  # fmt: skip
    # Exact field: any 64 pixels determine the same pose (up to the damping's pull).
    assert torch.allclose(full.rotation_deg, sub.rotation_deg, atol=0.3)


def test_gradients_reach_field_and_weight():
    a = _batch()
    field = (a["field"].float() + torch.randn(a["field"].shape)).requires_grad_(True)
    weight = torch.full(a["mask"].shape, 0.5).requires_grad_(True)
    r = _step(a, field, weight, damping=0.1)
    (r.error_px.mean() + r.rotation_deg.mean()).backward()
    assert field.grad.abs().sum() > 0 and weight.grad.abs().sum() > 0
    off = ~a["mask"]
    assert field.grad.permute(0, 2, 3, 1)[off].abs().max() == 0  # background: no influence
    # A small step along the negative gradient lowers the loss.
    with torch.no_grad():
        r2 = _step(a, field - 0.5 * field.grad / field.grad.abs().max(), weight, damping=0.1)
    assert (r2.error_px.mean() + r2.rotation_deg.mean()) < (
        r.error_px.mean() + r.rotation_deg.mean()
    )


def test_saturate():
    x = torch.tensor([0.0, 1.0, 1000.0])
    y = saturate(x, 20.0)
    assert y[0] == 0 and y[1] == pytest.approx(1.0, rel=1e-3) and y[2] <= 20.0


def _write(folder, n, seed):
    folder.mkdir(parents=True)
    np.savez(folder / "shard_00000.npz", **_samples(n, seed))
    shard = {"name": "shard_00000.npz", "num_samples": n, "seed": seed}
    manifest = {"seed": seed, "num_samples": n, "complete": True, "shards": [shard]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_trainer_with_pose_loss(tmp_path):
    _write(tmp_path / "train", 24, 1)
    _write(tmp_path / "val", 8, 2)
    config = TrainConfig(
        train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"),
        out_dir=str(tmp_path / "run"), export=str(tmp_path / "w.pt"), batch_size=8,
        iterations=4, warmup_steps=1, val_every=2, ckpt_every=2, pose_loss_factor=1.0,
        pose_loss_pixels=128, net=NetConfig(widths=(16, 16, 24, 32), corr_radius=2),
    )  # fmt: skip
    ds = ShardDataset(tmp_path / "train")
    assert ds.model_ids == ("obj_000001",) and ds.batch(np.arange(3)).has_geometry
    with pytest.raises(ValueError, match="diameters"):
        Trainer(config, device="cpu")
    with pytest.raises(ValueError, match="no diameter"):
        Trainer(config, device="cpu", diameters={"obj_000002": 0.1})
    trainer = Trainer(config, device="cpu", diameters={"obj_000001": DIAMETER})
    stats = trainer.step()
    assert {"pose_px", "rot1_deg"} <= set(stats) and np.isfinite(stats["loss"])
    record = trainer.fit(progress=False)
    assert trainer.selection_key == "val_pose_score"
    assert np.isfinite([record[k] for k in ("val_pose_px", "val_pose0_px", "val_rot1_deg")]).all()
    assert trainer.best["iteration"] in (2, 4) and "val_pose_score" in trainer.best
    # The net starts from the zero field, so its first step is no step.
    fresh = Trainer(dataclasses.replace(config, out_dir=str(tmp_path / "r2")),
                    diameters={"obj_000001": DIAMETER})  # fmt: skip
    v = fresh.validate()
    assert v["val_pose_px"] == pytest.approx(v["val_pose0_px"], rel=1e-6)
