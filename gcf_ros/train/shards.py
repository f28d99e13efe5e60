"""The synthetic training set in memory: every sample of a folder of ``shard_NNNNN.npz`` files.

Shards are written by ``gcf_ros.train.synth.write_shards``; ``manifest.json`` lists them (else
``shard_*.npz`` is globbed). All samples are loaded at construction and kept in their compact
dtypes (image uint8, render / field float16, mask bool: ~115 kB per sample at S = 64); batches are
converted to float32 tensors on demand by slicing the stacked arrays, without per-item Python work.
``validation_windows`` gives samples as the refiner's input (the image window as the whole image).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gcf_ros.gcf.inputs import image_input

KEYS = ("image", "render", "field", "mask")
# Loaded when every shard has them (the pose loss needs them).
GEOMETRY_KEYS = ("T_init", "T_true", "K_window", "model_idx")
# Loaded when every shard has them (visible: SYNTH_VERSION >= 2).
OPTIONAL_KEYS = ("visible", "level")


@dataclass(frozen=True)
class ShardBatch:
    """B training samples of S x S windows (float32 unless stated).

    Attributes:
        image: (B, 3, S, S) real image window in [0, 1].
        render: (B, 10, S, S) rendering-branch input at the current pose.
        field: (B, 2, S, S) ground-truth correspondence field, window pixels, (u, v).
        mask: (B, S, S) bool, foreground of the rendering.
        T_init: (B, 4, 4) camera-from-object pose the rendering was made at (T0), metres.
        T_true: (B, 4, 4) true camera-from-object pose of the image (T*), metres.
        K_window: (B, 3, 3) camera of the S x S window.
        model_idx: (B,) int64 index into ``ShardDataset.model_ids``.
        The last four are None for shards written without them.
        visible: (B, S, S) bool, where the object is visible in the image window (at T*, minus
            occluders): the target of the visible-mask head; None for older shards.
        level: (B,) noise level of T_init, an index into ``ShardDataset.level_names``; None for
            shards without it.
    """

    image: torch.Tensor
    render: torch.Tensor
    field: torch.Tensor
    mask: torch.Tensor
    T_init: torch.Tensor | None = None
    T_true: torch.Tensor | None = None
    K_window: torch.Tensor | None = None
    model_idx: torch.Tensor | None = None
    visible: torch.Tensor | None = None
    level: torch.Tensor | None = None

    @property
    def has_geometry(self) -> bool:
        return self.T_init is not None

    def to(self, device: torch.device | str) -> ShardBatch:
        nb = torch.device(device).type == "cuda"
        moved = {k: getattr(self, k) for k in (*KEYS, *GEOMETRY_KEYS, *OPTIONAL_KEYS)}
        return ShardBatch(**{k: None if v is None else v.to(device, non_blocking=nb)
                             for k, v in moved.items()})  # fmt: skip


class ShardDataset(Dataset):
    """All samples of the shards in ``root`` (``root/manifest.json`` or ``root/shard_*.npz``).

    ``len(ds)`` samples; ``ds[i]`` is a dict of float32 tensors image (3, S, S), render (10, S, S),
    field (2, S, S) and mask (S, S) bool; ``ds.batch(indices)`` and ``ds.batches(...)`` give
    ``ShardBatch`` es. ``ds.manifest`` is the manifest dict ({} when there is none);
    ``ds.model_ids`` the model ids that ``ShardBatch.model_idx`` indexes (empty without geometry);
    ``ds.level_names`` the noise levels that ``ShardBatch.level`` indexes (the manifest's).
    """

    def __init__(self, root: str | Path, max_samples: int | None = None) -> None:
        self.root = Path(root)
        self.manifest, paths = _shard_paths(self.root)
        sizes = [_num_samples(p) for p in paths]
        if max_samples is not None:
            sizes = _truncate(sizes, max_samples)
            paths = paths[: len(sizes)]
        self.shard_names = tuple(p.name for p in paths)
        self.arrays, self.model_ids = _load_stacked(paths, sizes)
        self.size = int(self.arrays["image"].shape[1])

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("level_names", ()))

    def level_indices(self, name: str) -> np.ndarray:
        """The indices of the samples whose initial pose was drawn at noise level ``name``."""
        if "level" not in self.arrays or name not in self.level_names:
            raise ValueError(f"{self.root}: no level {name!r} recorded ({self.level_names})")
        level = torch.as_tensor(self.arrays["level"]).cpu().numpy()
        return np.flatnonzero(level == self.level_names.index(name))

    def __len__(self) -> int:
        return int(self.arrays["image"].shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        b = self.batch(np.array([index]))
        return {k: getattr(b, k)[0] for k in KEYS}

    def to(self, device: torch.device | str) -> ShardDataset:
        """Move the stacked arrays (compact dtypes) to ``device`` as tensors; batches are then
        gathered there (on a GPU: no per-step host work or copies). Returns self."""
        self.arrays = {k: torch.as_tensor(v).to(device) for k, v in self.arrays.items()}
        return self

    def batch(self, indices: np.ndarray) -> ShardBatch:
        """The samples ``indices`` (sorted first: faster gathers, same set) as float32 tensors."""
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        a = {k: torch.as_tensor(v) for k, v in self.arrays.items()}
        idx_t = torch.from_numpy(idx).to(a["image"].device)
        return ShardBatch(
            image=image_input(a["image"][idx_t]),
            render=a["render"][idx_t].float(),
            field=a["field"][idx_t].float(),
            mask=a["mask"][idx_t],
            **{k: a[k][idx_t].to(torch.int64 if k == "model_idx" else torch.float32)
               for k in GEOMETRY_KEYS if k in a},
            **{k: a[k][idx_t] for k in OPTIONAL_KEYS if k in a},
        )  # fmt: skip

    def batches(
        self, batch_size: int, rng: np.random.Generator | None = None, drop_last: bool = False
    ) -> Iterator[ShardBatch]:
        """One pass over the set: shuffled by ``rng``, or in order when ``rng`` is None."""
        n = len(self)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.batch(order[start : start + batch_size])


@dataclass(frozen=True)
class RefinerWindow:
    """One synthetic sample as the refiner's input: its S x S image window is the whole image.

    Attributes:
        image: (S, S, 3) uint8 RGB window, showing the object at ``T_true``.
        K: (3, 3) float64 camera of the window.
        model_id: the sample's model.
        T_init: (4, 4) float64 camera-from-object pose to start from (T0), metres.
        T_true: (4, 4) float64 true pose (T*), metres.
        index: the sample's index in its ``ShardDataset``.
    """

    image: np.ndarray
    K: np.ndarray
    model_id: str
    T_init: np.ndarray
    T_true: np.ndarray
    index: int


def validation_windows(
    data: ShardDataset | str | Path, n: int | None = None, level: str | None = None
) -> list[RefinerWindow]:
    """The first ``n`` samples (None: all) of a shard folder or dataset, of noise level ``level``
    (None: any), in order: refine ``w.image`` with camera ``w.K`` from ``w.T_init``, compare with
    ``w.T_true``."""
    ds = data if isinstance(data, ShardDataset) else ShardDataset(data, None if level else n)
    if not ds.model_ids:
        raise ValueError(f"{ds.root}: the shards record no poses (written without geometry)")
    idx = (ds.level_indices(level) if level else np.arange(len(ds)))[:n]
    keys = ("image", "T_init", "T_true", "K_window", "model_idx")
    image, T0, T, K, model = (_rows(ds, key, idx) for key in keys)
    ids = [ds.model_ids[int(m)] for m in model]
    poses = (K.astype(np.float64), ids, T0.astype(np.float64), T.astype(np.float64))
    return [RefinerWindow(*row, int(i)) for *row, i in zip(image, *poses, idx, strict=True)]


def _rows(ds: ShardDataset, key: str, idx: np.ndarray) -> np.ndarray:
    """``ds``'s stacked array ``key`` at ``idx``, on the host (the arrays may be on a device)."""
    stacked = torch.as_tensor(ds.arrays[key])
    return stacked[torch.from_numpy(idx).to(stacked.device)].cpu().numpy()


def _shard_paths(root: Path) -> tuple[dict, list[Path]]:
    """(manifest dict or {}, shard files in order)."""
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if not manifest.get("complete", True):
            warnings.warn(f"{manifest_path} says the set is incomplete", stacklevel=3)
        names = [s["name"] if isinstance(s, dict) else s for s in manifest.get("shards", [])]
        paths = [root / n for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"shards listed in {manifest_path} are missing: {missing[:5]}")
    else:
        manifest, paths = {}, sorted(root.glob("shard_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no training shards in {root} (manifest.json or shard_*.npz)")
    return manifest, paths


def _num_samples(path: Path) -> int:
    with np.load(path) as data:
        return int(data["mask"].shape[0])


def _truncate(sizes: list[int], max_samples: int) -> list[int]:
    """Shard sizes that keep the first ``max_samples`` samples."""
    out, left = [], max_samples
    for n in sizes:
        if left <= 0:
            break
        out.append(min(n, left))
        left -= out[-1]
    return out


def _load_stacked(
    paths: list[Path], sizes: list[int]
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Preallocate the stacked arrays and fill them shard by shard (no 2x peak memory).

    The geometry arrays (``GEOMETRY_KEYS``) are loaded only when every shard has them; each
    shard's ``model_idx`` is remapped into the union of the shards' ``model_ids`` (returned)."""
    arrays: dict[str, np.ndarray] = {}
    with_geometry = all(_has_geometry(p) for p in paths)
    keys = (*KEYS, *GEOMETRY_KEYS) if with_geometry else KEYS
    keys = (*keys, *(k for k in OPTIONAL_KEYS if all(_has_key(p, k) for p in paths)))
    model_ids: list[str] = []
    start = 0
    for path, n in zip(paths, sizes, strict=True):
        with np.load(path) as data:
            for key in keys:
                part = data[key][:n]
                if key == "model_idx":
                    ids = [str(i) for i in data["model_ids"]]
                    model_ids += [i for i in ids if i not in model_ids]
                    part = np.array([model_ids.index(i) for i in ids], np.int16)[part]
                if key not in arrays:
                    arrays[key] = np.empty((sum(sizes), *part.shape[1:]), part.dtype)
                if part.shape[1:] != arrays[key].shape[1:]:
                    raise ValueError(f"{path}: {key} {part.shape} does not match earlier shards")
                arrays[key][start : start + n] = part
        start += n
    return arrays, tuple(model_ids)


def _has_key(path: Path, key: str) -> bool:
    with np.load(path) as data:
        return key in data.files


def _has_geometry(path: Path) -> bool:
    with np.load(path) as data:
        return all(k in data.files for k in (*GEOMETRY_KEYS, "model_ids"))
