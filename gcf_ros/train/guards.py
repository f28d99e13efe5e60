"""What makes a training run fail loudly: non-finite numbers, and exports over shipped weights.

A run whose loss, gradient norm or validation numbers go NaN/inf stops at once with
:class:`NonFiniteError` (the checkpoints written before it stay; nothing is exported), and an
export into the folder of the shipped weights needs an explicit ``overwrite_shipped``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

__all__ = [
    "NonFiniteError",
    "check_export_path",
    "check_finite_record",
    "check_finite_state",
    "non_finite_counts",
    "shipped_weights_dirs",
]


class NonFiniteError(RuntimeError):
    """Training produced a NaN or an infinity; the message names the iteration and the value."""


def non_finite_counts(tensors: Mapping[str, torch.Tensor | None]) -> dict[str, int]:
    """{name: number of NaN/inf elements} of the floating-point tensors that hold any."""
    counts = {}
    for name, t in tensors.items():
        if t is not None and t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                counts[name] = n
    return counts


def check_finite_record(record: Mapping[str, object], what: str) -> None:
    """Raise NonFiniteError when a float of ``record`` (e.g. a validation record) is NaN/inf;
    ``what`` names where it came from ("validation at iteration 500")."""
    bad = {k: v for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise NonFiniteError(
            f"{what}: non-finite {', '.join(f'{k} = {v}' for k, v in bad.items())}"
        )


def check_finite_state(state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise NonFiniteError when a tensor of the state dict ``state`` holds NaN/inf."""
    bad = non_finite_counts(dict(state))
    if bad:
        names = ", ".join(f"{k} ({n})" for k, n in list(bad.items())[:5])
        raise NonFiniteError(f"{what}: {len(bad)} tensors hold non-finite values: {names}")


def shipped_weights_dirs() -> list[Path]:
    """The folders of the shipped weights (resolved): the source tree's ``weights/`` and
    ``share_dir()/weights`` of the installed package (the same folder in a source checkout)."""
    from gcf_ros.resources import share_dir

    dirs = [Path(__file__).resolve().parents[2] / "weights"]
    with contextlib.suppress(FileNotFoundError):  # no package data: the source tree's only
        dirs.append(share_dir() / "weights")
    return list(dict.fromkeys(d.resolve() for d in dirs))


def check_export_path(
    path: str | Path, overwrite_shipped: bool = False, shipped: Iterable[Path] | None = None
) -> None:
    """Raise ValueError when ``path`` lies in a folder of the shipped weights (default
    :func:`shipped_weights_dirs`) and ``overwrite_shipped`` is not set."""
    if overwrite_shipped:
        return
    target = Path(path).expanduser().resolve()
    for folder in shipped_weights_dirs() if shipped is None else shipped:
        if target.is_relative_to(Path(folder).resolve()):
            raise ValueError(
                f"refusing to export to {path}: it is in the shipped weights folder {folder}, "
                "whose files the package loads by default. Export under runs/ (train.export or "
                "--export), and copy the file there by hand once chosen (python -m "
                "gcf_ros.gcf.weights_meta edits what it records); --overwrite-shipped writes "
                "there anyway"
            )
