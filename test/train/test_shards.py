"""The validation-window reader: synthetic samples as the refiner's input, through ShardDataset."""

import json

import numpy as np
import pytest

from gcf_ros.train.shards import ShardDataset, validation_windows

S = 8
LEVELS = ["small", "medium", "large"]


def _shard(n: int, model_ids: list[str], seed: int) -> dict[str, np.ndarray]:
    """Every array of a shard: poses and cameras carry the sample's seed-unique number."""
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    T[:, :3, 3] = rng.uniform(-1, 1, (n, 3))
    K = np.tile(np.eye(3, dtype=np.float32), (n, 1, 1))
    K[:, 0, 0] = rng.uniform(100, 200, n)
    return {
        "image": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "render": rng.normal(size=(n, 10, S, S)).astype(np.float16),
        "field": rng.normal(size=(n, 2, S, S)).astype(np.float16),
        "mask": rng.random((n, S, S)) > 0.5,
        "model_idx": rng.integers(0, len(model_ids), n).astype(np.int16),
        "model_ids": np.array(model_ids),
        "T_true": T,
        "T_init": T + rng.normal(0, 0.01, T.shape).astype(np.float32),
        "K_window": K,
        "level": rng.integers(0, len(LEVELS), n).astype(np.int8),
    }


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory):
    """Two shards whose model lists differ in content and order."""
    root = tmp_path_factory.mktemp("val")
    shards = [_shard(5, ["obj_a", "obj_b"], 1), _shard(4, ["obj_c", "obj_a"], 2)]
    for i, data in enumerate(shards):
        np.savez(root / f"shard_{i:05d}.npz", **data)
    names = [f"shard_{i:05d}.npz" for i in range(len(shards))]
    (root / "manifest.json").write_text(json.dumps({"shards": names, "level_names": LEVELS}))
    return root, shards


def _expected(shards):
    """(image, K, model id, T_init, T_true, level name) of every sample, in order."""
    return [
        (d["image"][i], d["K_window"][i], str(d["model_ids"][d["model_idx"][i]]), d["T_init"][i],
         d["T_true"][i], LEVELS[d["level"][i]])
        for d in shards
        for i in range(len(d["image"]))
    ]  # fmt: skip


def _check(window, expected) -> None:
    image, K, model_id, T0, T, _ = expected
    assert window.image.dtype == np.uint8 and np.array_equal(window.image, image)
    assert window.model_id == model_id
    for got, want in ((window.K, K), (window.T_init, T0), (window.T_true, T)):
        assert got.dtype == np.float64 and np.array_equal(got, want.astype(np.float64))


def test_validation_windows_are_the_samples_in_order_across_shards(val_dir):
    root, shards = val_dir
    expected = _expected(shards)
    windows = validation_windows(root, n=7)  # past the first shard's 5
    assert [w.index for w in windows] == list(range(7))
    for window, want in zip(windows, expected, strict=False):
        _check(window, want)
    assert len(validation_windows(root)) == len(expected) == 9


def test_validation_windows_of_one_noise_level(val_dir):
    root, shards = val_dir
    expected = _expected(shards)
    ds = ShardDataset(root)
    assert ds.level_names == tuple(LEVELS)
    for level in LEVELS:
        want = [i for i, e in enumerate(expected) if e[-1] == level]
        windows = validation_windows(ds, level=level)
        assert [w.index for w in windows] == want
        for window in windows:
            _check(window, expected[window.index])
        assert [w.index for w in validation_windows(root, n=1, level=level)] == want[:1]
    batch = ds.batch(np.arange(len(ds)))
    assert [LEVELS[k] for k in batch.level.tolist()] == [e[-1] for e in expected]
    with pytest.raises(ValueError, match="tiny"):
        validation_windows(ds, level="tiny")


def test_validation_windows_need_poses(tmp_path, val_dir):
    _, shards = val_dir
    keys = ("image", "render", "field", "mask")
    np.savez(tmp_path / "shard_00000.npz", **{k: shards[0][k] for k in keys})
    with pytest.raises(ValueError, match="no poses"):
        validation_windows(tmp_path)
