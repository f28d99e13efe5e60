"""gcf-train: train the correspondence network on synthetic shards.

    gcf-train --config config/train.yaml [--resume] [--device cpu|cuda] [--iterations N]
              [--out runs/gcf_lmo] [--export WEIGHTS] [--threads N] [--init WEIGHTS]

Reads the ``train:`` section of the YAML file (``TrainConfig``; relative paths are relative to the
repository root). Writes ``<out>/last.pt`` and ``<out>/best.pt`` (full checkpoints), one JSON line
per validation to ``<out>/log.jsonl`` and stdout, and at the end the weights-only file of the best
checkpoint to the ``export`` path (default runs/gcf_lmo/gcf_lmo.pt). ``--init`` starts a new run
(fresh optimiser and schedule) from the network of a weights file: a continuation of an earlier
training.

A NaN or infinite loss, gradient norm or validation number stops the run at once (exit status 3):
the checkpoints written before it stay, nothing is exported. An export into the shipped weights
folder (weights/) is refused before training starts unless --overwrite-shipped is given: export
under runs/ and copy the chosen file there by hand (python -m gcf_ros.gcf.weights_meta edits
what it records).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import torch
import yaml

from gcf_ros.gcf.checkpoints import find_checkpoint
from gcf_ros.train.guards import NonFiniteError, check_export_path
from gcf_ros.train.train import TrainConfig, Trainer

EXIT_NON_FINITE = 3


def load_train_config(path: str | Path) -> TrainConfig:
    """The ``train:`` section of a YAML file as a ``TrainConfig`` (absent keys: defaults)."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    section = doc.get("train")
    if not isinstance(section, dict):
        raise ValueError(f"{path} has no 'train:' section")
    return TrainConfig.from_dict(section)


def load_diameters(config_path: str | Path) -> dict[str, float] | None:
    """Model id -> diameter (m) of the registry named by the YAML's top-level ``models:``
    (relative to the YAML file); None when it names none."""
    from gcf_ros.core.models import ModelRegistry
    from gcf_ros.train.synth_config import registry_yaml_path

    doc = yaml.safe_load(Path(config_path).read_text()) or {}
    if not doc.get("models"):
        return None
    registry = ModelRegistry.from_yaml(registry_yaml_path(config_path, doc))
    return {i: float(registry.get(i).diameter) for i in registry.ids}


def repo_root() -> Path:
    """The source tree this package runs from (editable install), else the working directory."""
    source = Path(__file__).resolve().parents[2]
    return source if (source / "setup.py").is_file() else Path.cwd()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gcf-train",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=Path("config/train.yaml"))
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--iterations", type=int, default=None, help="override train.iterations")
    p.add_argument("--lr", type=float, default=None, help="override train.lr")
    p.add_argument("--out", type=str, default=None, help="run folder (default: train.out_dir)")
    p.add_argument("--export", type=str, default=None, help="weights file (default: train.export)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument(
        "--init", default=None,
        help="start from this weights file (a path, or a shipped file's name: gcf_lmo.pt)",
    )  # fmt: skip
    p.add_argument(
        "--data-on-device",
        action="store_true",
        help="keep the data set on --device (GPU: no per-step host copies)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop early (validated, checkpointed, exported) after this wall time",
    )
    p.add_argument(
        "--fit-schedule",
        action="store_true",
        help="with --max-minutes: end the learning-rate schedule when the time runs out "
        "(rate measured over the first steps) instead of at train.iterations",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this iteration of the planned schedule (exported as usual)",
    )
    p.add_argument(
        "--overwrite-shipped",
        action="store_true",
        help="allow the export to write into the shipped weights folder (weights/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fit_schedule and args.max_minutes is None:
        print("gcf-train: --fit-schedule needs --max-minutes", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = load_train_config(args.config)
        overrides = {"iterations": args.iterations, "out_dir": args.out, "lr": args.lr,
                     "export": args.export}  # fmt: skip
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v})
        if config.init_blend != 1.0 and not (args.init or args.resume):
            raise ValueError(f"train.init_blend {config.init_blend} needs --init WEIGHTS")
        # before hours of training (an absolute export path stays itself under repo_root() /)
        check_export_path(repo_root() / config.export, args.overwrite_shipped)
        trainer = Trainer(config, repo_root(), args.device, load_diameters(args.config),
                          args.data_on_device)  # fmt: skip
        last = trainer.out_dir / "last.pt"
        if args.resume and last.is_file():
            trainer.load_checkpoint(last)
            print(f"gcf-train: resumed {last} at iteration {trainer.iteration}")
        elif last.is_file():
            raise ValueError(f"{last} exists: pass --resume, or choose another --out")
        elif args.init:
            init = find_checkpoint(args.init)  # a path or a shipped name, as everywhere
            trainer.init_from_weights(init)
            print(f"gcf-train: initialised from {init}")
    except (FileNotFoundError, ValueError) as err:
        print(f"gcf-train: {err}", file=sys.stderr)
        return 2
    print(
        f"gcf-train: {len(trainer.train_set)} train / {len(trainer.val_set)} val samples, "
        f"{sum(p.numel() for p in trainer.net.parameters())} parameters, {trainer.device}"
    )
    print(f"gcf-train: checkpoints -> {trainer.out_dir}, weights -> {trainer.export_path}")
    limit = None if args.max_minutes is None else 60.0 * args.max_minutes
    command = shlex.join(["gcf-train", *(sys.argv[1:] if argv is None else argv)])
    try:
        record = trainer.fit(
            progress=not args.no_progress,
            max_seconds=limit,
            stop_after=args.stop_after,
            fit_schedule=args.fit_schedule,
        )
        path = trainer.export(command=command, overwrite_shipped=args.overwrite_shipped)
    except NonFiniteError as err:
        print(
            f"gcf-train: stopped, not finite: {err}. Nothing exported; the checkpoints written "
            f"before it are in {trainer.out_dir}",
            file=sys.stderr,
        )
        return EXIT_NON_FINITE
    print(f"gcf-train: {_summary(trainer, record)}; weights -> {path}")
    return 0


def _summary(trainer: Trainer, record: dict) -> str:
    """The best validation (the selection key, its EPE and iteration) and the last val EPE."""
    best, key = trainer.best, trainer.selection_key
    if key not in best or best["iteration"] < 0:
        return "no validation recorded"
    text = (f"best {key} {best[key]:.3f} (val EPE {best['val_epe']:.3f} px, iteration "
            f"{best['iteration']})")  # fmt: skip
    if "val_epe" in record:
        text += f", last val EPE {record['val_epe']:.3f} px"
    return text


if __name__ == "__main__":
    sys.exit(main())
