"""Shards, training loop, checkpoints and the gcf-train CLI on a tiny synthetic task (CPU, seeded).

The task is learnable from the rendering alone: channel 0 of the render holds a per-sample value c
on the mask and the true field is (4c, -2c) px there.
"""

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gcf_ros.gcf.network import NetConfig, load_gcf_weights
from gcf_ros.gcf.weights_meta import WeightsMeta, read_weights_meta
from gcf_ros.train.shards import ShardDataset
from gcf_ros.train.train import TrainConfig, Trainer
from gcf_ros.train.train_cli import main

S = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _shard(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, S, S), bool)
    for i, half in enumerate(rng.integers(3, S // 2, n)):
        mask[i, S // 2 - half : S // 2 + half, S // 2 - half : S // 2 + half] = True
    c = rng.uniform(-1.0, 1.0, n)[:, None, None] * mask
    render = rng.normal(0.0, 0.3, (n, 10, S, S)) * mask[:, None]
    render[:, 0], render[:, 9] = c, mask
    field = np.stack([4.0 * c, -2.0 * c], axis=1)
    return {
        "image": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "render": render.astype(np.float16),
        "field": field.astype(np.float16),
        "mask": mask,
        "model_idx": np.zeros(n, np.int16),
        "model_ids": np.array(["obj_000001"]),
        "T_true": np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
        "T_init": np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
        "K_window": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        "level": np.zeros(n, np.int8),
    }


def _write_set(folder, sizes, seed):
    folder.mkdir(parents=True)
    shards = []
    for i, n in enumerate(sizes):
        name = f"shard_{i:05d}.npz"
        np.savez(folder / name, **_shard(n, seed * 100003 + i))
        shards.append({"name": name, "num_samples": n, "seed": seed * 100003 + i})
    manifest = {"seed": seed, "num_samples": sum(sizes), "shards": shards, "complete": True}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    _write_set(root / "train", [40, 24], seed=1)
    _write_set(root / "val", [16], seed=2)
    return root


def _config(data_root, out, **overrides) -> TrainConfig:
    base = TrainConfig(
        train_dir=str(data_root / "train"),
        val_dir=str(data_root / "val"),
        out_dir=str(out),
        export=str(out / "weights.pt"),
        batch_size=8,
        iterations=60,
        lr=3e-3,
        warmup_steps=5,
        val_every=30,
        ckpt_every=30,
        net=NetConfig(widths=(16, 16, 24, 32)),
    )
    return dataclasses.replace(base, **overrides)


def test_shard_dataset(data_root):
    ds = ShardDataset(data_root / "train")
    assert len(ds) == 64 and ds.size == S and ds.manifest["seed"] == 1
    item = ds[41]
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
    assert item["render"].shape == (10, S, S) and item["field"].shape == (2, S, S)
    assert item["mask"].dtype == torch.bool and 0.0 <= item["image"].min() <= 1.0
    seen = [b.field.shape[0] for b in ds.batches(24, np.random.default_rng(0))]
    assert seen == [24, 24, 16]
    assert [b.mask.shape[0] for b in ds.batches(24, drop_last=True)] == [24, 24]
    assert len(ShardDataset(data_root / "train", max_samples=50)) == 50


def test_shard_dataset_without_manifest(tmp_path, data_root):
    (tmp_path / "shard_00000.npz").write_bytes((data_root / "val/shard_00000.npz").read_bytes())
    assert len(ShardDataset(tmp_path)) == 16
    with pytest.raises(FileNotFoundError, match="no training shards"):
        ShardDataset(tmp_path / "empty")


def test_training_reduces_loss(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path / "run"))
    before = trainer.validate()
    assert before["val_epe"] == pytest.approx(before["val_epe_zero"])  # zero-initialised field
    first = trainer.step()["loss"]
    record = trainer.fit(progress=False)
    assert trainer.iteration == 60
    print(f"val EPE {before['val_epe']:.3f} -> {record['val_epe']:.3f} px")
    assert record["val_epe"] < 0.4 * before["val_epe"], (before, record)
    assert record["train_loss"] < 0.5 * first
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [30, 60]
    assert {"val_epe", "val_epe_zero", "val_frac_lt1px", "lr"} <= set(log[0])
    assert (tmp_path / "run/last.pt").is_file() and (tmp_path / "run/best.pt").is_file()


def test_resume_is_exact(data_root, tmp_path):
    config = _config(data_root, tmp_path / "run", iterations=20)
    a = Trainer(config)
    for _ in range(3):
        a.step()
    a.save_checkpoint(tmp_path / "ckpt.pt")
    expected = [a.step()["loss"] for _ in range(2)]
    b = Trainer(config)
    b.load_checkpoint(tmp_path / "ckpt.pt")
    assert b.iteration == 3
    assert [b.step()["loss"] for _ in range(2)] == expected
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


def test_export_round_trip(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path / "run", iterations=4, val_every=2))
    trainer.fit(progress=False)
    path = trainer.export(command="gcf-train --iterations 4")
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "net_config", "meta"}
    net, _ = load_gcf_weights(path)
    meta = read_weights_meta(path)
    training = meta.training
    assert training["command"] == "gcf-train --iterations 4"
    assert training["data"]["train"]["seed"] == 1 and training["data"]["train"]["shard_seeds"] == [
        100003,
        100004,
    ]
    assert training["best_iteration"] in (2, 4) and training["train_config"]["batch_size"] == 8
    assert meta.window_size == S  # the refiner crops at the size the network was trained at
    # the models of its training data (the refiner notes results for other models)
    assert (
        meta.trained_models == tuple(ShardDataset(data_root / "train").model_ids) == ("obj_000001",)
    )
    untuned = WeightsMeta()
    assert (meta.damping, meta.rotation_damping) == (untuned.damping, untuned.rotation_damping)
    best = torch.load(tmp_path / "run/best.pt", weights_only=True)["model"]
    for key, value in net.state_dict().items():
        assert torch.equal(value, best[key])


def test_a_fine_tune_keeps_the_settings_its_init_file_records(data_root, tmp_path):
    """--init from a file with tuned refiner settings (the shipped one: min_confidence 0.003) at
    the same window size: the export records them, marked as inherited; at another size, not."""
    from gcf_ros.gcf.weights_meta import edit_weights_meta

    first = Trainer(_config(data_root, tmp_path / "first", iterations=2, val_every=2))
    first.fit(progress=False)
    tuned = first.export()
    edit_weights_meta(tuned, ["min_confidence=0.003", "rotation_damping.gauss_newton=7"], "tuned")
    fine = Trainer(_config(data_root, tmp_path / "fine", iterations=2, val_every=2))
    fine.init_from_weights(tuned)
    fine.fit(progress=False)
    meta = read_weights_meta(fine.export(tmp_path / "fine.pt"))
    assert (meta.min_confidence, meta.rotation_damping["gauss_newton"]) == (0.003, 7.0)
    assert meta.note.startswith(f"inherited from {tuned}") and meta.note.endswith(": tuned")
    assert meta.window_size == S and meta.training["init"]["path"] == str(tuned)
    edit_weights_meta(tuned, ["window_size=32"], "at S = 32")
    other = Trainer(_config(data_root, tmp_path / "other", iterations=2, val_every=2))
    other.init_from_weights(tuned)
    other.fit(progress=False)
    meta = read_weights_meta(other.export(tmp_path / "other.pt"))
    assert meta.min_confidence == WeightsMeta().min_confidence and meta.window_size == S


def test_init_blend_exports_the_midpoint_also_after_a_resume(data_root, tmp_path, capsys):
    """init_blend 0.5: every float tensor of the export is halfway between the --init network
    and the trained one (kept in checkpoints, so a resumed run blends too); without --init, or
    from a grown network, it is refused before training."""
    first = Trainer(_config(data_root, tmp_path / "first", iterations=2, val_every=2))
    first.fit(progress=False)
    init_path = first.export()
    init = load_gcf_weights(init_path)[0].state_dict()
    config = _config(data_root, tmp_path / "fine", iterations=4, val_every=2, ckpt_every=2)
    config = dataclasses.replace(config, init_blend=0.5)
    fine = Trainer(config)
    fine.init_from_weights(init_path)
    fine.fit(progress=False, stop_after=2)
    resumed = Trainer(config)
    resumed.load_checkpoint(tmp_path / "fine" / "last.pt")
    resumed.fit(progress=False)
    assert resumed.init_meta["path"] == str(init_path)
    blended = load_gcf_weights(resumed.export(tmp_path / "blend.pt"))[0].state_dict()
    best = torch.load(tmp_path / "fine" / "best.pt", weights_only=True)["model"]
    moved = 0
    for key, value in blended.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (init[key] + best[key]) / 2)
            moved += not torch.equal(init[key], best[key])
        else:
            assert torch.equal(value, best[key])
    assert moved > 10
    with pytest.raises(ValueError, match="needs a run started with --init"):
        Trainer(dataclasses.replace(config, out_dir=str(tmp_path / "x"))).export(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="init_blend must be in"):
        dataclasses.replace(config, init_blend=0.0)
    args = _cli_yaml(data_root, tmp_path, init_blend=0.5)
    assert main(args) == 2 and "needs --init" in capsys.readouterr().err


def test_checkpoint_errors(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path / "run"))
    torch.save({"model": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        trainer.load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="unknown train config keys"):
        TrainConfig.from_dict({"batch": 3})


def test_cli_train_resume_export(data_root, tmp_path, capsys):
    config = _config(data_root, tmp_path / "unused", iterations=4, val_every=2, ckpt_every=2)
    section = {**config.to_dict(), "export": str(tmp_path / "weights.pt")}
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(yaml.safe_dump({"synth": {"window_size": S}, "train": section}))
    out = tmp_path / "run"
    args = ["--config", str(yaml_path), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "weights.pt").is_file()
    assert "val_epe" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite a run without --resume
    assert main([*args, "--resume", "--iterations", "6"]) == 0
    assert "resumed" in capsys.readouterr().out
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [2, 4, 6]
    assert main(["--config", str(tmp_path / "absent.yaml")]) == 2
    assert main([*args, "--fit-schedule"]) == 2  # without --max-minutes
    assert "--fit-schedule needs --max-minutes" in capsys.readouterr().err
    # --stop-after cuts the planned schedule; --export names the weights file; --data-on-device
    # (the CPU here) trains from tensors instead of host arrays.
    other = tmp_path / "other.pt"
    cut = ["--config", str(yaml_path), "--out", str(tmp_path / "cut"), "--no-progress",
           "--stop-after", "3", "--export", str(other), "--data-on-device"]  # fmt: skip
    assert main(cut) == 0 and other.is_file()
    _, meta = load_gcf_weights(other)
    assert meta["iteration"] == 3 and "--stop-after 3" in meta["command"]


def test_cli_init_names_resolve_like_every_checkpoint(data_root, tmp_path, capsys):
    """--init takes a path or a shipped file's name (gcf_ros.gcf.checkpoints); a name that is
    not shipped is an error listing those that are."""
    config = _config(data_root, tmp_path / "unused", iterations=1)
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(yaml.safe_dump({"synth": {"window_size": S}, "train": config.to_dict()}))
    args = ["--config", str(yaml_path), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*args, "--init", "gcf_lmo_s65.pt"]) == 2
    err = capsys.readouterr().err
    assert "gcf_lmo_s65.pt: no such file; shipped weights" in err and "gcf_lmo_s64.pt" in err


def test_time_limit_stops_early_with_a_checkpoint(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path / "run"))
    record = trainer.fit(progress=False, max_seconds=0.0)
    assert trainer.iteration == 1 and record["iteration"] == 1
    assert (tmp_path / "run/last.pt").is_file() and (tmp_path / "run/best.pt").is_file()
    other = Trainer(_config(data_root, tmp_path / "run2"))
    other.fit(progress=False, stop_after=7)
    assert other.iteration == 7
    assert other.scheduler.get_last_lr()[0] > 0.0  # the 60-iteration schedule, cut at 7


def test_fit_schedule_ends_the_learning_rate_decay_inside_the_time_limit(
    data_root, tmp_path, monkeypatch
):
    monkeypatch.setattr("gcf_ros.train.train.FIT_PROBE", 5)
    # A clock that advances 30 ms per reading: steady steps, whatever else loads the machine (on
    # the wall clock, a probe faster than the later steps let the time limit cut the schedule).
    ticks = itertools.count()
    monkeypatch.setattr("gcf_ros.train.train.time.perf_counter", lambda: 0.03 * next(ticks))
    config = _config(data_root, tmp_path / "run", iterations=10**6, val_every=10**6)
    trainer = Trainer(config)
    trainer.fit(progress=False, max_seconds=3.0, fit_schedule=True)
    assert 5 < trainer.total_iterations < 10**6  # the schedule now ends where the time does
    assert trainer.iteration == trainer.total_iterations  # reached by the schedule, not the clock
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)
    resumed = Trainer(config)
    resumed.load_checkpoint(tmp_path / "run/last.pt")
    assert resumed.total_iterations == trainer.total_iterations


def test_data_on_device_gives_the_same_batches(data_root):
    host = ShardDataset(data_root / "train")
    moved = ShardDataset(data_root / "train").to("cpu")
    assert isinstance(moved.arrays["image"], torch.Tensor)
    idx = np.array([5, 3, 40, 17])
    a, b = host.batch(idx), moved.batch(idx)
    for key in ("image", "render", "field", "mask", "T_init", "K_window", "model_idx"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


def test_augment_images_keeps_range_and_changes_pixels():
    from gcf_ros.train.augment import augment_images

    g = torch.Generator().manual_seed(0)
    image = torch.rand(6, 3, 16, 16, generator=g)
    out = augment_images(image, torch.Generator().manual_seed(1))
    assert out.shape == image.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, image) and (out - image).abs().mean() < 0.2
    again = augment_images(image, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # seeded: reproducible


def _cli_yaml(data_root, tmp_path, **overrides) -> list[str]:
    """gcf-train arguments for a 6-iteration run validated and checkpointed every 2 iterations,
    exporting to tmp_path/weights.pt."""
    config = _config(data_root, tmp_path / "unused", iterations=6, val_every=2, ckpt_every=2)
    section = {**config.to_dict(), "export": str(tmp_path / "weights.pt"), **overrides}
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(yaml.safe_dump({"synth": {"window_size": S}, "train": section}))
    return ["--config", str(yaml_path), "--out", str(tmp_path / "run"), "--no-progress"]


def test_nan_loss_stops_the_run_without_export(data_root, tmp_path, monkeypatch, capsys):
    import gcf_ros.train.train as train_module

    real, calls = train_module.gcf_loss, itertools.count(1)

    def nan_at_iteration_3(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        if next(calls) == 3:
            loss, stats = loss * float("nan"), {**stats, "loss": float("nan")}
        return loss, stats

    monkeypatch.setattr(train_module, "gcf_loss", nan_at_iteration_3)
    assert main(_cli_yaml(data_root, tmp_path)) == 3
    err = capsys.readouterr().err
    assert "iteration 3: the loss is nan" in err and "Nothing exported" in err, err
    assert not (tmp_path / "weights.pt").exists()
    # the checkpoints before the failure stay; nothing of iteration 3 was saved
    assert torch.load(tmp_path / "run/last.pt", weights_only=True)["iteration"] == 2
    assert (tmp_path / "run/best.pt").is_file()
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [2]


def test_non_finite_gradient_or_validation_stops_the_run(data_root, tmp_path, monkeypatch):
    from gcf_ros.train.guards import NonFiniteError

    trainer = Trainer(_config(data_root, tmp_path / "run", val_every=2))
    before = {k: p.detach().clone() for k, p in trainer.net.named_parameters()}
    with monkeypatch.context() as m:
        m.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: torch.tensor(float("inf")))
        with pytest.raises(NonFiniteError, match="iteration 1: the gradient norm is inf"):
            trainer.step()
    assert trainer.iteration == 0  # no optimiser step was taken
    for k, p in trainer.net.named_parameters():
        assert torch.equal(p, before[k]), k
    monkeypatch.setattr(Trainer, "validate", lambda self: {"val_epe": float("nan")})
    with pytest.raises(NonFiniteError, match="validation at iteration 2: non-finite val_epe"):
        trainer.fit(progress=False)
    assert not (tmp_path / "run/best.pt").exists() and not (tmp_path / "run/last.pt").exists()


def test_non_finite_training_data_is_named(data_root, tmp_path):
    from gcf_ros.train.guards import NonFiniteError

    bad = tmp_path / "bad"
    bad.mkdir()
    arrays = _shard(16, seed=9)
    arrays["field"][5, 0, S // 2, S // 2] = np.nan  # on the mask of sample 5
    np.savez(bad / "shard_00000.npz", **arrays)
    trainer = Trainer(_config(data_root, tmp_path / "run", train_dir=str(bad)))
    with pytest.raises(NonFiniteError, match=r"field \(1 values\) in training samples \[5\]"):
        for _ in range(2):  # two batches of 8: sample 5 is in one of them
            trainer.step()


def test_export_into_the_shipped_weights_is_refused(data_root, tmp_path, monkeypatch, capsys):
    from gcf_ros.resources import share_dir
    from gcf_ros.train import guards

    repo_weights = Path(__file__).resolve().parents[2] / "weights"
    for target in ("weights/gcf_test_export.pt", str(share_dir() / "weights" / "gcf_lmo.pt")):
        args = _cli_yaml(data_root, tmp_path)
        assert main([*args, "--export", target]) == 2
        assert "refusing to export" in capsys.readouterr().err
        assert not (tmp_path / "run").exists()  # refused before any training
    assert not (repo_weights / "gcf_test_export.pt").exists()
    # --overwrite-shipped writes there (a stand-in folder: the real one stays untouched)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(guards, "shipped_weights_dirs", lambda: [shipped])
    args = _cli_yaml(data_root, tmp_path, export=str(shipped / "gcf.pt"))
    assert main(args) == 2 and not (shipped / "gcf.pt").exists()
    assert main([*args, "--overwrite-shipped"]) == 0 and (shipped / "gcf.pt").is_file()
    with pytest.raises(ValueError, match="refusing"):  # the library call refuses too
        Trainer(_config(data_root, tmp_path / "lib", iterations=1)).export(shipped / "x.pt")
