"""gcf-train: train the correspondence network on synthetic shards.

    gcf-train --config config/train.yaml [--resume] [--device cpu|cuda] [--iterations N]
              [--out runs/gcf_lmo] [--export WEIGHTS] [--threads N] [--init WEIGHTS]

Reads the ``train:`` section of the YAML file (``TrainConfig``; relative paths are relative to the
repository root). Writes ``<out>/last.pt`` and ``<out>/best.pt`` (full checkpoints), one JSON line
per validation to ``<out>/log.jsonl`` and stdout, and at the end the weights-only file of the best
checkpoint to the ``export`` path (default weights/gcf_lmo.pt). ``--init`` starts a new run (fresh
optimiser and schedule) from the network of a weights file: a continuation of an earlier training.
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
from gcf_ros.train.train import TrainConfig, Trainer


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
    limit = None if args.max_minutes is None else 60.0 * args.max_minutes
    record = trainer.fit(
        progress=not args.no_progress,
        max_seconds=limit,
        stop_after=args.stop_after,
        fit_schedule=args.fit_schedule,
    )
    command = shlex.join(["gcf-train", *(sys.argv[1:] if argv is None else argv)])
    path = trainer.export(command=command)
    best, last_epe = trainer.best, record.get("val_epe", float("nan"))
    key = trainer.selection_key
    print(
        f"gcf-train: best {key} {best.get(key, float('nan')):.3f} px (val EPE "
        f"{best['val_epe']:.3f} px, iteration {best['iteration']}), last val EPE {last_epe:.3f} px;"
        f" weights -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
