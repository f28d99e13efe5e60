"""Where GCF weights files are: a ``--checkpoint`` / ``checkpoint`` value, resolved the same way
in every command (gcf-eval, gcf-train --init, the node's ``checkpoint`` parameter, the API).

- empty or None: the default shipped weights, ``weights/gcf_lmo.pt``;
- an existing file: that file;
- a bare file name that is not a file in the current folder but is a shipped one
  (``gcf_lmo_s64.pt``): the shipped file, from any current folder;
- anything else: not found. :func:`find_checkpoint` then raises an error listing the shipped names.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_checkpoint", "find_checkpoint", "resolve_checkpoint", "shipped_checkpoints"]


def default_checkpoint() -> Path:
    """The default shipped weights file (``<share>/weights/gcf_lmo.pt``)."""
    from gcf_ros.resources import share_dir

    return share_dir() / "weights" / "gcf_lmo.pt"


def shipped_checkpoints() -> tuple[str, ...]:
    """The names of the shipped weights files, sorted."""
    folder = default_checkpoint().parent
    return tuple(sorted(p.name for p in folder.glob("*.pt"))) if folder.is_dir() else ()


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The weights file: ``checkpoint`` as a path, else a file of that name among the shipped
    weights (``gcf_lmo_s64.pt``: the faster S = 64 network), else the default. The path may not
    exist (:func:`find_checkpoint` checks)."""
    if not checkpoint:
        return default_checkpoint()
    path = Path(checkpoint).expanduser()
    shipped = default_checkpoint().parent / path.name
    bare = path.name == str(checkpoint)
    return shipped if not path.is_file() and bare and shipped.is_file() else path


def shipped_hint() -> str:
    """One clause naming the shipped weights, for error messages."""
    names = ", ".join(shipped_checkpoints()) or "none"
    return f"shipped weights (by name, from any folder): {names}, in {default_checkpoint().parent}"


def find_checkpoint(checkpoint: str | Path | None) -> Path:
    """:func:`resolve_checkpoint`, or FileNotFoundError naming the value and the shipped files."""
    path = resolve_checkpoint(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint or path}: no such file; {shipped_hint()}")
    return path
