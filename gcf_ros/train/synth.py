"""Synthetic training samples for the correspondence network (docs/design.md §2, "Training data").

A sample is one CAD model of the registry at a random true pose T* and a perturbed initial pose T0,
seen in the S x S window that the refiner would crop around the model's box projected at **T0**:

- ``image``: the model rendered at T* (random Lambertian lighting) over a procedural background,
  with occluders in front and clutter behind (composited by depth), photometrically augmented;
  rendered at ``supersample`` · S and area-downsampled for anti-aliased edges;
- ``render``: the 10-channel rendering-branch input (:func:`gcf_ros.gcf.inputs.render_input`) of the
  model at T0 (headlight shading);
- ``field``: the exact ground-truth field F*_p = π(K_window, T* X_p) − p of :func:`true_field`.

Only the CAD models and procedurally generated content are used: never the LM-O evaluation frames.
Samples come in shards (``.npz``) written by :func:`write_shards`; see :func:`generate_shard` for
the arrays. The models come from a registry YAML or a registry snapshot, the renderings from
open3d's ray caster or the torch rasterizer (:mod:`gcf_ros.train.synth_backend`): with a snapshot
and the torch rasterizer nothing needs open3d (e.g. on a GPU machine that has torch only).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gcf_ros.train.synth_backend import ModelSource, SynthRenderer
from gcf_ros.train.synth_config import SYNTH_LEVELS, XLARGE, SynthConfig, load_synth_yaml
from gcf_ros.train.synth_sample import SampleSynthesizer

__all__ = [
    "SHARD_DTYPES",
    "SYNTH_LEVELS",
    "SYNTH_VERSION",
    "XLARGE",
    "ModelSource",
    "NonFiniteSampleError",
    "SynthConfig",
    "SynthRenderer",
    "WriteResult",
    "generate_shard",
    "load_synth_yaml",
    "shard_seed",
    "write_shards",
]

SYNTH_VERSION = "2"  # 2: the "visible" mask (target of the visible-mask head)

_SYNTHESIZERS: dict[tuple[ModelSource, SynthRenderer], SampleSynthesizer] = {}


def _synthesizer(source: ModelSource, renderer: SynthRenderer) -> SampleSynthesizer:
    """The process's synthesizer for a model source and renderer (models and the renderer's
    per-model data are loaded once per process)."""
    key = (source, renderer)
    if key not in _SYNTHESIZERS:
        _SYNTHESIZERS[key] = SampleSynthesizer(source, renderer)
    return _SYNTHESIZERS[key]


class NonFiniteSampleError(ValueError):
    """A synthesized sample holds non-finite values (the message names sample, model, array)."""


def generate_shard(
    config: SynthConfig,
    models: str | Path | ModelSource,
    seed: int,
    n: int,
    first_index: int = 0,
    renderer: SynthRenderer | None = None,
) -> dict[str, np.ndarray]:
    """``n`` samples drawn from ``numpy.random.default_rng(seed)`` (deterministic), of the models
    of ``models`` (a registry YAML path or a :class:`ModelSource`) rendered by ``renderer``
    (default: open3d's ray caster).

    Returns, with S = ``config.window_size``: ``image`` (n, S, S, 3) uint8 RGB; ``render``
    (n, 10, S, S) float16 (render_input at T0); ``field`` (n, 2, S, S) float16, window pixels
    (0 off-mask); ``mask`` (n, S, S) bool (the T0 rendering's mask); ``model_idx`` (n,) int16 into
    ``model_ids`` (the registry's sorted ids, str); ``T_true``, ``T_init`` (n, 4, 4) float32,
    metres; ``K_window`` (n, 3, 3) float32 (the S-size window's camera); ``level`` (n,) int8 into
    ``config.level_names``; ``visible`` (n, S, S) bool, where the object is visible in the image
    window at T* (its rendering minus the occluders in front of it).

    Raises ValueError when ``config.distance_range`` is too near for a model, and
    :class:`NonFiniteSampleError` at the first sample with a non-finite value in an array as
    stored (``first_index`` + its index in the shard numbers it in the set).
    """
    synth = _synthesizer(ModelSource.of(models), renderer or SynthRenderer())
    synth.check_config(config)
    levels = [SYNTH_LEVELS[name] for name in config.level_names]
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin (10x slower on a busy host)
    samples = []
    try:
        for i in range(n):
            samples.append(synth.sample(config, levels, rng))
            _check_finite(samples[-1], first_index + i, synth.ids, seed)
    finally:
        torch.set_num_threads(threads)
    out = {key: np.stack([s[key] for s in samples]).astype(dt) for key, dt in SHARD_DTYPES.items()}
    out["model_ids"] = np.array(synth.ids)
    return out


SHARD_DTYPES: dict[str, type] = {
    "image": np.uint8,
    "render": np.float16,
    "field": np.float16,
    "mask": np.bool_,
    "model_idx": np.int16,
    "T_true": np.float32,
    "T_init": np.float32,
    "K_window": np.float32,
    "level": np.int8,
    "visible": np.bool_,
}


def _check_finite(sample: dict[str, Any], index: int, ids: tuple[str, ...], seed: int) -> None:
    """Raise NonFiniteSampleError when an array of ``sample``, cast to its SHARD_DTYPES type,
    holds a NaN or an infinity (float16 overflows beyond 65504: a field that long is no good)."""
    bad = {}
    for key, dtype in SHARD_DTYPES.items():
        value = np.asarray(sample[key]).astype(dtype)
        if np.issubdtype(dtype, np.floating):
            count = int(np.count_nonzero(~np.isfinite(value)))
            if count:
                bad[key] = f"{count} of {value.size} values non-finite"
    if bad:
        model = ids[int(sample["model_idx"])]
        causes = "; ".join(f"{key}: {what}" for key, what in bad.items())
        raise NonFiniteSampleError(
            f"sample {index} (shard seed {seed}) of model {model!r} is not finite ({causes}); "
            "is the model's size in metres (registry 'scale') and distance_range right for it?"
        )


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_shards` did: ``generated`` new samples in ``seconds``, ``skipped``
    samples already on disk (resume)."""

    out_dir: Path
    manifest: Path
    shards: tuple[str, ...]
    generated: int
    skipped: int
    seconds: float


def write_shards(
    config: SynthConfig,
    models: str | Path | ModelSource,
    out_dir: str | Path,
    num_samples: int,
    shard_size: int = 500,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    renderer: SynthRenderer | None = None,
) -> WriteResult:
    """Write ``num_samples`` samples as ``out_dir/shard_{i:05d}.npz`` (uncompressed, the arrays of
    :func:`generate_shard` for seed ``shard_seed(seed, i)``) and ``manifest.json``.

    ``models``: a registry YAML path or a :class:`ModelSource` (a snapshot: the workers load the
    snapshot file); ``renderer``: default open3d's ray caster. Shards already present with the
    right number of samples are kept (resume); a manifest from another config, seed, shard size,
    generator version or renderer backend raises ValueError. ``workers`` > 1 uses a
    **spawn**-context process pool (default: all cores), so a CUDA renderer works in the workers
    too (each makes its own CUDA context; a forked process could not use CUDA); a tqdm bar counts
    samples. RuntimeError when the renderer's CUDA device is not available.
    """
    if num_samples < 1 or shard_size < 1:
        raise ValueError(f"need num_samples, shard_size >= 1, got {num_samples}, {shard_size}")
    source, renderer = ModelSource.of(models), renderer or SynthRenderer()
    renderer.check_available()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [min(shard_size, num_samples - s) for s in range(0, num_samples, shard_size)]
    names = [f"shard_{i:05d}.npz" for i in range(len(sizes))]
    manifest = _manifest(config, source, renderer, seed, shard_size, sizes, names)
    _check_resumable(out_dir / "manifest.json", manifest)
    _write_json(out_dir / "manifest.json", {**manifest, "complete": False})
    todo = [i for i, n in enumerate(sizes) if not _shard_ok(out_dir / names[i], n)]
    jobs = [(config, source, renderer, shard_seed(seed, i), sizes[i], str(out_dir / names[i]),
             i * shard_size) for i in todo]  # fmt: skip
    generated = sum(sizes[i] for i in todo)
    bar = tqdm(total=num_samples, initial=num_samples - generated, unit="sample",
               disable=not progress, smoothing=0.1)  # fmt: skip
    start = time.perf_counter()
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        for job in jobs:
            bar.update(_write_one(job))
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:  # not fork
            for n in pool.imap_unordered(_write_one, jobs):
                bar.update(n)
    seconds = time.perf_counter() - start
    bar.close()
    _write_json(out_dir / "manifest.json", {**manifest, "complete": True})
    return WriteResult(out_dir, out_dir / "manifest.json", tuple(names), generated,
                       num_samples - generated, seconds)  # fmt: skip


def shard_seed(seed: int, index: int) -> int:
    """The generator seed of shard ``index`` of a set written with ``seed``."""
    return seed * 100003 + index


def _init_worker() -> None:
    """Pool initializer: one thread per worker process (the pool provides the parallelism)."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


_Job = tuple[SynthConfig, ModelSource, SynthRenderer, int, int, str, int]


def _write_one(job: _Job) -> int:
    """Generate one shard and write it atomically (temporary file, then rename)."""
    config, source, renderer, seed, n, path, first = job
    try:
        arrays = generate_shard(config, source, seed, n, first, renderer)
    except NonFiniteSampleError as err:
        raise NonFiniteSampleError(f"{Path(path).name}: {err}") from None
    tmp = f"{path[: -len('.npz')]}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return n


def _shard_ok(path: Path, n: int) -> bool:
    """True when ``path`` is a readable shard with all arrays and ``n`` samples."""
    if not path.is_file():
        return False
    try:
        with np.load(path) as data:
            keys = set(data.files)
            return keys >= {*SHARD_DTYPES, "model_ids"} and data["level"].shape == (n,)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def _manifest(config, source, renderer, seed, shard_size, sizes, names) -> dict[str, Any]:
    """The manifest of a set. With the defaults (a registry YAML, the ray caster) it has the keys
    it always had; a snapshot adds ``models_snapshot``, the torch rasterizer ``renderer``."""
    manifest = {
        "generator": __name__,
        "generator_version": SYNTH_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": asdict(config),
        "seed": int(seed),
        "num_samples": int(sum(sizes)),
        "shard_size": int(shard_size),
        "shards": [
            {"name": name, "num_samples": n, "seed": shard_seed(seed, i)}
            for i, (name, n) in enumerate(zip(names, sizes, strict=True))
        ],
        **source.manifest_entries(),
        "model_ids": list(source.registry().ids),
        "noise_levels": {name: asdict(level) for name, level in SYNTH_LEVELS.items()},
        "level_names": list(config.level_names),
    }
    if not renderer.is_default:
        manifest["renderer"] = renderer.manifest_entry()
    return manifest


_RESUME_KEYS = ("generator_version", "config", "seed", "shard_size", "model_ids", "level_names")
# SynthConfig keys newer than some manifests, with the values that draw what the older generator
# drew: a set begun before them resumes with a config that pins them so (the shipped LM-O ones).
_LEGACY_CONFIG = {
    "apparent_size_range": [0.13, 0.56],
    "clutter_scale": 1.0,
    "noise_xy_scale": 1.0,
    "model_weights": {},
}


def _check_resumable(path: Path, manifest: dict[str, Any]) -> None:
    """Raise ValueError when ``path`` is a manifest of an incompatible set."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = json.loads(json.dumps(manifest))
    if isinstance(old.get("config"), dict):
        old["config"] = {**_LEGACY_CONFIG, **old["config"]}
    differ = [key for key in _RESUME_KEYS if old.get(key) != new.get(key)]
    if _backend(old) != _backend(new):  # one renderer per set (they differ at edge pixels)
        differ.append("renderer")
    if differ:
        raise ValueError(
            f"{path.parent} holds a different synthetic set ({', '.join(differ)} differ); "
            "choose another output folder or delete it"
        )


def _backend(manifest: dict[str, Any]) -> str:
    """The renderer backend that made a set (a manifest without ``renderer``: the ray caster)."""
    return str((manifest.get("renderer") or {}).get("backend", "raycast"))


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
