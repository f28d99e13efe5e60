"""gcf-models: add, check and list the CAD models of a model registry YAML file.

    gcf-models add REGISTRY.yaml --id mug --mesh meshes/mug.obj --unit mm [--up +y]
        [--symmetry none|unspecified|continuous:z|discrete:z:4|continuous:z+discrete:x:2]
        [--tf-name mug] [--include OTHER_REGISTRY.yaml]
    gcf-models check REGISTRY.yaml [--strict]
    gcf-models show REGISTRY.yaml
    gcf-models snapshot --out FILE [--registry REGISTRY.yaml] [--bop-root DIR [--bop-name NAME]]

``add`` creates or updates one entry (the mesh path stored relative to the YAML file), loads the
mesh and prints its size in the stated unit and in metres, with a warning when the size suggests
the wrong unit; ``--include`` adds another registry file to the ``include:`` list (its models
become this registry's too, e.g. gcf_ros's config/models.yaml beside your object). The YAML's
leading comment block is kept; other comments are not. ``check`` loads every model and prints one
line per problem (exit 1 on an error; ``--strict``: on a warning too). ``show`` prints a table of
the models. Both load the registries a file's ``include:`` names too. The keys are documented in
gcf_ros's config/models.yaml. ``snapshot`` loads registries (``--registry``: stored as
``default``; ``--bop-root``: a BOP dataset's ``models/``, stored under its folder's name, e.g.
``lmo``; neither: gcf_ros's config/models.yaml) and writes their models to one file that
``ModelRegistry.load_snapshot(FILE, NAME)`` serves without open3d and without the meshes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gcf_ros.core.bop_models import bop_model_registry, unit_to_m
from gcf_ros.core.model_snapshot import DEFAULT_NAME, write_snapshot
from gcf_ros.core.model_spec import (
    REGISTRY_KEYS,
    UNITS_TO_M,
    UP_AXES,
    ModelSpec,
    format_length,
    include_paths,
    size_warning,
    spec_from_yaml,
    specs_from_registry_doc,
)
from gcf_ros.core.models import ModelLoadError, ModelRegistry, ObjectModel, load_model
from gcf_ros.core.symmetry import Symmetry
from gcf_ros.resources import default_models_yaml

PROG = "gcf-models"
_HEADER = "# gcf_ros model registry (gcf-models). Keys: see config/models.yaml in gcf_ros.\n"


class _CliError(Exception):
    """A user-facing failure: one line, exit status 1."""


def parse_symmetry(text: str) -> Symmetry:
    """``none``, ``unspecified``, ``continuous:AXIS``, ``discrete:AXIS:N`` (N-fold rotation about
    AXIS through the origin) or ``+``-joined parts; AXIS is ``x``, ``-y``, ... or ``ax,ay,az``."""
    if text in ("none", "unspecified"):
        return Symmetry.from_yaml(text, "--symmetry")
    axis, transforms = None, []
    for part in text.split("+"):
        kind, _, rest = part.partition(":")
        if kind == "continuous" and axis is None and rest:
            axis = _parse_axis(rest)
        elif kind == "discrete" and rest.count(":") == 1:
            axis_text, n_text = rest.split(":")
            transforms += _n_fold(_parse_axis(axis_text), _parse_int(n_text))
        else:
            raise argparse.ArgumentTypeError(
                f"--symmetry: cannot read {part!r}; use none, unspecified, continuous:AXIS, "
                "discrete:AXIS:N or parts joined by '+' (AXIS: x, -y, ... or ax,ay,az)"
            )
    value: dict[str, Any] = {"unit": "m"}
    if transforms:
        value["discrete"] = [T.tolist() for T in transforms]
    if axis is not None:
        value["continuous"] = {"axis": axis.tolist()}
    try:
        return Symmetry.from_yaml(value, "--symmetry")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parse_axis(text: str) -> np.ndarray:
    names = {name[-1]: name for name in UP_AXES if name[0] == "+"}
    name = names.get(text, text)
    if name in UP_AXES:
        return _axis_vector(name)
    try:
        axis = np.array([float(v) for v in text.split(",")])
    except ValueError:
        axis = np.zeros(0)
    if axis.shape != (3,) or not np.linalg.norm(axis) > 0:
        raise argparse.ArgumentTypeError(f"--symmetry: axis {text!r}: want x, -y, ... or ax,ay,az")
    return axis


def _axis_vector(name: str) -> np.ndarray:
    return (-1.0 if name[0] == "-" else 1.0) * np.eye(3)["xyz".index(name[-1])]


def _parse_int(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"--symmetry: discrete order {text!r}: want N >= 2")
    return int(text)


def _n_fold(axis: np.ndarray, n: int) -> list[np.ndarray]:
    """The n - 1 non-identity rotations by 2πk/n about ``axis`` through the origin, (4, 4)."""
    axis = axis / np.linalg.norm(axis)
    cont = Symmetry(kind="continuous", axis=axis)
    return list(cont.poses(n)[1:])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create or update one model entry")
    add.add_argument("registry", type=Path, help="registry YAML (created when absent)")
    add.add_argument("--id", required=True, help="model id")
    add.add_argument("--mesh", type=Path, required=True, help="mesh file (.ply .obj .stl .glb)")
    add.add_argument("--unit", required=True, choices=list(UNITS_TO_M), help="the mesh's unit")
    add.add_argument("--up", default=None, choices=list(UP_AXES), help="up axis (default +z)")
    sym_help = "none, unspecified, continuous:z, discrete:z:4, continuous:z+discrete:x:2, ..."
    add.add_argument("--symmetry", type=parse_symmetry, default=None, help=sym_help)
    add.add_argument("--tf-name", default=None, help="TF frame name (default: the id)")
    add.add_argument(
        "--include",
        type=Path,
        action="append",
        default=[],
        help="also include this registry's models (e.g. gcf_ros's config/models.yaml; repeatable)",
    )
    check = sub.add_parser("check", help="load every model; one line per problem")
    check.add_argument("registry", type=Path)
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    show = sub.add_parser("show", help="a table of the models")
    show.add_argument("registry", type=Path)
    _add_snapshot_parser(sub)
    return p


def _add_snapshot_parser(sub: Any) -> None:
    snap = sub.add_parser(
        "snapshot", help="write loaded models to one file (load_snapshot: no open3d, no meshes)"
    )
    snap.add_argument("--out", type=Path, required=True, help="the snapshot file to write")
    snap.add_argument(
        "--registry", type=Path, default=None, help=f"registry YAML, stored as {DEFAULT_NAME!r}"
    )
    snap.add_argument("--bop-root", type=Path, default=None, help="a BOP dataset folder")
    snap.add_argument(
        "--bop-name", default=None, help="name of --bop-root's registry (default: its folder name)"
    )
    snap.add_argument(
        "--dataset-unit", default="mm", choices=list(UNITS_TO_M), help="--bop-root's unit"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"add": _add, "check": _check, "show": _show, "snapshot": _snapshot}
    command = commands[args.command]
    try:
        return command(args)
    except _CliError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1


def _add(args: argparse.Namespace) -> int:
    path: Path = args.registry
    header, doc = _read_doc(path) if path.exists() else (_HEADER, {"models": {}})
    entry = dict(doc["models"].get(args.id) or {})
    mesh = args.mesh.expanduser().resolve()
    entry["mesh"] = os.path.relpath(mesh, path.resolve().parent)
    entry.pop("scale", None)
    entry["unit"] = args.unit
    if args.up is not None:
        entry["up_axis"] = args.up
    if args.symmetry is not None:
        entry.pop("symmetric", None)
        entry["symmetry"] = args.symmetry.to_yaml()
    if args.tf_name is not None:
        entry["tf_name"] = args.tf_name
    capture = _WarningCapture()
    try:
        spec = spec_from_yaml(args.id, entry, path.resolve().parent, path)
        with capture:
            model = load_model(spec)
    except ModelLoadError as err:
        raise _CliError(_one_line(str(err))) from None
    verb = "updated" if args.id in doc["models"] else "added"
    doc["models"][args.id] = entry
    _add_includes(doc, path, args.include)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    print(f"{PROG}: {verb} model {args.id!r} in {path} (mesh {entry['mesh']})")
    for line in _size_lines(model, spec):
        print(f"  {line}")
    hint = size_warning(model.diameter, spec.scale)
    for line in capture.lines:  # the loader's own size warning is replaced by the one below
        if not (hint and hint in line):
            print(f"{PROG}: warning: {line}", file=sys.stderr)
    if hint:
        print(f"{PROG}: warning: model {args.id!r}: {hint}; check --unit", file=sys.stderr)
    return 0


def _add_includes(doc: dict[str, Any], path: Path, includes: list[Path]) -> None:
    """Add ``includes`` (relative to the registry ``path``) to ``doc``'s ``include:`` list, before
    ``models:``; files already there are kept once. The result must load (ids defined once)."""
    if not includes:
        return
    names = doc.get("include") or []
    names = [names] if isinstance(names, str) else list(names)
    for other in includes:
        if not other.expanduser().is_file():
            raise _CliError(f"--include {other}: no such registry file")
        name = os.path.relpath(other.expanduser().resolve(), path.resolve().parent)
        names += [] if name in names else [name]
    models = doc.pop("models")
    doc.pop("include", None)
    doc.update(include=names, models=models)
    try:
        specs_from_registry_doc(path, doc)
    except ModelLoadError as err:
        raise _CliError(_one_line(str(err))) from None


def _size_lines(model: ObjectModel, spec: ModelSpec) -> list[str]:
    extent_m = (model.bbox_max - model.bbox_min).astype(np.float64)
    unit = spec.unit or "mesh units"
    in_unit = " x ".join(f"{v / spec.scale:.4g}" for v in extent_m)
    in_m = " x ".join(f"{v:.4g}" for v in extent_m)
    return [
        f"faces {model.num_faces}, colour from {model.color_source}",
        f"size x/y/z: {in_unit} {unit} = {in_m} m",
        f"diameter: {model.diameter / spec.scale:.4g} {unit} = {model.diameter:.4g} m",
    ]


def _check(args: argparse.Namespace) -> int:
    models, errors, warnings = _load_all(args.registry)
    for line in errors:
        print(f"error: {line}")
    for line in warnings:
        print(f"warning: {line}")
    failed = bool(errors) or (args.strict and bool(warnings))
    n_ok = len(models)
    print(f"{PROG}: {args.registry}: {n_ok} model(s) loaded, {len(errors)} error(s), "
          f"{len(warnings)} warning(s)")  # fmt: skip
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    models, errors, _ = _load_all(args.registry)
    base = args.registry.resolve().parent
    rows = [("id", "file", "faces", "diameter", "unit", "up", "symmetry", "tf name", "colour")]
    for spec, model in models:
        unit = spec.unit or f"scale {spec.scale:g}"
        rows.append((
            spec.model_id, os.path.relpath(spec.mesh_path, base), str(model.num_faces),
            format_length(model.diameter), unit, spec.up_axis, model.symmetry.describe(),
            model.tf_name, model.color_source,
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    for line in errors:
        print(f"{PROG}: error: {line}", file=sys.stderr)
    return 1 if errors else 0


def _snapshot(args: argparse.Namespace) -> int:
    registries: dict[str, ModelRegistry] = {}
    try:
        if args.registry is not None or args.bop_root is None:
            yaml_path = args.registry or default_models_yaml()
            registries[DEFAULT_NAME] = ModelRegistry.from_yaml(yaml_path)
        if args.bop_root is not None:
            root = args.bop_root.expanduser()
            name = args.bop_name or root.resolve().name
            if name in registries:
                raise _CliError(f"--bop-name {name!r}: taken by --registry; choose another")
            registries[name] = bop_model_registry(root / "models", unit_to_m(args.dataset_unit))
        path = write_snapshot(args.out, registries)
    except (ModelLoadError, FileNotFoundError) as err:
        raise _CliError(_one_line(str(err))) from None
    print(f"{PROG}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for name, registry in registries.items():
        faces = sum(registry.get(model_id).num_faces for model_id in registry.ids)
        print(f"  {name}: {len(registry)} model(s) {list(registry.ids)}, {faces} faces")
    return 0


def _load_all(
    path: Path, outer: tuple[Path, ...] = ()
) -> tuple[list[tuple[ModelSpec, ObjectModel]], list[str], list[str]]:
    """Every loadable (spec, model) of ``path`` (its included registries' first), and one line
    per error and per warning."""
    _, doc = _read_doc(path)
    models, errors, warnings = [], [], []
    try:
        included = include_paths(path, doc)
    except ModelLoadError as err:
        included, errors = [], [_one_line(str(err))]
    for other in included:
        if other.resolve() in (*outer, path.resolve()):
            errors.append(f"{path}: include {other} includes itself")
            continue
        try:
            more = _load_all(other, (*outer, path.resolve()))
        except _CliError as err:
            errors.append(str(err))
            continue
        models, errors, warnings = models + more[0], errors + more[1], warnings + more[2]
    base = path.resolve().parent
    for key, entry in doc["models"].items():
        model_id = str(key)
        capture = _WarningCapture()
        try:
            spec = spec_from_yaml(model_id, entry, base, path)
            with capture:
                model = load_model(spec)
        except ModelLoadError as err:
            text = _one_line(str(err))
            prefixed = text.startswith(str(path))
            errors.append(text if prefixed else f"{path}: model {model_id!r}: {text}")
            continue
        named = f"model {model_id!r}"
        warnings += [
            line if named in line else f"{path}: {named}: {line}" for line in capture.lines
        ]
        models.append((spec, model))
    if not outer:
        errors += _clashes(path, [spec for spec, _ in models], [m for _, m in models])
    return models, errors, warnings


def _clashes(path: Path, specs: list[ModelSpec], models: list[ObjectModel]) -> list[str]:
    """One line per model id defined twice and per TF name shared by two models."""
    errors, ids, tf_names = [], {}, {}
    for spec, model in zip(specs, models, strict=True):
        if spec.model_id in ids:
            errors.append(f"{path}: model {spec.model_id!r} is defined twice")
        if model.tf_name in tf_names:
            errors.append(
                f"{path}: models {tf_names[model.tf_name]!r} and {spec.model_id!r} share tf_name "
                f"{model.tf_name!r}"
            )
        ids.setdefault(spec.model_id, spec)
        tf_names.setdefault(model.tf_name, spec.model_id)
    return errors


def _read_doc(path: Path) -> tuple[str, dict[str, Any]]:
    """The leading comment block and the parsed ``{models: {...}}`` of a registry file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise _CliError(f"{path}: model registry file not found") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _CliError(_one_line(f"{path}: invalid YAML: {err}")) from None
    if doc is None:
        doc = {"models": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("models") or {}, dict):
        raise _CliError(f"{path}: expected a top-level 'models:' mapping")
    if set(doc) - REGISTRY_KEYS:
        raise _CliError(f"{path}: unknown top-level keys {sorted(set(doc) - REGISTRY_KEYS)}")
    doc["models"] = doc["models"] or {}
    header = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        header.append(line)
    return "".join(header), doc


class _WarningCapture(logging.Handler):
    """Collects the loader's warnings (one line each) while active, as a context manager."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self._logger = logging.getLogger("gcf_ros.core.models")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_one_line(record.getMessage()))

    def __enter__(self) -> _WarningCapture:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
