"""gcf-synth: write a synthetic training set for the correspondence network.

    gcf-synth --config config/train.yaml --out data/synthetic/train --num 20000 \
        [--shard-size 500] [--seed 0] [--workers N] \
        [--renderer raycast|torch [--device cpu|cuda]] [--models-snapshot FILE [--snapshot-name N]]

Reads the ``synth:`` section and the model registry (top-level ``models:``) of the config, and
writes ``shard_NNNNN.npz`` files plus ``manifest.json`` into ``--out``. Existing shards of the same
set are kept, so an interrupted run resumes where it stopped. Only the CAD models and procedural
content are used (never the LM-O evaluation frames). Every sample is checked for finite values:
the first one that is not stops the run (exit status 2) with its index, model and arrays; the set
stays marked incomplete in its manifest.

Without open3d (e.g. a GPU machine with torch only): ``--renderer torch`` renders with the plain
torch rasterizer instead of open3d's ray caster (``--device cuda`` on the GPU: the workers are
spawned, so each uses CUDA), and ``--models-snapshot FILE`` reads the models from a registry
snapshot written where open3d is (``gcf-models snapshot --out FILE --registry REGISTRY.yaml``)
instead of the config's registry YAML. The renderers agree up to silhouette-edge pixels; a set
is made by one renderer (resuming with the other is refused), and its manifest records the
renderer (when not the ray caster) and the snapshot (name, sha256).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gcf_ros.train.synth import load_synth_yaml, write_shards
from gcf_ros.train.synth_backend import RENDERERS, ModelSource, SynthRenderer


def build_parser() -> argparse.ArgumentParser:
    parts = __doc__.split("\n\n")
    epilog = next(part for part in parts if part.startswith("Without open3d"))
    p = argparse.ArgumentParser(
        prog="gcf-synth", description=parts[0], epilog=epilog.replace("``", "")
    )
    p.add_argument("--config", type=Path, default=Path("config/train.yaml"), help="training YAML")
    p.add_argument("--out", type=Path, required=True, help="output folder for the shards")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--shard-size", type=int, default=500, help="samples per shard (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    cores = os.cpu_count() or 1
    p.add_argument("--workers", type=int, default=cores, help=f"processes (default {cores})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--renderer", choices=RENDERERS, default="raycast",
        help="raycast: open3d's ray caster (default, every shipped set); torch: the plain-torch "
        "rasterizer (no open3d; same images up to silhouette-edge pixels)",
    )  # fmt: skip
    p.add_argument(
        "--device", default="cpu",
        help="with --renderer torch: cpu (default) or cuda[:N] (spawned workers, each its own "
        "CUDA context)",
    )  # fmt: skip
    p.add_argument(
        "--models-snapshot", type=Path, default=None, metavar="FILE",
        help="read the models from this registry snapshot (gcf-models snapshot; no open3d) "
        "instead of the config's registry YAML",
    )  # fmt: skip
    p.add_argument(
        "--snapshot-name",
        default=None,
        metavar="NAME",
        help="the registry of a --models-snapshot file that holds several (default: its only one)",
    )
    return p


def _backend(args: argparse.Namespace, registry: Path) -> tuple[ModelSource, SynthRenderer]:
    """The model source and renderer of the command line (ValueError for a bad combination)."""
    if args.snapshot_name is not None and args.models_snapshot is None:
        raise ValueError("--snapshot-name needs --models-snapshot")
    if args.device != "cpu" and args.renderer != "torch":
        raise ValueError(f"--device {args.device} needs --renderer torch")
    renderer = SynthRenderer(args.renderer, args.device)
    if args.models_snapshot is None:
        return ModelSource.of(registry), renderer
    return ModelSource.from_snapshot(args.models_snapshot, args.snapshot_name), renderer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num < 1 or args.shard_size < 1 or args.workers < 1:
        print("gcf-synth: --num, --shard-size and --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        config, registry = load_synth_yaml(args.config)
    except (OSError, ValueError, TypeError) as err:
        print(f"gcf-synth: cannot read {args.config}: {err}", file=sys.stderr)
        return 2
    try:
        source, renderer = _backend(args, registry)
    except ValueError as err:
        print(f"gcf-synth: {err}", file=sys.stderr)
        return 2
    num_shards = -(-args.num // args.shard_size)
    print(f"gcf-synth: {args.num} samples ({num_shards} shards of <= {args.shard_size}) "
          f"-> {args.out}, seed {args.seed}, {args.workers} worker(s)")  # fmt: skip
    snapshot = f" (snapshot, registry {source.name})" if source.name else ""
    snapshot = snapshot or (" (snapshot)" if source.snapshot else "")
    print(f"gcf-synth: models {source.path}{snapshot}; renderer {renderer.backend} on "
          f"{renderer.device}; {config}")  # fmt: skip
    try:
        result = write_shards(
            config, source, args.out, args.num, args.shard_size, args.seed, args.workers,
            progress=not args.quiet, renderer=renderer,
        )  # fmt: skip
    except (ValueError, RuntimeError) as err:  # bad ranges, a non-finite sample, no valid draw
        print(f"gcf-synth: stopped: {err}", file=sys.stderr)
        return 2
    except ImportError as err:  # open3d missing: the ray caster or reading mesh files
        print(f"gcf-synth: stopped: {err}; without open3d use --renderer torch and "
              "--models-snapshot FILE", file=sys.stderr)  # fmt: skip
        return 2
    rate = result.generated / result.seconds if result.seconds > 0 else float("nan")
    per_worker = rate / max(1, min(args.workers, num_shards))
    print(
        f"gcf-synth: generated {result.generated}, kept {result.skipped} existing samples in "
        f"{result.seconds:.1f} s: {rate:.1f} samples/s ({per_worker:.1f} per worker)"
    )
    print(f"gcf-synth: manifest {result.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
